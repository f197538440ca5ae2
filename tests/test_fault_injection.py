"""Fault injection: ``dfsim run`` killed with SIGKILL (the whole process group) several
times in a row at seeded points (mid-write of a cache entry, after some saved units,
mid-write of a unit), then resumed, equals an uninterrupted run, and no stored file it
leaves is damaged; a worker process killed mid-unit is replaced once (the run completes),
and one killed again ends the run with one line, after which a rerun resumes to the same
results."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_scenario, without_timing
from test_stored_state import run_notes

from dfsim import cache, registry
from dfsim.experiment.results import read_results_csv
from dfsim.tools.cli import main

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


# A plugin that kills ``dfsim run``'s process group (SIGKILL) from inside, at the point
# DFSIM_TEST_KILL names: "cache-write" as the first cache entry's bytes are written to its
# temporary file but not yet renamed; "units:N" once N work units are saved; "unit-write:N"
# as the Nth unit's bytes are written but not yet renamed. Without DFSIM_TEST_KILL it does
# nothing.
KILLER = """\
import os
import signal
from pathlib import Path

from dfsim import cache
from dfsim.experiment import checkpoint


def _kill_run():
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _units(directory):
    return len(list(Path(directory).glob("unit-*.json")))


_how, _, _n = os.environ.get("DFSIM_TEST_KILL", "").partition(":")
_replace = os.replace


def _replace_or_die(src, dst, *args, **kwargs):
    dst = Path(dst)
    if _how == "cache-write" and dst.is_relative_to(cache.cache_dir()):
        _kill_run()
    if _how == "unit-write" and dst.name.startswith("unit-"):
        if _units(dst.parent) + 1 >= int(_n):  # this rename would save the Nth unit
            _kill_run()
    return _replace(src, dst, *args, **kwargs)


if _how in ("cache-write", "unit-write"):
    os.replace = _replace_or_die

if _how == "units":
    _save = checkpoint.Checkpoint.save

    def _save_then_die(self, unit, rows):
        _save(self, unit, rows)
        if _units(self._path(unit).parent) >= int(_n):
            _kill_run()

    checkpoint.Checkpoint.save = _save_then_die
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The scenario file and its uninterrupted results (in this process)."""
    d = tmp_path_factory.mktemp("faults")
    return d / "s.yaml", run_scenario(d, SCN)


def _run_until_killed(scenario, out, env) -> None:
    """``dfsim run`` with one worker, in a process group of its own, which the plugin must
    kill."""
    cmd = [sys.executable, "-m", "dfsim", "run", str(scenario), "--out", str(out), "--quiet"]
    proc = subprocess.run(
        [*cmd, "--workers", "1"],
        env={**os.environ, **env},
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


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
    _, ref = reference
    (tmp_path / "killer.py").write_text(KILLER)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"plugins: [{str(tmp_path / 'killer.py')!r}]\n{SCN}")
    saved, written = sorted(random.Random(seed).sample(range(1, UNITS), 2))
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    env = {"DFSIM_CACHE": str(cache_dir)}  # empty: the first run writes the cache entries
    _run_until_killed(scenario, out, {**env, "DFSIM_TEST_KILL": "cache-write"})
    assert list(cache_dir.glob("*/.*.tmp")) and not list(cache_dir.glob("*/[!.]*"))
    assert _units(out) == []
    _check_stored_files(out, cache_dir)
    _run_until_killed(scenario, out, {**env, "DFSIM_TEST_KILL": f"units:{saved}"})
    assert len(_units(out)) == saved
    _check_stored_files(out, cache_dir)
    _run_until_killed(scenario, out, {**env, "DFSIM_TEST_KILL": f"unit-write:{written}"})
    assert len(_units(out)) == written - 1 and list((out / ".partial").glob(".unit-*.tmp"))
    _check_stored_files(out, cache_dir)
    assert not (out / "results.csv").exists()
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
