"""State kept between runs survives damage: a checkpoint unit, the checkpoint's fingerprint,
a cache entry or a generated scene set that is truncated, has a byte flipped, is overwritten
with random bytes, emptied or (checkpoints) replaced by other valid JSON is reported in one
line, discarded and recomputed, and the run's results equal an undamaged run's."""

import json
import random
import shutil

import numpy as np
import pytest
from conftest import run_scenario, without_timing

from dfsim import cache, reproducibility
from dfsim.data import scenes
from dfsim.experiment import executors
from dfsim.experiment.results import read_results_csv
from dfsim.tools.cli import main

SCN = """\
seed: 3
data: {n_images: 50}
channels:
  - {kind: iid, loss_rates: [0.1, 0.3]}
methods: [zeros, linear]
trials: 2
"""
UNITS = 4  # 2 channel settings x 2 trials


def _flip(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


DAMAGE = {
    "truncated": lambda data, rng: data[: len(data) // 2],
    "one byte flipped": _flip,
    "random bytes": lambda data, rng: rng.randbytes(len(data)),
    "emptied": lambda data, rng: b"",
}


def damage(path, how: str) -> None:
    path.write_bytes(DAMAGE[how](path.read_bytes(), random.Random(how)))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The scenario, its undamaged results, a warm cache and the checkpoint of a run
    interrupted after 3 of its 4 units."""
    d = tmp_path_factory.mktemp("stored")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DFSIM_CACHE", str(d / "cache"))
        rows = run_scenario(d, SCN)
        real, calls = executors.run_unit, []

        def interrupted(unit):
            calls.append(unit)
            if len(calls) == UNITS:
                raise KeyboardInterrupt
            return real(unit)

        mp.setattr(executors, "run_unit", interrupted)
        args = ["run", str(d / "s.yaml"), "--out", str(d / "partial"), "--quiet"]
        assert main([*args, "--workers", "1"]) == 130
    assert len(list((d / "partial" / ".partial").glob("unit-*.json"))) == UNITS - 1
    return d, rows


@pytest.fixture
def rerun(base, tmp_path, monkeypatch, capsys):
    """A copy of the interrupted run's checkpoint and of the warm cache in ``tmp_path``, and
    a function that reruns the scenario there: (work units it ran, note lines, rows)."""
    d, _ = base
    shutil.copytree(d / "partial" / ".partial", tmp_path / "out" / ".partial")
    shutil.copytree(d / "cache", tmp_path / "cache")
    monkeypatch.setenv("DFSIM_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()

    def run(out="out"):
        real, ran = executors.run_unit, []
        monkeypatch.setattr(executors, "run_unit", lambda u: (ran.append(u), real(u))[1])
        args = ["run", str(d / "s.yaml"), "--out", str(tmp_path / out), "--quiet"]
        assert main([*args, "--workers", "1"]) == 0
        monkeypatch.setattr(executors, "run_unit", real)
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return ran, run_notes(err), read_results_csv(tmp_path / out / "results.csv")

    return run


def run_notes(err: str) -> list[str]:
    """What ``dfsim run`` printed on stderr but the machine's provenance note (printed
    where CPU kernels are not pinned, see dfsim.reproducibility)."""
    note = reproducibility.note()
    return [line for line in err.splitlines() if line != f"dfsim: note: {note}"]


def _units(tmp_path):
    return sorted((tmp_path / "out" / ".partial").glob("unit-*.json"))


@pytest.mark.parametrize("how", [*DAMAGE, "unsealed rows", "another unit's file"])
def test_a_damaged_checkpoint_unit_is_recomputed(base, rerun, tmp_path, how):
    first, victim = _units(tmp_path)[:2]
    if how == "unsealed rows":  # valid JSON: the rows as an older dfsim stored them
        victim.write_text(json.dumps(json.loads(victim.read_text())["payload"]["rows"]))
    elif how == "another unit's file":  # sealed, but not this unit's rows
        shutil.copy(first, victim)
    else:
        damage(victim, how)
    why = "not this run's unit" if how == "another unit's file" else "checksum mismatch"
    ran, notes, rows = rerun()
    assert notes == [
        f"dfsim: note: discarded damaged checkpoint unit {victim} ({why}); recomputing it"
    ]
    unit = tuple(int(i) for i in victim.stem.split("-")[1:])
    assert unit in ran and len(ran) == 2  # the damaged unit and the one never saved
    assert without_timing(rows) == without_timing(base[1])


@pytest.mark.parametrize("how", [*DAMAGE, "unsealed fingerprint"])
def test_a_damaged_fingerprint_starts_the_run_over(base, rerun, tmp_path, how):
    stamp = tmp_path / "out" / ".partial" / "fingerprint"
    if how == "unsealed fingerprint":  # valid JSON, the right fingerprint, no checksum
        stamp.write_text(json.dumps(json.loads(stamp.read_text())["payload"]))
    else:
        damage(stamp, how)
    ran, notes, rows = rerun()
    assert notes == [
        f"dfsim: note: discarded damaged checkpoint fingerprint {stamp} (checksum mismatch); "
        f"starting the run over (its {UNITS - 1} saved work units discarded too)"
    ]
    assert len(ran) == UNITS
    assert without_timing(rows) == without_timing(base[1])


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_cache_entries_are_recomputed(base, rerun, tmp_path, how):
    entries = sorted((tmp_path / "cache").glob("*/*.sealed.npz"))
    assert [p.parent.name for p in entries] == ["features", "reference", "scores"]
    before = [cache.load_arrays(p.parent.name, p.name.split(".")[0]) for p in entries]
    for p in entries:
        damage(p, how)
    ran, notes, rows = rerun("fresh")
    assert notes == [
        f"dfsim: note: discarded damaged cache entry {p} (checksum mismatch); recomputing it"
        for p in entries
    ]
    assert len(ran) == UNITS
    assert without_timing(rows) == without_timing(base[1])
    for p, arrays in zip(entries, before, strict=True):  # written again, sealed, the same
        assert cache.is_sealed(p.read_bytes())
        again = cache.load_arrays(p.parent.name, p.name.split(".")[0])
        assert again.keys() == arrays.keys()
        assert all(np.array_equal(again[k], arrays[k]) for k in arrays)


@pytest.mark.parametrize("how", [*DAMAGE, "unsealed archive"])
def test_a_damaged_cache_entry_of_any_kind_is_discarded(tmp_path, monkeypatch, capsys, how):
    monkeypatch.setenv("DFSIM_CACHE", str(tmp_path))
    arrays = {"w": np.arange(12.0).reshape(3, 4), "b": np.ones(3, np.float32)}
    path = cache.save_arrays("altec", "k1", arrays)
    assert path == tmp_path / "altec" / "k1.sealed.npz"
    loaded = cache.load_arrays("altec", "k1")
    assert all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    if how == "unsealed archive":  # a valid .npz without the checksum
        np.savez(path.with_suffix(".tmp.npz"), **arrays)
        path.with_suffix(".tmp.npz").replace(path)
    else:
        damage(path, how)
    capsys.readouterr()
    assert cache.load_arrays("altec", "k1") is None
    assert capsys.readouterr().err == (
        f"dfsim: note: discarded damaged cache entry {path} (checksum mismatch); recomputing it\n"
    )
    assert not path.exists()
    assert cache.load_arrays("altec", "k1") is None  # a plain miss now, without a note
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("victim", ["000001.png", "instances.json", scenes.SUMS])
def test_a_damaged_scene_set_is_generated_again(tmp_path, monkeypatch, capsys, victim, how):
    monkeypatch.setenv("DFSIM_CACHE", str(tmp_path))
    d = scenes.scenes_dir("test", 3, 48, 2, 0, None)
    sums = scenes._sums(d)
    assert sorted(sums) == ["000000.png", "000001.png", "000002.png", "instances.json"]
    damage(d / victim, how)
    capsys.readouterr()
    assert scenes.scenes_dir("test", 3, 48, 2, 0, None) == d
    assert capsys.readouterr().err == (
        f"dfsim: note: discarded damaged scene set {d} (checksum mismatch); generating it again\n"
    )
    assert scenes._sums(d) == sums and cache.read_sealed_json(d / scenes.SUMS) == sums
    assert scenes.scenes_dir("test", 3, 48, 2, 0, None) == d  # whole: no note
    assert capsys.readouterr().err == ""
