"""Per-stream encoding (``encoding.streams``): a cut across a skip connection (the test
model of tests/byo_model.py split after ``c2``: two 8x16x16 tensors) with its own codec
parameters for one tensor, as a grid key; the per-stream columns; the errors."""

from pathlib import Path

import pytest
import yaml
from conftest import two_tensor_scenario

from dfsim.errors import UserError
from dfsim.experiment.results import ResultsSchema, read_results_csv
from dfsim.experiment.scenario import parse_scenario
from dfsim.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _scenario(**encoding) -> dict:
    return two_tensor_scenario(name="per-stream", encoding={"codec": "raw", "bits": 8, **encoding})


def _write(tmp_path, scn: dict) -> str:
    path = tmp_path / "per-stream.yaml"
    path.write_text(yaml.safe_dump(scn))
    return str(path)


def test_a_stream_grid_varies_that_stream_only(tmp_path, skip_model):
    out = tmp_path / "out"
    scn = _write(tmp_path, _scenario(streams={1: {"bits": [2, 8]}}))
    assert main(["run", scn, "--out", str(out), "--quiet", "--workers", "1"]) == 0
    rows = read_results_csv(out / "results.csv")
    assert [(r["bits"], r["bits_s1"]) for r in rows] == [(8, 2), (8, 8)]
    low, high = rows
    # raw codec: 8x16x16 values per tensor at the bits given, plus its side information
    side = low["bits_per_image_s0"] - 8 * 16 * 16 * 8
    assert 0 < side <= 128
    assert low["bits_per_image_s0"] == high["bits_per_image_s0"]
    assert (low["bits_per_image_s1"], high["bits_per_image_s1"]) == (
        8 * 16 * 16 * 2 + side,
        8 * 16 * 16 * 8 + side,
    )
    assert high["bits_per_image"] == 2 * high["bits_per_image_s0"]
    for r in rows:
        assert r["bits_per_image_s0"] + r["bits_per_image_s1"] == pytest.approx(
            r["bits_per_image"], rel=1e-12
        )
        assert r["kbpi_s0"] + r["kbpi_s1"] == pytest.approx(r["kbpi"], rel=1e-12)
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    rates = ["bits_per_image_s0", "bits_per_image_s1", "kbpi_s0", "kbpi_s1"]
    assert [c for c in header if c.endswith(("_s0", "_s1"))] == [*rates, "bits_s1"]
    assert isinstance(rows[0]["bits_s1"], int)  # typed as the parameter it overrides


def test_the_schema_declares_per_stream_rates_as_metrics():
    class Task:
        metrics = ()

    rows = [{"method": "zeros", "kbpi_s1": 1.0, "bits_per_image_s1": 1e3, "bits_s1": 2}]
    schema = ResultsSchema.for_rows(Task(), rows)
    assert schema.config_columns == ("bits_s1",)
    assert schema.metric("kbpi_s1").unit == "kbit"
    assert schema.metric("bits_per_image_s1").label == "coded bits per image, tensor 1"
    assert schema.columns[-3:] == ["bits_per_image_s1", "kbpi_s1", "bits_s1"]


def test_a_scenario_without_streams_has_no_per_stream_columns():
    scn = parse_scenario(_scenario())
    (cfg,) = scn.configs
    assert cfg.streams == () and cfg.codec_of(1) is cfg.codec
    assert not any(k.endswith("_s1") for k in cfg.columns("c2"))
    assert "streams" not in scn.resolved()["encoding"]


def test_stream_configs_codecs_and_manifest():
    scn = parse_scenario(_scenario(streams={1: {"bits": [2, 4]}, 0: {"bits": 6}}))
    assert [c.streams for c in scn.configs] == [
        ((0, (("bits", 6),)), (1, (("bits", 2),))),
        ((0, (("bits", 6),)), (1, (("bits", 4),))),
    ]
    cfg = scn.configs[0]
    assert cfg.codec.kwargs["bits"] == 8  # the shared codec, as before
    assert cfg.codec_of(0).kwargs["bits"] == 6 and cfg.codec_of(1).kwargs["bits"] == 2
    assert cfg.codec_of(2) is cfg.codec
    assert cfg.columns("c2")["bits_s1"] == 2 and cfg.columns("c2")["bits_s0"] == 6
    assert "stream 0: bits 6; stream 1: bits 2" in cfg.describe()
    assert scn.resolved()["encoding"]["streams"] == {0: {"bits": 6}, 1: {"bits": [2, 4]}}


def test_a_stream_key_zips_with_the_shared_one():
    raw = _scenario(bits=[4, 8], streams={1: {"bits": [2, 6]}})
    raw["zip"] = [["encoding.bits", "encoding.streams.1.bits"]]
    scn = parse_scenario(raw)
    assert [(c.codec.kwargs["bits"], c.codec_of(1).kwargs["bits"]) for c in scn.configs] == [
        (4, 2),
        (8, 6),
    ]


@pytest.mark.parametrize(
    "streams, message",
    [
        (
            {1: {"bitz": 4}},
            "encoding.streams.1.bitz: not a parameter of codec raw (parameters: bits); "
            "did you mean 'bits'?",
        ),
        ({"skip": {"bits": 4}}, "encoding.streams.skip: not a stream"),
        ({-1: {"bits": 4}}, "encoding.streams.-1: not a stream"),
        ({1: {"bits": 99}}, "encoding.streams.1.bits"),
        ({1: {"bits": [2, 2]}}, "encoding.streams.1.bits: 2 is listed twice"),
        ({1: {}}, "encoding.streams.1: expected a mapping of codec parameters"),
        ({1: {"codec": ["range", "raw"]}}, "encoding.streams.1.codec: expected one codec name"),
        ({1: {"codec": "rnage"}}, "encoding.streams.1.codec: "),
        ({1: {"codec": "zstd", "qp": 3}}, "encoding.streams.1.qp: not a parameter of codec zstd"),
        ([4], "encoding.streams: expected a mapping of tensor index"),
    ],
)
def test_stream_mistakes_are_one_line_errors(streams, message):
    with pytest.raises(UserError) as err:
        parse_scenario(_scenario(streams=streams))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_encoding_key_suggests_streams():
    with pytest.raises(UserError, match="did you mean 'streams'"):
        parse_scenario(_scenario(stream={1: {"bits": 4}}))


