"""One tiny scenario through `dfsim run`: files, columns, reference accuracy, determinism."""

import csv
import json

import pytest
from conftest import run_scenario, without_timing

from dfsim.experiment.results import read_results_csv
from dfsim.tools.cli import main

# The leading columns every results.csv starts with, in this order.
CORE_COLUMNS = (
    "method",
    "channel",
    "loss_rate",
    "burst_length",
    "trial",
    "n_images",
    "top1",
    "agreement",
    "realised_loss_rate",
    "completion_ms_per_tensor",
)

TINY = """\
name: tiny
seed: 7
data: {n_images: 200}
channels:
  - {kind: iid, loss_rates: [0.0, 0.3, 0.6]}
  - {kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [4]}
methods: [zeros, linear, altec, caltec, {name: halrtc, max_iters: 3},
          {name: inpaint_telea, radius: 2}]
trials: 2
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    run_scenario(d, TINY, "tiny.yaml")
    return d


def test_outputs_and_columns(run_dir):
    out = run_dir / "out"
    assert (out / "accuracy_vs_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "results.csv") as f:
        header = next(csv.reader(f))
    assert tuple(header[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    rows = read_results_csv(out / "results.csv")
    assert len(rows) == 4 * 2 * 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["scenario"]["data"]["n_images"] == 200
    assert {"numpy", "torch", "simpy", "dfsim"} <= set(manifest["versions"])
    assert not list(out.glob(".*tmp*"))
    summary = (out / "summary.md").read_text()
    assert "`altec`" in summary and "paired t-test" in summary
    assert (
        (out / "summary.csv")
        .read_text()
        .startswith(
            "channel,loss_rate,burst_length,split,codec,bits,rows_per_packet,order,error_control,method,trials,"
        )
    )


def test_zero_fill_at_loss_zero_equals_clean_quantized_accuracy(run_dir):
    out = run_dir / "out"
    ref = json.loads((out / "manifest.json").read_text())["reference"]
    rows = read_results_csv(out / "results.csv")
    for r in rows:
        if r["loss_rate"] == 0.0:
            assert r["top1"] == ref["quantized_top1"]
            assert r["agreement"] == 1.0 and r["realised_loss_rate"] == 0.0
    assert ref["clean_top1"] > 0.85 and abs(ref["clean_top1"] - ref["quantized_top1"]) < 0.02


def test_accuracy_falls_with_loss_and_losses_match_the_channel(run_dir):
    rows = read_results_csv(run_dir / "out" / "results.csv")
    iid = {}
    for r in rows:
        if r["channel"] == "iid" and r["method"] == "zeros":
            iid.setdefault(r["loss_rate"], []).append(r["top1"])
        assert abs(r["realised_loss_rate"] - r["loss_rate"]) < 0.03
        assert r["n_images"] == 200 and r["packets_per_image"] == 224
    means = [sum(v) / len(v) for _, v in sorted(iid.items())]
    assert means[0] > means[1] > means[2]


def test_same_seed_same_numbers(run_dir):
    assert (
        main(
            [
                "run",
                str(run_dir / "tiny.yaml"),
                "--out",
                str(run_dir / "again"),
                "--quiet",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    a = read_results_csv(run_dir / "out" / "results.csv")
    b = read_results_csv(run_dir / "again" / "results.csv")
    assert without_timing(a) == without_timing(b)


def test_two_workers_give_identical_results(run_dir):
    assert (
        main(
            [
                "run",
                str(run_dir / "tiny.yaml"),
                "--out",
                str(run_dir / "w2"),
                "--quiet",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    a = read_results_csv(run_dir / "out" / "results.csv")
    b = read_results_csv(run_dir / "w2" / "results.csv")
    assert without_timing(a) == without_timing(b)


def test_edge_features_and_reference_predictions_are_cached(run_dir):
    from dfsim import cache

    assert list((cache.cache_dir() / "features").glob("*.npz"))
    assert list((cache.cache_dir() / "reference").glob("*.npz"))


def test_saved_loss_patterns_are_the_ones_the_trials_used(run_dir):
    import csv as _csv

    import numpy as np

    out = run_dir / "saved"
    assert (
        main(
            [
                "run",
                str(run_dir / "tiny.yaml"),
                "--out",
                str(out),
                "--quiet",
                "--workers",
                "1",
                "--save-losses",
            ]
        )
        == 0
    )
    rows = read_results_csv(out / "results.csv")
    index = list(_csv.DictReader(open(out / "losses" / "index.csv")))
    assert len(index) == 4 * 2
    for entry in index:
        lost = np.load(out / "losses" / entry["file"])
        assert lost.dtype == bool and lost.shape == (200 * 224,)
        match = [
            r
            for r in rows
            if r["channel"] == entry["channel"]
            and r["loss_rate"] == float(entry["loss_rate"])
            and r["trial"] == int(entry["trial"])
        ]
        assert match and all(r["realised_loss_rate"] == lost.mean() for r in match)


# Dask on less work than TINY: a trained method (fitted in the workers from the cache), a
# batched torch one and the trivial one, on both channel kinds.
DASK = """\
name: dask
seed: 7
data: {n_images: 60}
channels:
  - {kind: iid, loss_rates: [0.3]}
  - {kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [4]}
methods: [zeros, altec, {name: halrtc, max_iters: 3}]
trials: 2
"""


def test_dask_local_cluster_gives_identical_results(run_dir):
    from dask.distributed import LocalCluster

    local = run_scenario(run_dir, DASK, "dask.yaml", "dask-local")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        assert (
            main(
                [
                    "run",
                    str(run_dir / "dask.yaml"),
                    "--out",
                    str(run_dir / "dask"),
                    "--quiet",
                    "--dask",
                    cluster.scheduler_address,
                ]
            )
            == 0
        )
    b = read_results_csv(run_dir / "dask" / "results.csv")
    assert len(b) == 2 * 2 * 3 and len({r["method"] for r in b}) == 3
    assert without_timing(local) == without_timing(b)


def test_unreachable_dask_scheduler_is_a_user_error(run_dir, capsys):
    assert (
        main(
            [
                "run",
                str(run_dir / "tiny.yaml"),
                "--out",
                str(run_dir / "nodask"),
                "--quiet",
                "--dask",
                "tcp://127.0.0.1:9",
            ]
        )
        == 2
    )
    assert "--dask: cannot reach the scheduler at 'tcp://127.0.0.1:9'" in capsys.readouterr().err
    assert not (run_dir / "nodask").exists()
