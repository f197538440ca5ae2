"""A grid over split point and rows per packet, run end to end: every config's rows, the
same numbers with 1 and 2 workers, Dask and after a resume; statistics and figures keep
configs apart."""

import pytest
from conftest import run_scenario, without_timing

from dfsim.experiment import executors, plots, statistics
from dfsim.experiment.results import ResultsSchema, read_results_csv
from dfsim.tasks.classification import Classification
from dfsim.tools.cli import main

GRID = """\
seed: 11
data: {n_images: 60}
model: {split: [add_1, relu_2]}
packets: {rows_per_packet: [2, 7]}
channels:
  - {kind: iid, loss_rates: [0.2]}
  - {kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [3]}
methods: [zeros, linear, {name: halrtc, max_iters: [1, 2]}]
trials: 2
"""


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    d = tmp_path_factory.mktemp("grid")
    return d, run_scenario(d, GRID, "g.yaml", "w1")


def test_every_config_cell_trial_and_method_has_one_row(grid):
    _, rows = grid
    assert len(rows) == 4 * 2 * 2 * 4
    keys = {(r["split"], r["rows_per_packet"], r["channel"], r["trial"], r["method"]) for r in rows}
    assert len(keys) == len(rows)
    ppi = {(r["split"], r["rows_per_packet"]): r["packets_per_image"] for r in rows}
    # add_1 is 32x28x28, relu_2 64x14x14: ceil(H / rows) bands per channel
    assert ppi == {
        ("add_1", 2): 32 * 14,
        ("add_1", 7): 32 * 4,
        ("relu_2", 2): 64 * 7,
        ("relu_2", 7): 64 * 2,
    }
    assert {r["method"] for r in rows} == {
        "zeros",
        "linear",
        "halrtc(max_iters=1)",
        "halrtc(max_iters=2)",
    }


def test_two_workers_give_identical_results(grid):
    """Configs spread over two worker processes (Dask's executor is checked on one config
    in test_end_to_end: units of a grid go through it the same way)."""
    d, ref = grid
    assert (
        main(["run", str(d / "g.yaml"), "--out", str(d / "w2"), "--quiet", "--workers", "2"]) == 0
    )
    assert without_timing(read_results_csv(d / "w2" / "results.csv")) == without_timing(ref)


def test_interrupted_grid_resumes_to_identical_results(grid, tmp_path, monkeypatch):
    d, ref = grid
    real, calls = executors.run_unit, {"n": 0}

    def flaky(unit):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(unit)

    monkeypatch.setattr(executors, "run_unit", flaky)
    assert (
        main(["run", str(d / "g.yaml"), "--out", str(tmp_path), "--quiet", "--workers", "1"]) == 130
    )
    assert (
        sorted(p.name for p in (tmp_path / ".partial").glob("unit-*.json"))[0] == "unit-0-0-0.json"
    )
    monkeypatch.setattr(executors, "run_unit", real)
    assert (
        main(["run", str(d / "g.yaml"), "--out", str(tmp_path), "--quiet", "--workers", "1"]) == 0
    )
    assert without_timing(read_results_csv(tmp_path / "results.csv")) == without_timing(ref)


def test_summary_keeps_configs_apart(grid):
    _, rows = grid
    schema = ResultsSchema.for_rows(Classification(), rows)
    summary = statistics.summarize(rows, schema, "zeros")
    assert len(summary) == 4 * 2 * 4 and all(s["trials"] == 2 for s in summary)
    table = statistics.markdown_table(summary, schema, "top1")
    assert table.splitlines()[0].startswith("| split | rows/packet | channel | loss | burst |")
    assert "| relu_2 | 7 | gilbert-elliott | 0.3 | 3 |" in table


def test_plots_never_pool_configs(grid, tmp_path):
    _, rows = grid
    svg = tmp_path / "p.svg"
    plots.metric_plot(
        rows,
        ResultsSchema.for_rows(Classification(), rows),
        [svg],
        "loss_rate",
        "top1",
        ("channel",),
    )
    text = svg.read_text()
    # 16 lines: past 10 legend entries, channel and split go into a grid of panels
    for label in (
        "i.i.d., split add_1",
        "Gilbert-Elliott, split relu_2",
        "zeros — rows per packet 2",
        "linear — rows per packet 7",
    ):
        assert f">{label}<" in text


def test_manifest_lists_each_config(grid):
    import json

    d, _ = grid
    m = json.loads((d / "w1" / "manifest.json").read_text())
    assert [(c["split"], c["rows_per_packet"]) for c in m["configs"]] == [
        ("add_1", 2),
        ("add_1", 7),
        ("relu_2", 2),
        ("relu_2", 7),
    ]
    assert m["scenario"]["model"]["split"] == ["add_1", "relu_2"]


def test_saved_loss_patterns_replay_as_a_trace_channel(tmp_path):
    """--save-losses then kind: trace reproduces the saved trial's losses and numbers."""
    import numpy as np

    base = "seed: 5\ndata: {n_images: 40}\nmethods: [zeros, linear]\ntrials: 1\n"
    (tmp_path / "a.yaml").write_text(
        base + "channels: [{kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [3]}]\n"
    )
    assert (
        main(
            [
                "run",
                str(tmp_path / "a.yaml"),
                "--out",
                str(tmp_path / "a"),
                "--quiet",
                "--workers",
                "1",
                "--save-losses",
            ]
        )
        == 0
    )
    saved = tmp_path / "a" / "losses" / "cell000_trial000.npy"
    (tmp_path / "b.yaml").write_text(base + f"channels: [{{kind: trace, file: {saved}}}]\n")
    assert (
        main(
            [
                "run",
                str(tmp_path / "b.yaml"),
                "--out",
                str(tmp_path / "b"),
                "--quiet",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    a = read_results_csv(tmp_path / "a" / "results.csv")
    b = read_results_csv(tmp_path / "b" / "results.csv")
    assert [r["channel"] for r in b] == ["trace", "trace"]
    assert b[0]["loss_rate"] == float(np.load(saved).mean())
    for ra, rb in zip(a, b, strict=True):
        assert (ra["top1"], ra["mse_lost"], ra["realised_loss_rate"]) == (
            rb["top1"],
            rb["mse_lost"],
            rb["realised_loss_rate"],
        )


def test_trace_channel_errors_name_the_key(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("0,1,x\n")
    for channel, message in [
        ("{kind: trace}", "channels[0].file: required for the trace channel"),
        (f"{{kind: trace, file: {tmp_path / 'none.npy'}}}", "channels[0].file: file"),
        (
            f"{{kind: trace, file: {tmp_path / 'bad.csv'}}}",
            "bad.csv: loss flags must be 0 or 1, found 'x'",
        ),
        (
            f"{{kind: trace, file: {tmp_path / 'bad.csv'}, trial_offset: -1}}",
            "channels[0].trial_offset: -1 is out of range",
        ),
    ]:
        (tmp_path / "s.yaml").write_text(
            f"data: {{n_images: 10}}\nmethods: [zeros]\nchannels: [{channel}]\n"
        )
        assert main(["run", str(tmp_path / "s.yaml"), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
