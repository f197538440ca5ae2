"""Crash-safe, resumable runs: an interrupted or killed run, rerun, equals an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_scenario, without_timing

from dfsim.experiment import executors
from dfsim.experiment.results import read_results_csv
from dfsim.tools.cli import main

SCN = """\
seed: 3
data: {n_images: 100}
channels:
  - {kind: iid, loss_rates: [0.1, 0.3]}
  - {kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [3]}
methods: [zeros, linear, {name: halrtc, max_iters: 4}]
trials: 3
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    rows = run_scenario(d, SCN)
    assert not (d / "out" / ".partial").exists()
    return d, rows


def test_interrupted_run_resumes_to_identical_results(reference, tmp_path, monkeypatch, capsys):
    d, ref = reference
    calls = {"n": 0}
    real = executors.run_unit

    def flaky(unit):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(unit)

    monkeypatch.setattr(executors, "run_unit", flaky)
    out = tmp_path / "out"
    assert main(["run", str(d / "s.yaml"), "--out", str(out), "--quiet", "--workers", "1"]) == 130
    assert not (out / "results.csv").exists()
    assert len(list((out / ".partial").glob("unit-*.json"))) == 3
    monkeypatch.setattr(executors, "run_unit", real)
    assert main(["run", str(d / "s.yaml"), "--out", str(out), "--workers", "1"]) == 0
    assert "resuming: 3 of 9 work units already done" in capsys.readouterr().err
    assert without_timing(read_results_csv(out / "results.csv")) == without_timing(ref)
    assert not (out / ".partial").exists()


def test_killed_run_resumes_to_identical_results(reference, tmp_path):
    d, ref = reference
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "dfsim",
        "run",
        str(d / "s.yaml"),
        "--out",
        str(out),
        "--quiet",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / ".partial").glob("unit-*.json"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((out / ".partial").glob("unit-*.json")))
    assert 2 <= done < 9 and not (out / "results.csv").exists()
    assert subprocess.run(cmd).returncode == 0
    rows = read_results_csv(out / "results.csv")
    assert len(rows) == 9 * 3
    assert without_timing(rows) == without_timing(ref)


def test_a_different_scenario_is_not_mixed_into_an_unfinished_run(
    reference, tmp_path, monkeypatch, capsys
):
    d, _ = reference
    out = tmp_path / "out"
    monkeypatch.setattr(
        executors, "run_unit", lambda unit: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    assert main(["run", str(d / "s.yaml"), "--out", str(out), "--quiet", "--workers", "1"]) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    monkeypatch.undo()
    (tmp_path / "other.yaml").write_text(SCN.replace("seed: 3", "seed: 4"))
    # refused before any config is prepared (the fingerprint needs the model only)
    monkeypatch.setattr(executors, "prepare", lambda *a: pytest.fail("prepared a config"))
    assert main(["run", str(tmp_path / "other.yaml"), "--out", str(out), "--quiet"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert (
        "holds an unfinished run of a different scenario" in err
        and len(err.strip().splitlines()) == 1
    )
