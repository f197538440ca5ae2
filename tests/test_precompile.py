"""`dfsim precompile`: compiles every numba kernel a run uses into numba's on-disk cache, and
leaves no dfsim artefacts (features, fitted methods, results) behind."""

import os
import subprocess
import sys

from dfsim.completion.base import available_methods
from dfsim.experiment.scenario import parse_scenario
from dfsim.registry import names
from dfsim.tools.precompile import precompile, tiny_scenario


def test_tiny_scenario_covers_every_codec_and_method(tmp_path):
    scn = parse_scenario(tiny_scenario(str(tmp_path)))
    assert sorted(c.codec.name for c in scn.configs) == sorted(names("codec"))
    assert sorted(m.name for m in scn.methods) == sorted(available_methods())
    assert {c.kind for c in scn.cells} == {"iid", "gilbert-elliott"}


def test_a_new_process_compiles_nothing_after_precompile(tmp_path, monkeypatch):
    """setup.sh ran `dfsim precompile` (after editing a kernel, run it again): a fresh
    process running precompile's scenario loads every kernel from numba's cache, and
    leaves none of its artefacts in DFSIM_CACHE."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DFSIM_CACHE", str(cache))
    code = (
        "from numba.core import event\n"
        "with event.install_recorder('numba:compile') as rec:\n"
        "    from dfsim.tools.precompile import precompile\n"
        "    precompile()\n"
        "print(sorted({e.data['dispatcher'].py_func.__qualname__ for _, e in rec.buffer}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]", f"compiled {out.stdout}: run `dfsim precompile`"
    assert not cache.exists()  # its own artefacts went to a temporary directory


def test_precompile_restores_the_cache_variable(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setenv("DFSIM_CACHE", str(tmp_path / "mine"))
    from dfsim import experiment

    monkeypatch.setattr(experiment, "run", lambda scn, **_: calls.append(os.environ["DFSIM_CACHE"]))
    precompile()
    assert calls and calls[0] != str(tmp_path / "mine")  # ran in a temporary cache
    assert os.environ["DFSIM_CACHE"] == str(tmp_path / "mine")
