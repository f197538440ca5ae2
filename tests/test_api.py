"""The Python API (dfsim.api): its guide page's code runs, load reads what the commands
wrote (the same numbers as summary.csv and bd_rate.md), run takes a dict, YAML text or a
path alike, and mistakes are one-line errors."""

import re
import subprocess
import sys
from pathlib import Path

import matplotlib.figure
import pandas as pd
import pytest

import dfsim
from dfsim.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "guide" / "python-api.md"

TINY = """\
name: tiny
seed: 7
data: {n_images: 20}
channels:
  - {kind: iid, loss_rates: [0.2]}
methods: [zeros, linear]
trials: 2
"""


def without_timing(frame: pd.DataFrame) -> pd.DataFrame:
    from dfsim.experiment.results import pipeline_metrics

    return frame.drop(columns=[m.name for m in pipeline_metrics() if m.timing], errors="ignore")


@pytest.fixture(scope="module")
def default():
    return dfsim.load(ROOT / "results" / "default")


@pytest.fixture(scope="module")
def from_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    (d / "tiny.yaml").write_text(TINY)
    return dfsim.run(d / "tiny.yaml", out=d / "out", workers=1)


def test_import_dfsim_loads_neither_torch_nor_pandas():
    code = "import sys, dfsim; print(sorted({'torch', 'pandas', 'dfsim.api'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr
    assert dfsim.run is dfsim.api.run and dfsim.load is dfsim.api.load
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dfsim.nothing  # noqa: B018


