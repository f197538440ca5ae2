"""Fault injection: ``dfsim run`` killed with SIGKILL (the whole process group) at random,
seeded points several times in a row, then resumed, equals an uninterrupted run, and no
stored file it leaves is damaged; a worker process killed mid-unit is replaced once (the
run completes), and one killed again ends the run with one line, after which a rerun
resumes to the same results."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_scenario, without_timing
from test_stored_state import run_notes

from dfsim import cache, registry
from dfsim.cli import main
from dfsim.results import read_results_csv

SCN = """\
seed: 5
data: {n_images: 50}
channels:
  - {kind: iid, loss_rates: [0.1, 0.3]}
  - {kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [3]}
methods: [zeros, linear, {name: halrtc, max_iters: 2}]
trials: 3
"""
UNITS = 9

# A completion method that kills its worker process (SIGKILL) mid-unit: every time with
# DFSIM_TEST_DIE=always, else once, in the first worker to create the file DFSIM_TEST_DIE.
PLUGIN = """\
import multiprocessing
import os
import signal

from dfsim.completion.base import register_method
from dfsim.completion.baselines import ZeroFill


def _dies():
    how = os.environ.get("DFSIM_TEST_DIE")
    if not how or multiprocessing.parent_process() is None:
        return False
    if how == "always":
        return True
    try:
        os.close(os.open(how, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


@register_method("zeros-or-die")
class ZerosOrDie(ZeroFill):
    def complete_batch(self, tensors, lost, layout=None):
        if _dies():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().complete_batch(tensors, lost, layout)
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The scenario file and its uninterrupted results (in this process)."""
    d = tmp_path_factory.mktemp("faults")
    return d / "s.yaml", run_scenario(d, SCN)


def _start(scenario, out, env):
    """``dfsim run`` with one worker, in a process group of its own."""
    cmd = [sys.executable, "-m", "dfsim", "run", str(scenario), "--out", str(out), "--quiet"]
    return subprocess.Popen(
        [*cmd, "--workers", "1"],
        env={**os.environ, **env},
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"dfsim exited early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _units(out: Path) -> list[Path]:
    return list((out / ".partial").glob("unit-*.json"))


def _check_stored_files(out: Path, cache_dir: Path) -> None:
    """Whatever a kill left behind is whole: every unit, fingerprint and cache entry passes
    its checksum (temporary files may remain)."""
    stored = [*(out / ".partial").glob("[!.]*"), *cache_dir.glob("*/[!.]*")]
    for p in stored:
        if p.suffix == ".npz":
            assert cache.is_sealed(p.read_bytes()), p
        else:
            assert cache.read_sealed_json(p) is not None, p


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1])
def test_killed_again_and_again_then_resumed(reference, tmp_path, monkeypatch, capsys, seed):
    scenario, ref = reference
    rng = random.Random(seed)
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    env = {"DFSIM_CACHE": str(cache_dir)}  # empty: the first run writes the cache entries
    # Kill points: as the first cache entry is being written, then after a random number
    # of saved units; each a random few milliseconds later.
    targets = sorted(rng.sample(range(1, UNITS), 2))
    points = [lambda: any(cache_dir.glob("*/*"))]
    points += [lambda n=n: len(_units(out)) >= n for n in targets]
    for point in points:
        proc = _start(scenario, out, env)
        _wait_for(point, proc)
        time.sleep(rng.uniform(0, 0.05))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "results.csv").exists()
        _check_stored_files(out, cache_dir)
    monkeypatch.setenv("DFSIM_CACHE", str(cache_dir))
    capsys.readouterr()
    assert main(["run", str(scenario), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "discarded damaged" not in err and "Traceback" not in err
    rows = read_results_csv(out / "results.csv")
    assert without_timing(rows) == without_timing(ref)
    assert not (out / ".partial").exists()


@pytest.fixture
def dying_method(tmp_path):
    """The scenario with the ``zeros-or-die`` method from a plugin file."""
    plugin = tmp_path / "dying.py"
    plugin.write_text(PLUGIN)
    scenario = tmp_path / "dying.yaml"
    scenario.write_text(
        f"plugins: [{str(plugin)!r}]\n" + SCN.replace("methods: [zeros,", "methods: [zeros-or-die,")
    )
    yield scenario
    registry.unregister("completion", "zeros-or-die")


def _same_as_reference(out, ref) -> None:
    rows = without_timing(read_results_csv(out / "results.csv"))
    renamed = [{**r, "method": r["method"].replace("zeros-or-die", "zeros")} for r in rows]
    assert renamed == without_timing(ref)


@pytest.mark.slow
def test_a_worker_that_dies_mid_unit_is_replaced(
    reference, dying_method, tmp_path, monkeypatch, capsys
):
    _, ref = reference
    out = tmp_path / "out"
    monkeypatch.setenv("DFSIM_TEST_DIE", str(tmp_path / "died"))  # in the workers this starts
    capsys.readouterr()
    assert main(["run", str(dying_method), "--out", str(out), "--quiet", "--workers", "2"]) == 0
    assert (tmp_path / "died").exists()
    lines = run_notes(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(
        "dfsim: note: a worker process died (killed, or out of memory?); running the "
    )
    assert lines[0].endswith(" work units left on fresh workers")
    _same_as_reference(out, ref)


@pytest.mark.slow
def test_a_worker_that_dies_again_ends_the_run_in_one_line(
    reference, dying_method, tmp_path, monkeypatch, capsys
):
    _, ref = reference
    out = tmp_path / "out"
    args = ["run", str(dying_method), "--out", str(out), "--quiet", "--workers"]
    monkeypatch.setenv("DFSIM_TEST_DIE", "always")
    capsys.readouterr()
    assert main([*args, "2"]) == 2
    lines = run_notes(capsys.readouterr().err)
    assert len(lines) == 2 and lines[0].startswith("dfsim: note: a worker process died")
    assert lines[1].startswith(
        f"dfsim: error: {dying_method}: a worker process died again (killed, or out of memory?)"
    )
    assert lines[1].endswith("the finished ones are kept: rerun the same command to resume")
    assert not (out / "results.csv").exists()
    # The rerun (where the method no longer dies) resumes and completes.
    monkeypatch.delenv("DFSIM_TEST_DIE")
    assert main([*args, "1"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    _same_as_reference(out, ref)