def test_a_stream_the_cut_lacks_is_refused_naming_the_count(tmp_path, skip_model, capsys):
    scn = _write(tmp_path, _scenario(streams={2: {"bits": 4}}))
    assert main(["run", scn, "--dry-run", "--no-estimate"]) != 0
    err = capsys.readouterr().err.strip()
    assert "encoding.streams.2: the cut at split 'c2' passes 2 tensors (streams 0 to 1)" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_dry_run_lists_the_per_stream_encodings(tmp_path, skip_model, capsys):
    scn = _write(tmp_path, _scenario(streams={1: {"bits": [2, 8]}}))
    assert main(["run", scn, "--dry-run", "--no-estimate", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "2 configs:" in out
    assert "raw (bits 8; stream 1: bits 2)" in out and "raw (bits 8; stream 1: bits 8)" in out


def test_the_traced_fmnist_resnet_has_two_tensor_cuts_inside_its_blocks():
    import numpy as np
    import torch

    from dfsim.models import load_model

    traced, sequential = load_model("fmnist-resnet-traced"), load_model("fmnist-resnet")
    assert traced.default_split == "add_1.main"
    assert [t.shape for t in traced.crossing("add_1.main")] == [(32, 28, 28)] * 2
    assert [t.shape for t in traced.crossing("add_2.shortcut")] == [(64, 14, 14)] * 2
    images = np.random.default_rng(0).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        skip, branch = traced.edge("add_1.main")(traced.normalise(images))
        (add_1,) = sequential.edge("add_1")(sequential.normalise(images))
        out = traced.full()(traced.normalise(images))
        ref = sequential.full()(sequential.normalise(images))
    assert torch.allclose(skip + branch, add_1, atol=1e-4)  # the sum the other cut sends
    assert torch.allclose(out, ref, atol=1e-4)


def test_reconstruction_at_the_traced_cut_mirrors_the_sum_of_its_two_tensors():
    """A two-stream, two-task system: the mirror serves fmnist-resnet-traced at add_1.main
    by summing the skip and the branch into add_1 first; it matches the mirror of
    fmnist-resnet at add_1 on the same images."""
    import numpy as np
    import torch

    from dfsim.models import load_model
    from dfsim.tasks.reconstruction import Reconstruction

    traced, sequential = load_model("fmnist-resnet-traced"), load_model("fmnist-resnet")
    images = np.random.default_rng(1).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    two, one = Reconstruction(), Reconstruction()
    with torch.no_grad():
        tensors = traced.edge("add_1.main")(traced.normalise(images))
        (add_1,) = sequential.edge("add_1")(sequential.normalise(images))
        got = two.cloud_model(traced, "add_1.main")(*tensors)
        want = one.cloud_model(sequential, "add_1")(add_1)
    assert got.shape == (4, 1, 28, 28)
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(UserError, match="reconstruction has a mirror model for"):
        Reconstruction().bind(traced, "add_2.shortcut")


def test_a_stream_with_a_codec_of_its_own(tmp_path, skip_model):
    """Stream 1 coded by zstd (taking the shared 8 bits), stream 0 by raw at 2 and 8 bits:
    each tensor's rate is its own codec's; the grid's stream-0 list makes two configs."""
    out = tmp_path / "out"
    scn = _scenario(bits=[2, 8], streams={1: {"codec": "zstd"}})
    scn["channels"] = [{"kind": "iid", "loss_rate": 0.0}]
    parsed = parse_scenario(scn)
    assert [c.codec_of(1).name for c in parsed.configs] == ["zstd", "zstd"]
    assert [dict(c.codec_of(1).params)["bits"] for c in parsed.configs] == [2, 8]
    assert main(["run", _write(tmp_path, scn), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    rows = read_results_csv(out / "results.csv")
    assert [(r["codec"], r["bits"], r["codec_s1"]) for r in rows] == [
        ("raw", 2, "zstd"),
        ("raw", 8, "zstd"),
    ]
    # each tensor's rate is what its codec gives it alone: the same as in a run where every
    # tensor has that codec
    for codec in ("raw", "zstd"):
        alone = _scenario(codec=codec, bits=[2, 8], streams={1: {"bits": [2, 8]}})
        alone["channels"] = scn["channels"]
        alone["zip"] = [["encoding.bits", "encoding.streams.1.bits"]]
        one = tmp_path / codec
        path = tmp_path / f"{codec}.yaml"
        path.write_text(yaml.safe_dump(alone))
        assert main(["run", str(path), "--out", str(one), "--quiet", "--workers", "1"]) == 0
        ref = read_results_csv(one / "results.csv")
        column = "bits_per_image_s0" if codec == "raw" else "bits_per_image_s1"
        assert [r[column] for r in rows] == [r[column] for r in ref]
    assert rows[1]["bits_per_image_s1"] != rows[1]["bits_per_image_s0"]
    own = parse_scenario(_scenario(streams={1: {"codec": "zstd", "bits": 4}})).configs[0]
    assert dict(own.codec_of(1).params)["bits"] == 4 and own.codec_of(0).name == "raw"
