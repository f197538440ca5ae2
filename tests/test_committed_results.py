"""Committed results regenerate: settings of the committed scenarios, rerun with the
current code, give the committed rows exactly (every column but the timing one).

The fixtures under tests/data/ were made before the pipeline's redesign (their SiLRTC and
HaLRTC rows remade when those methods' default mode weights changed, their inpainting rows
when whole lost rows went to the row-band kernel); together they
cover a cut with two crossing tensors, every network feature (devices, Poisson arrivals,
buffer, jitter, deadline, own-packet side information decoded with the previous image's,
ARQ, FEC and both) and a packetization grid with short packets, both send orders, two bit
depths, dropped images and a replayed loss trace.
"""

from pathlib import Path

import pytest
import yaml
from conftest import without_timing

from dfsim.cli import main
from dfsim.results import read_results_csv

ROOT = Path(__file__).resolve().parents[1]
KEY = (
    "method",
    "channel",
    "loss_rate",
    "burst_length",
    "trial",
    "error_control",
    "split",
    "codec",
    "bits",
    "rows_per_packet",
    "order",
)


def rerun(tmp_path, scenario: dict, name: str) -> list[dict]:
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(scenario))
    out = tmp_path / name
    assert (
        main(
            ["run", str(tmp_path / f"{name}.yaml"), "--out", str(out), "--quiet", "--workers", "1"]
        )
        == 0
    )
    return read_results_csv(out / "results.csv")


def assert_rows_match(new: list[dict], committed: list[dict]) -> None:
    """Every new row equals the committed row of the same (config, setting, trial, method) in
    every committed column (older files lack some columns) but the timing one."""
    key = [k for k in KEY if k in committed[0]]
    index = {tuple(r[k] for k in key): r for r in without_timing(committed)}
    assert new
    for row in without_timing(new):
        old = index[tuple(row[k] for k in key)]
        same = {
            k for k, v in old.items() if row.get(k) == v or (v != v and row.get(k) != row.get(k))
        }
        diff = {k: (row.get(k), v) for k, v in old.items() if k not in same}
        assert not diff, diff


def test_default_scenario_setting_regenerates(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    scn = yaml.safe_load((ROOT / "scenarios" / "default.yaml").read_text())
    scn.update(
        trials=1,
        methods=["zeros", "linear", {"name": "halrtc", "max_iters": 5}],
        channels=[{"kind": "gilbert-elliott", "loss_rates": [0.3], "burst_lengths": [4]}],
    )
    new = rerun(tmp_path, scn, "default")
    assert_rows_match(new, read_results_csv(ROOT / "results" / "default" / "results.csv"))


def test_deadline_scenario_regenerates_with_arq_and_fec(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    scn = yaml.safe_load((ROOT / "scenarios" / "deadline.yaml").read_text())
    scn.update(
        trials=1,
        methods=["zeros", "linear"],
        channels=[{"kind": "gilbert-elliott", "loss_rates": [0.2], "burst_lengths": [2]}],
    )
    new = rerun(tmp_path, scn, "deadline")
    assert {r["error_control"] for r in new} == {"none", "arq(3)", "fec(8,2)"}
    assert_rows_match(new, read_results_csv(ROOT / "results" / "deadline" / "results.csv"))


@pytest.mark.parametrize("directory", ["codecs", "codecs-narrow"])
def test_codec_scenarios_regenerate(tmp_path, monkeypatch, directory):
    """Entropy-coded packet sizes, the decoders and the deadline they meet or miss: the
    committed bits, latencies and accuracies come back exactly."""
    monkeypatch.chdir(ROOT)
    scn = yaml.safe_load((ROOT / "scenarios" / f"{directory}.yaml").read_text())
    scn.update(
        trials=1,
        encoding={"codec": ["zstd", "range", "palette"], "bits": 8},
        channels=[{"kind": "gilbert-elliott", "loss_rates": [0.2], "burst_lengths": [2]}],
    )
    new = rerun(tmp_path, scn, directory)
    assert len(new) == 3 * 2
    assert_rows_match(new, read_results_csv(ROOT / "results" / directory / "results.csv"))


@pytest.mark.parametrize("name", ["multi-tensor", "network-features", "packet-grid"])
def test_regression_fixture_regenerates(tmp_path, monkeypatch, name):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # the multi-tensor model's module
    scn = yaml.safe_load((ROOT / "tests" / "data" / f"{name}.yaml").read_text())
    new = rerun(tmp_path, scn, name)
    committed = read_results_csv(ROOT / "tests" / "data" / name / "results.csv")
    assert len(new) == len(committed)
    assert_rows_match(new, committed)
    if (ROOT / "tests" / "data" / name / "devices.csv").is_file():
        assert (tmp_path / name / "devices.csv").read_text() == (
            ROOT / "tests" / "data" / name / "devices.csv"
        ).read_text()


def test_detection_scenario_setting_regenerates(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    scn = yaml.safe_load((ROOT / "scenarios" / "detection.yaml").read_text())
    scn.update(
        trials=1,
        methods=["zeros", "linear", "caltec", {"name": "inpaint_telea", "radius": 5}],
        channels=[{"kind": "iid", "loss_rates": [0.3]}],
    )
    new = rerun(tmp_path, scn, "detection")
    assert_rows_match(new, read_results_csv(ROOT / "results" / "detection" / "results.csv"))


def test_reconstruction_scenario_setting_regenerates(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    scn = yaml.safe_load((ROOT / "scenarios" / "reconstruction.yaml").read_text())
    scn.update(
        trials=1,
        methods=[
            "zeros",
            "linear",
            {"name": "inpaint_ns", "radius": 2},
            {"name": "inpaint_telea", "radius": 2},
        ],
        channels=[{"kind": "iid", "loss_rates": [0.3]}],
    )
    new = rerun(tmp_path, scn, "reconstruction")
    assert_rows_match(new, read_results_csv(ROOT / "results" / "reconstruction" / "results.csv"))
