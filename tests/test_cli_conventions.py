"""Command-line conventions: --version, a bare ``dfsim``, "did you mean" on misspelt names,
``dfsim compare`` refusing to mix scenarios, every scenario mistake at once, and no interval
from a single trial."""

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from test_scenario import GOOD, write  # the smallest valid scenario, written to a file

from dfsim.errors import UserError
from dfsim.experiment.results import ResultsSchema, write_results_csv
from dfsim.experiment.scenario import ScenarioErrors, parse_scenario
from dfsim.experiment.statistics import average_gain, gain_table, markdown_table, summarize
from dfsim.tasks.classification import Classification
from dfsim.tools import cli
from dfsim.tools.cli import main
from dfsim.tools.cli.common import read_results

ROOT = Path(__file__).resolve().parents[1]


def errors(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# --------------------------------------------------------------------------- 1. --version
def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"dfsim {metadata.version('dfsim')}\n"


def test_version_falls_back_to_pyproject_when_not_installed(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cli.version() == declared


def test_version_in_a_process_exits_zero():
    proc = subprocess.run(
        [sys.executable, "-m", "dfsim", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == f"dfsim {metadata.version('dfsim')}"


# --------------------------------------------------------------------------- 2. bare dfsim
def test_bare_dfsim_prints_the_help_and_exits_zero(capsys):
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: dfsim ")
    assert "Deep-feature transmission simulator." in captured.out
    assert "compare" in captured.out and "--version" in captured.out
    assert captured.err == ""


# --------------------------------------------------------------------------- 3. did you mean
@pytest.mark.parametrize(
    "old,new,message",
    [
        (
            "methods: [zeros]",
            "methods: [{name: halrtc, max_iter: 3}]",
            "methods[0].max_iter: not a parameter of the halrtc completion method (its "
            "parameters: max_iters, tol, alpha, rho, rho_growth, rho_max, time_budget_ms); "
            "did you mean 'max_iters'?",
        ),
        (
            "methods: [zeros]",
            "methods: [altek]",
            "methods[0]: unknown completion method 'altek' (one of altec, zeros, linear, "
            "caltec, inpaint_ns, inpaint_telea, silrtc, halrtc); did you mean 'altec'?",
        ),
        ("trials: 1", "trails: 1", "trails: unknown key (allowed here: name, seed, trials, "),
        ("trials: 1", "network: {bandwith_mbps: 3}", "did you mean 'bandwidth_mbps'?"),
        (
            "data: {n_images: 20}",
            "data: {n_image: 20}",
            "data.n_image: unknown key (allowed here: dataset, n_images, fit_dir, subset, dir); "
            "did you mean 'n_images'?",
        ),
        (
            "trials: 1",
            "encoding: {codec: [zstd, brotli], qualty: 3}",
            "did you mean 'quality'?",
        ),
        (
            "kind: iid",
            "kind: gilbert-elliott, burst_lenght: 4",
            "channels[0].burst_lenght: not a parameter of the gilbert-elliott channel (its "
            "parameters: loss_rates, burst_lengths); did you mean 'burst_length'?",
        ),
    ],
)
def test_a_misspelt_key_or_name_gets_a_suggestion(tmp_path, capsys, old, new, message):
    scn = write(tmp_path, GOOD.replace(old, new))
    assert main(["run", str(scn), "--dry-run"]) == 2
    (line,) = errors(capsys)
    assert line.startswith(f"dfsim: error: {scn}: ")
    assert message in line
    assert line.endswith("?") and line.count("did you mean") == 1


def test_no_suggestion_when_nothing_is_close(tmp_path, capsys):
    scn = write(tmp_path, GOOD.replace("[zeros]", "[qqqqqq]") + "zz: 1\n")
    assert main(["run", str(scn), "--dry-run"]) == 2
    lines = errors(capsys)
    assert [ln.split(": ")[3] for ln in lines] == ["zz", "methods[0]"]
    assert lines[0].endswith("channels, methods, zip)")
    assert lines[1].endswith("inpaint_telea, silrtc, halrtc)")


# --------------------------------------------------------------------------- 5. every error
def test_every_mistake_of_a_scenario_is_reported_at_once(tmp_path, capsys):
    text = """\
    name: t
    trails: 3
    data: {n_images: 0}
    model: {name: fmnist-resnt}
    encoding: {bits: 20}
    channels:
      - {kind: iid, loss_rates: [1.5]}
    methods: [altek]
    trials: 0
    network: {header_bytes: -1}
    """
    scn = write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", str(scn), "--out", str(out), "--quiet"]) == 2
    lines = errors(capsys)
    prefix = f"dfsim: error: {scn}: "
    assert all(ln.startswith(prefix) for ln in lines), lines
    assert [ln[len(prefix) :].split(":")[0] for ln in lines] == [
        "trails",
        "trials",
        "model.name",
        "encoding.bits",
        "channels[0].loss_rates[0]",
        "methods[0]",
        "data.n_images",
        "network.header_bytes",
    ]
    assert lines[1] == f"{prefix}trials: 0 is out of range (must be [1, 100000])"
    assert not out.exists()


def test_a_single_mistake_is_reported_exactly_as_before(tmp_path, capsys):
    scn = write(tmp_path, GOOD.replace("trials: 1", "trials: -1"))
    assert main(["run", str(scn), "--dry-run"]) == 2
    assert errors(capsys) == [
        f"dfsim: error: {scn}: trials: -1 is out of range (must be [1, 100000])"
    ]


def test_the_errors_are_one_user_error_one_per_line():
    raw = {"channels": [{"kind": "iid", "loss_rate": 2}], "methods": ["zeros"], "trials": 0}
    with pytest.raises(UserError) as exc:
        parse_scenario(raw)
    assert isinstance(exc.value, ScenarioErrors)
    assert exc.value.errors == (
        "trials: 0 is out of range (must be [1, 100000])",
        "channels[0].loss_rate: 2 is out of range (must be in [0, 1])",
    )
    assert str(exc.value) == "\n".join(exc.value.errors)


SMALLEST = {"channels": [{"kind": "iid", "loss_rate": 0.1}], "methods": ["zeros"]}


def test_missing_sections_and_a_bad_reference_are_each_reported():
    with pytest.raises(ScenarioErrors) as exc:
        parse_scenario({"trials": 2, "zz": 1})
    assert [e.split(":")[0] for e in exc.value.errors] == ["zz", "channels", "methods"]
    raw = {**SMALLEST, "reference_method": "altec"}
    with pytest.raises(ScenarioErrors) as exc:
        parse_scenario({**raw, "data": {"n_images": 0}})
    assert exc.value.errors == (
        "reference_method: 'altec' is not one of the scenario's methods (zeros)",
        "data.n_images: 0 is out of range (must be >= 1)",
    )


def test_a_plugin_that_cannot_be_loaded_ends_the_checks(tmp_path):
    """A plug-in registers components: without it, every name it registers would be
    reported unknown too."""
    raw = {
        "plugins": [str(tmp_path / "nope.py")],
        "channels": [{"kind": "my-channel"}],
        "methods": ["my-method"],
        "trials": 0,
    }
    with pytest.raises(ScenarioErrors) as exc:
        parse_scenario(raw)
    assert exc.value.errors == (
        "trials: 0 is out of range (must be [1, 100000])",
        f"plugins[0]: file {str(tmp_path / 'nope.py')!r} not found",
    )


def test_each_error_line_is_escaped_on_its_own(tmp_path, capsys):
    scn = write(tmp_path, GOOD + '"colour\\nred": 1\n"\\e[31mx": 2\n')
    assert main(["run", str(scn), "--dry-run"]) == 2
    lines = errors(capsys)
    assert len(lines) == 2
    assert r"'colour\nred': unknown key" in lines[0]
    assert r"'\x1b[31mx': unknown key" in lines[1]


def test_a_flood_of_mistakes_is_cut_short():
    raw = {f"k{i}": i for i in range(100)} | SMALLEST
    with pytest.raises(ScenarioErrors) as exc:
        parse_scenario(raw)
    assert len(exc.value.errors) == ScenarioErrors.SHOWN + 1
    assert exc.value.errors[0].startswith("k0: unknown key")
    assert exc.value.errors[-1] == f"... and {100 - ScenarioErrors.SHOWN} more errors"


def test_an_oversize_grid_is_still_refused_when_another_section_is_wrong():
    """The work units are counted even when the configs or trials are in error (for one
    config and one trial), so a huge channel list is never built."""
    raw = {
        "channels": [{"kind": "iid", "loss_rates": [i / 1000 for i in range(1000)]}],
        "methods": ["zeros"],
        "trials": "many",
    }
    with pytest.raises(ScenarioErrors) as exc:
        parse_scenario(raw, max_units=100)
    assert exc.value.errors[0] == "trials: expected an integer, got string 'many'"
    assert exc.value.errors[1].startswith("the scenario makes 1,000 work units")


# --------------------------------------------------------------------------- 4. compare
SCHEMA = ResultsSchema(Classification(), ("split", "order"))


def result_dir(tmp_path, name: str, scenario: dict | None, trials=(0.5, 0.6)) -> Path:
    """A result directory with two methods' rows and, unless None, a manifest whose
    resolved scenario is ``scenario``."""
    d = tmp_path / name
    d.mkdir()
    rows = []
    for method, shift in (("zeros", 0.0), ("linear", 0.2)):
        for t, v in enumerate(trials):
            r = dict.fromkeys(SCHEMA.columns, 0)
            r.update(
                method=method,
                channel="iid",
                loss_rate=0.1,
                burst_length=1 / 0.9,
                trial=t,
                top1=v + shift,
                agreement=v + shift,
                split="add_1",
                order="row-major",
            )
            rows.append(r)
    write_results_csv(rows, SCHEMA, d / "results.csv")
    if scenario is not None:
        (d / "manifest.json").write_text(json.dumps({"scenario": scenario}))
    return d


def scenario(**changes) -> dict:
    base = {
        "name": "s",
        "seed": 1,
        "model": {"name": "fmnist-resnet", "split": "add_1"},
        "data": {"dataset": "fashion-mnist", "subset": "test", "n_images": 100},
        "task": {"name": "classification"},
        "trials": 2,
    }
    for k, v in changes.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) else v
    return base


def test_compare_refuses_directories_of_different_scenarios(tmp_path, capsys):
    a = result_dir(tmp_path, "a", scenario())
    b = result_dir(tmp_path, "b", scenario(seed=2, data={"n_images": 200}))
    c = result_dir(tmp_path, "c", scenario(name="other"))
    assert main(["compare", str(a), str(b), str(c)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "dfsim: error: results of different scenarios or image sets: "
        f"{str(b)!r} differs from {str(a)!r} in seed, data.n_images; "
        f"{str(c)!r} differs from {str(a)!r} in name (--allow-mixed merges them anyway)"
    )


def test_compare_allow_mixed_merges_them_as_before(tmp_path, capsys):
    a = result_dir(tmp_path, "a", scenario())
    b = result_dir(tmp_path, "b", scenario(model={"weights": "w.pt"}))
    assert main(["compare", str(a), str(b)]) == 2
    assert "in model.weights (--allow-mixed merges them anyway)" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--allow-mixed"]) == 0
    out = capsys.readouterr().out
    assert "`a:zeros`" in out and "`b:linear`" in out


def test_compare_takes_runs_of_the_same_scenario(tmp_path, capsys):
    a = result_dir(tmp_path, "a", scenario())
    b = result_dir(tmp_path, "b", scenario(trials=5, output="elsewhere"))  # not compared
    bare = result_dir(tmp_path, "bare", None)  # no manifest: nothing to compare
    assert main(["compare", str(a), str(b), str(bare)]) == 0
    out = capsys.readouterr().out
    assert "`a:zeros`" in out and "`bare:linear`" in out


def test_compare_names_the_differing_model_field(tmp_path, capsys):
    a = result_dir(tmp_path, "a", scenario())
    b = result_dir(tmp_path, "b", scenario(model={"weights": "w.pt"}))
    assert main(["compare", str(a), str(b)]) == 2
    (line,) = errors(capsys)
    assert f"{str(b)!r} differs from {str(a)!r} in model.weights " in line
    c = result_dir(tmp_path, "c", {k: v for k, v in scenario().items() if k != "task"})
    assert main(["compare", str(a), str(c)]) == 2  # a field on one side only differs too
    assert f"{str(c)!r} differs from {str(a)!r} in task " in capsys.readouterr().err


# --------------------------------------------------------------------------- 6. intervals
def test_one_trial_shows_no_interval(tmp_path, capsys):
    one = result_dir(tmp_path, "one", None, trials=(0.5,))
    assert main(["compare", str(one)]) == 0
    out = capsys.readouterr().out
    row = next(x for x in out.splitlines() if x.startswith("| iid "))
    assert row == "| iid | 0.1 | 1.11 | 50.0 ± n/a | **70.0 ± n/a** |"
    two = result_dir(tmp_path, "two", None, trials=(0.5, 0.5))  # two trials: a real 0
    assert main(["compare", str(two)]) == 0
    out = capsys.readouterr().out
    row = next(x for x in out.splitlines() if x.startswith("| iid "))
    assert row == "| iid | 0.1 | 1.11 | 50.0 ± 0.0 | **70.0 ± 0.0*** |"


def test_a_gain_from_one_trial_shows_no_interval(tmp_path):
    rows, schema = read_results(result_dir(tmp_path, "one", None, trials=(0.5,)))
    rows += [{**r, "loss_rate": 0.0, "top1": 0.9} for r in rows]
    table = gain_table(average_gain(rows, schema, "top1"), schema, "top1", 0.0, 0.3)
    assert table.splitlines()[-1].endswith("| 0.00 ± n/a | 10.00 ± n/a |")


@pytest.mark.parametrize("directory", ["default", "codecs", "paper/classifier"])
def test_committed_summaries_regenerate_from_their_results(directory):
    """A multi-trial summary comes back byte for byte; a single-trial one (the paper's) with
    n/a where it had ± 0.0."""
    d = ROOT / "results" / directory
    rows, schema = read_results(d)
    reference = json.loads((d / "manifest.json").read_text())["scenario"]["reference_method"]
    summary = summarize(rows, schema, reference)
    text = markdown_table(summary, schema, schema.shown_metric(rows)) + "\n"
    committed = (d / "summary.md").read_text()
    if {r["trials"] for r in summary} == {1}:
        assert "± n/a" in text and "± 0.0" not in text
        committed = committed.replace("± 0.0", "± n/a")
    assert text == committed


def test_a_reader_that_stops_early_is_not_an_error():
    # `dfsim compare DIR | head -1`: the pipe closes while the table is being written
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "dfsim.tools.cli", "compare", "results/default"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader goes away before the table is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