def test_the_guide_page_runs(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(ROOT)  # the page loads results/default
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    res, table, fig = namespace["res"], namespace["table"], namespace["fig"]
    assert list(res.trials.method.unique()) == ["zeros", "linear"]
    assert len(res.trials) == 2 * 2 * 2  # loss rates x trials x methods
    assert res.directory.is_dir() and (res.directory / "results.csv").is_file()
    assert set(table.method) == set(namespace["default"].methods)
    assert isinstance(fig, matplotlib.figure.Figure) and fig.axes[0].get_lines()
    assert not list(res.directory.glob("agreement_vs_*"))  # plot writes nothing unasked
    assert "linear" in [ax.get_title().split("\n")[0] for ax in namespace["drawn"].axes]


def test_load_matches_the_committed_files(default):
    d = ROOT / "results" / "default"
    trials = default.trials
    assert list(trials.columns) == (d / "results.csv").read_text().splitlines()[0].split(",")
    assert len(trials) == 320 and trials.trial.dtype == "int64"
    assert trials.top1.mean() == pytest.approx(pd.read_csv(d / "results.csv").top1.mean())
    assert default.manifest["scenario"]["name"] == "default"
    committed = pd.read_csv(d / "summary.csv")
    summary = default.summary
    assert list(summary.columns) == list(committed.columns)
    assert summary.method.tolist() == committed.method.tolist()
    numbers = committed.select_dtypes("number").columns
    pd.testing.assert_frame_equal(
        summary[numbers].astype(float), committed[numbers].astype(float), check_exact=True
    )


def test_compare_is_the_summary_paired_test(default):
    table = default.compare("top1")  # the scenario's reference: zeros
    summary = default.summary
    assert len(table) == len(summary)
    for col in ("top1_mean", "top1_ci95", "top1_diff_vs_reference", "p_vs_reference"):
        assert table[col].tolist() == pytest.approx(summary[col].tolist(), nan_ok=True)
    assert (table.top1_low == table.top1_mean - table.top1_ci95).all()
    row = table[(table.method == "linear") & (table.channel == "iid") & (table.loss_rate == 0.1)]
    assert row.top1_diff_vs_reference.item() == pytest.approx(0.0252)
    assert row.p_vs_reference.item() < 0.05
    # another metric by its short name, another reference: paired against that one
    other = default.compare("completion_ms", reference="linear")
    assert (other[other.method == "linear"].completion_ms_per_tensor_diff_vs_reference == 0).all()
    assert set(other.reference) == {"linear"}
    assert "split" not in table.columns  # one config: its columns do not vary


def test_bd_rate_matches_the_committed_table():
    table = dfsim.load(ROOT / "results" / "rate-accuracy").bd_rate(anchor="raw")
    committed = (ROOT / "results" / "rate-accuracy" / "bd_rate.md").read_text()
    # | iid | 0 | 1 | zeros | -13.9 % | -53.7 % | -57.0 % |
    first = next(line for line in committed.splitlines() if line.startswith("| iid | 0 | 1 |"))
    cells = [c.strip() for c in first.strip("|").split("|")]
    head = next(line for line in committed.splitlines() if line.startswith("| channel"))
    curves = [c.strip() for c in head.strip("|").split("|")][4:]
    got = table[(table.loss_rate == 0) & (table.channel == "iid") & (table.method == cells[3])]
    for curve, text in zip(curves, cells[4:], strict=True):
        value = got[got.curve == curve].bd_rate.item()
        assert f"{value:+.1f} %" == text


def test_gain_matches_the_compare_command(capsys):
    from dfsim.tools.cli import main

    assert main(["compare", str(ROOT / "results" / "default"), "--gain"]) == 0
    table = capsys.readouterr().out.splitlines()
    head = [c.strip() for c in table[2].strip("|").split("|")]
    iid = [c.strip() for c in table[4].strip("|").split("|")]
    gains = dfsim.load(ROOT / "results" / "default").gain()
    got = gains[gains.channel == "iid"].set_index("method")
    assert list(got.index) == head[3:] and set(got.loss_rates) == {"0-30 %"}
    for method, text in zip(head[3:], iid[3:], strict=True):
        assert f"{100 * got.gain[method]:.2f} ± {100 * got.gain_ci95[method]:.2f}" == text
    with pytest.raises(UserError, match=r"loss_range: expected 0 <= low < high <= 1"):
        dfsim.load(ROOT / "results" / "default").gain(loss_range=(0.3, 0.1))


def test_run_from_dict_yaml_and_path_gives_the_same_trials(from_path):
    import yaml

    from_dict = dfsim.run(yaml.safe_load(TINY), workers=1)
    from_text = dfsim.run(TINY, workers=1)
    expected = without_timing(from_path.trials)
    assert len(expected) == 4 and expected.top1.notna().all()
    pd.testing.assert_frame_equal(without_timing(from_dict.trials), expected)
    pd.testing.assert_frame_equal(without_timing(from_text.trials), expected)
    assert from_dict.manifest["seed"] == 7
    assert from_path.directory.name == "out"
    assert (from_path.directory / "summary.csv").is_file()
    assert from_path.summary.top1_mean.tolist() == pytest.approx(
        pd.read_csv(from_path.directory / "summary.csv").top1_mean.tolist()
    )


def test_seed_replaces_the_scenarios(from_path):
    other = dfsim.run(TINY, workers=1, seed=8)
    assert other.manifest["seed"] == 8
    losses = other.trials.realised_loss_rate.tolist()
    assert losses != from_path.trials.realised_loss_rate.tolist()


def test_plot_writes_only_when_asked(from_path, tmp_path):
    fig = from_path.plot(y="top1", by="channel", save=tmp_path / "f.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any("linear" in label for label in labels)


def test_a_method_keeps_its_colour_in_a_subset():
    from matplotlib.colors import to_hex

    default = dfsim.load(ROOT / "results" / "default")

    def colours(fig):
        return {
            ln.get_label().split(" — ")[0]: to_hex(ln.get_color())
            for ax in fig.axes
            for ln in ax.get_lines()
            if not ln.get_label().startswith("_")
        }

    every = colours(default.plot(by="channel"))
    some = colours(default.plot(by="channel", methods=["caltec", "altec"]))
    assert some["altec"] == every["altec"] and some["caltec"] == every["caltec"]
    assert len(set(every.values())) == len(default.methods)


def test_example_returns_the_figure_of_dfsim_example(tmp_path):
    fig = dfsim.example(TINY, loss=0.2, image=3, save=tmp_path / "e.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes if ax.get_title()]
    assert titles[:3] == ["no recovery", "linear", "no loss"]
    assert "image 3, iid loss 20%" in fig._suptitle.get_text()
    assert (tmp_path / "e.png").stat().st_size > 0
    with pytest.raises(UserError, match=r"scenario YAML: .*0\.5"):
        dfsim.example(TINY, loss=0.5)


BAD_RUNS = [
    ("nowhere/missing.yaml", "nowhere/missing.yaml: scenario file not found"),
    (TINY.replace("trials: 2", "trials: 0"), "scenario YAML: trials: 0 is out of range"),
    (TINY + "colour: red\n", "scenario YAML: colour: unknown key"),
    ("name: [unclosed\n", "scenario YAML: invalid YAML (line 2, column 1)"),
    ("name: x\n" + "#" * (1 << 20), "scenario YAML: scenario text is larger than 1024 KiB"),
    (
        {"channels": [{"kind": "iid", "loss_rates": [0.1]}], "methods": ["zeros"], "trails": 1},
        "scenario dict: trails: unknown key",
    ),
    ({"channels": [{"kind": "iid", "loss_rates": [0.1]}]}, "scenario dict: methods: required"),
    (42, "scenario: expected a file path, a dict or YAML text, got int"),
]


@pytest.mark.parametrize(("scenario", "message"), BAD_RUNS)
def test_bad_scenarios_are_one_line_errors(scenario, message):
    with pytest.raises(UserError) as err:
        dfsim.run(scenario, workers=1)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bad_arguments_are_one_line_errors(default, tmp_path):
    cases = [
        (lambda: dfsim.run(TINY, workers=0), "workers: must be >= 1, got 0"),
        (lambda: dfsim.run(TINY, workers="2"), "workers: expected an integer, got '2'"),
        (lambda: dfsim.load(tmp_path / "none"), f"{tmp_path / 'none'}: no such results"),
        (lambda: dfsim.load(tmp_path), f"{tmp_path}: no results.csv"),
        (lambda: default.compare("nonsense"), "metric: 'nonsense' is not a metric"),
        (lambda: default.compare(reference="best"), "reference: 'best' is not a method"),
        (lambda: default.plot(x="time"), "x: 'time' is not an axis"),
        (lambda: default.plot(by="colour"), "by: unknown field 'colour'"),
        (lambda: default.plot(methods=["best"]), "methods: 'best' is not a method"),
        (lambda: default.bd_rate(curves="colour"), "curves: unknown field 'colour'"),
        (lambda: default.best_within(100, rate="speed"), "rate: 'speed' is not a column"),
        (lambda: default.best_within([]), "budgets: expected finite numbers"),
    ]
    (tmp_path / "file").write_text("x")
    cases.append((lambda: dfsim.run(TINY, out=tmp_path / "file"), "out: "))
    for call, message in cases:
        with pytest.raises(UserError) as err:
            call()
        assert str(err.value).startswith(message), (message, str(err.value))
        assert "\n" not in str(err.value)


def test_yaml_text_and_paths_are_told_apart(tmp_path, monkeypatch):
    from dfsim.api import _is_yaml_text

    assert _is_yaml_text(TINY) and _is_yaml_text("{name: t, trials: 1}")
    assert not _is_yaml_text("scenarios/default.yaml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(TINY.replace("trials: 2", "trials: -1"))
    with pytest.raises(UserError, match=r"^s\.yaml: trials: -1 is out of range"):
        dfsim.run("s.yaml", workers=1)


def test_best_within_picks_the_best_affordable_config():
    r = dfsim.load(ROOT / "results" / "rd-allocation")
    table = r.summary
    best = r.best_within([130.0, 175.0], rate="kbpi")
    assert len(best) == 3 * 2 * 2  # loss rates x methods x budgets
    for row in best.itertuples():
        same = table[
            (table.loss_rate == row.loss_rate)
            & (table.method == row.method)
            & (table.kbpi_mean <= row.budget)
        ]
        assert row.top1_mean == same.top1_mean.max()
        assert row.kbpi <= row.budget
        chosen = same[(same.bits == row.bits) & (same.bits_s1 == row.bits_s1)]
        assert chosen.top1_mean.iloc[0] == row.top1_mean
    # a total of 130 kbit affords (2, 2) and (2, 3) only: the branch takes the extra bit
    at_130 = best[best.budget == 130]
    assert set(zip(at_130.bits, at_130.bits_s1, strict=True)) == {(2, 3)}
    with pytest.raises(UserError, match=r"^budgets: 99 is below every config's kbpi "):
        r.best_within(99, rate="kbpi")
