"""dfsim as an installed package: the wheel that `python -m build` makes holds the built-in
scenarios, the model weights, the `dfsim` entry point and the license; `twine check`
accepts it; installed (without the checkout) into a fresh virtual environment, `dfsim`
lists, shows and runs built-in scenarios from a directory outside the checkout, and a
missing Fashion-MNIST is one line there too.

The fresh environment gets its dependencies from this environment's site-packages through
a ``.pth`` file; the editable dfsim of this environment is not visible in it (its finder
is installed by a ``.pth`` file of that folder, which a path in a ``.pth`` does not run).
The package tests (marked slow) take about 25 s of CPU: the sdist and wheel builds, the
install, and two processes that import torch."""

import csv
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from dfsim import builtin_scenarios
from dfsim.experiment.scenario import load_scenario
from dfsim.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd, env=None, check=True):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist, and the wheel built from it (as `python -m build` does: so the sdist holds
    what the wheel needs, and no stale build/ of the checkout reaches the wheel)."""
    out = tmp_path_factory.mktemp("dist")
    log = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)], ROOT)
    assert "Deprecat" not in log.stdout + log.stderr  # no setuptools deprecation warning
    (sdist,) = out.glob("dfsim-*.tar.gz")
    (whl,) = out.glob("dfsim-*.whl")
    return sdist, whl


@pytest.fixture(scope="module")
def wheel(dist):
    return dist[1]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh virtual environment with the wheel installed, and a working directory
    outside the checkout; returns (its bin directory, that directory, the environment)."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], ROOT)
    python = venv / "bin" / "python"
    run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
        + ["--no-deps", "--no-index", "--no-compile", str(wheel)],
        ROOT,
    )
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], ROOT)
    (Path(site.stdout.strip()) / "dfsim_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    work = tmp_path_factory.mktemp("work")
    env = {
        **os.environ,
        "DFSIM_CACHE": str(tmp_path_factory.mktemp("cache")),
        "PYTHONPATH": "",
    }
    return venv / "bin", work, env


@pytest.mark.slow
def test_the_wheel_holds_scenarios_weights_entry_point_and_license(dist):
    sdist, wheel = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in builtin_scenarios.names():
        assert f"dfsim/scenarios/{name}.yaml" in names
    assert "dfsim/scenarios/paper/classifier.yaml" in names
    for pt in (ROOT / "dfsim" / "models" / "weights").glob("*.pt"):
        assert f"dfsim/models/weights/{pt.name}" in names
    info = wheel.name.split("-py3")[0] + ".dist-info"
    archive = zipfile.ZipFile(wheel)
    assert "dfsim = dfsim.tools.cli:main" in archive.read(f"{info}/entry_points.txt").decode()
    metadata = archive.read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert f"{info}/licenses/LICENSE" in names
    proc = run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], ROOT)
    assert proc.stdout.count("PASSED") == 2
    top = sdist.name.removesuffix(".tar.gz")
    in_sdist = set(tarfile.open(sdist).getnames())
    wanted = ["LICENSE", "constraints.txt", "dfsim/scenarios/paper/classifier.yaml"]
    weights = (ROOT / "dfsim" / "models" / "weights").glob("*.pt")
    wanted += [f"dfsim/models/weights/{pt.name}" for pt in weights]
    assert {f"{top}/{name}" for name in wanted} <= in_sdist
    assert not any(n.startswith(f"{top}/tests/") for n in in_sdist)


@pytest.mark.slow
def test_installed_dfsim_lists_shows_and_runs_a_builtin_copy_outside_the_checkout(installed):
    bin_dir, work, env = installed
    where = run([bin_dir / "python", "-c", "import dfsim; print(dfsim.__file__)"], work, env)
    assert Path(where.stdout.strip()).is_relative_to(bin_dir.parent)

    listing = run([bin_dir / "dfsim", "scenarios"], work, env).stdout.splitlines()
    assert listing[0].split()[0] == builtin_scenarios.names()[0]
    assert any(line.split()[:1] == ["paper/classifier"] for line in listing)
    assert any(line.startswith("default ") and "scenario" in line for line in listing)

    shown = run([bin_dir / "dfsim", "scenarios", "show", "default"], work, env).stdout
    assert shown == (ROOT / "scenarios" / "default.yaml").read_text()

    tiny = yaml.safe_load(shown)
    tiny.update(
        name="tiny",
        trials=1,
        channels=[{"kind": "iid", "loss_rates": [0.2]}],
        methods=["zeros"],
        output="out",
    )
    tiny["data"]["n_images"] = 20
    (work / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    run([bin_dir / "dfsim", "run", "tiny.yaml", "--quiet", "--workers", "1"], work, env)
    with open(work / "out" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], float(r["loss_rate"]), r["trial"]) for r in rows] == [("zeros", 0.2, "0")]
    assert 0 < float(rows[0]["top1"]) <= 1


@pytest.mark.slow
def test_installed_dfsim_runs_a_builtin_by_name_and_says_fashion_mnist_is_missing(
    installed, tmp_path
):
    """`dfsim run default` from outside the checkout reads the built-in; its data, missing,
    is one line that names the Debian package and the variable."""
    bin_dir, _, env = installed
    env = {**env, "DFSIM_FASHION_MNIST": "/nonexistent", "DFSIM_CACHE": str(tmp_path / "c")}
    proc = run([bin_dir / "dfsim", "run", "default", "--dry-run"], tmp_path, env, check=False)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(
        "dfsim: error: default (built-in): data: Fashion-MNIST file t10k-images-idx3-ubyte"
    )
    assert "not found in '/nonexistent'" in line
    assert "dataset-fashion-mnist" in line and "$DFSIM_FASHION_MNIST" in line
    assert not (tmp_path / "results").exists()


# The built-ins from the checkout (fast: no build, no subprocess).


def test_every_yaml_file_of_scenarios_is_a_builtin():
    files = sorted(
        str(p.relative_to(ROOT / "scenarios").with_suffix(""))
        for p in (ROOT / "scenarios").rglob("*.yaml")
    )
    assert sorted(builtin_scenarios.names()) == files
    assert builtin_scenarios.names()[:2] == ["burst-grid", "codecs"]  # top folder first
    assert builtin_scenarios.names()[-1].startswith("paper/")


def test_a_file_wins_over_a_builtin_of_the_same_name(tmp_path, monkeypatch):
    from test_scenario import GOOD

    monkeypatch.chdir(tmp_path)
    assert load_scenario("default").source == "default (built-in)"
    assert load_scenario("default").name == "default"
    (tmp_path / "default").write_text(GOOD)
    scn = load_scenario("default")
    assert (scn.name, scn.source) == ("t", "default")


def test_a_builtin_naming_shipped_weights_loads_away_from_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dfsim/models/weights/... is not found from here
    scn = load_scenario("paper/classifier-retrained")
    weights = Path(dict(scn.model.params)["weights"])
    assert weights == ROOT / "dfsim" / "models" / "weights" / "fmnist_resnet_cat_hevc_add_1.pt"
    (tmp_path / "s.yaml").write_text(
        "model: {name: fmnist-resnet, weights: dfsim/models/weights/none.pt}\n"
        "channels: [{kind: iid, loss_rates: [0.1]}]\nmethods: [zeros]\n"
    )
    with pytest.raises(Exception, match="model.weights: file 'dfsim/models/weights/none.pt' not"):
        load_scenario(tmp_path / "s.yaml")


def test_the_python_api_reads_a_builtin_by_name(tmp_path, monkeypatch):
    from dfsim.api import _scenario

    monkeypatch.chdir(tmp_path)
    scn, label = _scenario("default", seed=None)
    assert (scn.name, label) == ("default", "default (built-in)")
    with pytest.raises(Exception, match="defalt: scenario file not found .*did you mean 'default'"):
        _scenario("defalt", seed=None)


def test_scenarios_lists_and_shows_builtins(capsys):
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["burst-grid", "The", "published", "burst", "study's", "grid"]
    assert any(line.split()[:4] == ["default", "dfsim", "default", "scenario"] for line in lines)
    assert main(["scenarios", "show", "paper/classifier"]) == 0
    text = (ROOT / "scenarios" / "paper" / "classifier.yaml").read_text()
    assert capsys.readouterr().out == text


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["scenarios", "show", "defualt"],
            "dfsim: error: defualt: not a built-in scenario (built-in scenarios: burst-grid, ",
        ),
        (
            ["run", "defalt", "--dry-run"],
            "dfsim: error: defalt: scenario file not found (built-in scenarios: burst-grid, ",
        ),
        (["scenarios", "show"], "dfsim: error: scenarios show: give a built-in scenario's name"),
    ],
)
def test_unknown_names_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(message)
    if argv[-1] != "show":
        assert "paper/classifier" in line and line.endswith("; did you mean 'default'?")
