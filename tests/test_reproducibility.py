"""The same numbers on any x86 machine: the kernel pins of :mod:`dfsim.reproducibility`.

A machine with fewer (or more) instruction-set extensions is simulated the way the
libraries themselves allow, by capping the level each one uses through its own environment
variable. With dfsim's pins the model passes, the batched low-rank completion and the
ALTeC fit give the same bits under every cap; with ``DFSIM_KERNELS=native`` the same caps
change them, so the comparison can fail.
"""

import importlib.util
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import run_scenario

from dfsim import reproducibility
from dfsim.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
V3 = reproducibility.isa_level() in ("x86-64-v3", "x86-64-v4")
needs_v3 = pytest.mark.skipif(not V3, reason="the pinned kernels need an x86-64-v3 CPU")


def _benchmark():
    """benchmarks/reproducibility.py, which measures what these caps change and cost."""
    path = ROOT / "benchmarks" / "reproducibility.py"
    spec = importlib.util.spec_from_file_location("reproducibility_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Each library's own cap, at a level below this machine's (a machine without AVX2/FMA).
CAPS = _benchmark().CAPS

PROBE = r"""
import hashlib, json
import dfsim  # first: the pins are read when numpy and torch load
import numpy as np, torch
from dfsim.completion.altec import fit_altec
from dfsim.completion.lowrank import HaLRTC
from dfsim.data.datasets import load_fashion_mnist
from dfsim.models.fmnist_resnet import fmnist_resnet
from dfsim.models.inference import prepare_for_inference, run_batched
from dfsim.reproducibility import state

torch.set_num_threads(1)
h = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
m = fmnist_resnet()
x = m.normalise(load_fashion_mnist("test").head(48).images)
feats = run_batched(prepare_for_inference(m.edge("add_1")), x, 16)
logits = run_batched(prepare_for_inference(m.cloud("add_1")), feats, 16)
lost = np.random.default_rng(0).random(feats[:4].shape) < 0.3
filled = HaLRTC(max_iters=4).complete_batch(feats[:4], lost)
fit = fit_altec(feats[:32], 4, 1e-3)
w = np.concatenate([np.ravel(a) for a in fit if isinstance(a, np.ndarray)])
print(json.dumps({"edge": h(feats), "cloud": h(logits), "halrtc": h(filled), "altec": h(w),
                  "capability": torch.backends.cpu.get_cpu_capability(), "state": state()}))
"""


def _probe(env: dict) -> dict:
    unset = {*CAPS, *reproducibility.PINS, "DFSIM_KERNELS"}  # this process's pins too
    full = {k: v for k, v in os.environ.items() if k not in unset}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_isa_levels_from_cpu_flags():
    v2 = {"sse4_2", "popcnt", "ssse3", "cx16"}
    v3 = v2 | {"avx", "avx2", "fma", "bmi2", "movbe"}
    v4 = v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    assert reproducibility.isa_level({"sse2"}) == "x86-64-v1"
    assert reproducibility.isa_level(v2) == "x86-64-v2"
    assert reproducibility.isa_level(v3 - {"fma"}) == "x86-64-v2"
    assert reproducibility.isa_level(v3) == "x86-64-v3"
    assert reproducibility.isa_level(v4) == "x86-64-v4"


@needs_v3
def test_caps_below_the_pinned_level_change_nothing_with_the_pins():
    """The machine's level, capped by every library's own setting, does not reach the
    numbers: the pins replace the caps (and the manifest says which they replaced)."""
    pinned = _probe({})
    capped = _probe(CAPS)
    keys = ("edge", "cloud", "halrtc", "altec")
    assert {k: capped[k] for k in keys} == {k: pinned[k] for k in keys}
    assert pinned["capability"] == capped["capability"] == "AVX2"
    assert capped["state"]["exact"] and capped["state"]["kernels"] == "x86-64-v3"
    assert capped["state"]["replaced"] == CAPS
    assert pinned["state"]["settings"] == reproducibility.state()["settings"]


@needs_v3
def test_without_the_pins_the_same_caps_change_the_numbers():
    """The comparison above can fail: the libraries left to choose give other bits under
    the caps, and dfsim says its numbers may differ."""
    native = _probe({"DFSIM_KERNELS": "native"})
    capped = _probe({"DFSIM_KERNELS": "native", **CAPS})
    assert native["edge"] != capped["edge"] and native["cloud"] != capped["cloud"]
    assert capped["capability"] == "DEFAULT"
    assert not capped["state"]["exact"] and capped["state"]["kernels"] == "native"
    assert "DFSIM_KERNELS=native" in capped["state"]["reason"]


@needs_v3
def test_the_test_process_itself_runs_pinned():
    """pytest loads dfsim first (``-p dfsim`` in pyproject.toml), so the committed-results
    checks compare exactly here rather than falling back to their tolerance."""
    s = reproducibility.state()
    assert s["exact"] and s["kernels"] == "x86-64-v3", s["reason"]


@needs_v3
def test_an_unknown_kernels_setting_is_said_not_ignored_silently():
    code = "import dfsim.reproducibility as r; print(r.note()); print(r.state()['kernels'])"
    env = {**os.environ, "DFSIM_KERNELS": "fast"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "DFSIM_KERNELS='fast' is not portable or native: ignored, kernels pinned"
    assert lines[1] == "x86-64-v3"


def test_numpy_imported_first_is_reported(tmp_path):
    code = "import numpy, dfsim.reproducibility as r; print(r.note())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    # ``import dfsim.reproducibility`` runs dfsim/__init__ after numpy has loaded
    assert "numpy was imported before dfsim" in out.stdout, out.stderr[-1000:]


def test_manifest_records_machine_and_regeneration_differences_are_noted(tmp_path, capsys):
    scn = "seed: 1\ndata: {n_images: 20}\nchannels: [{kind: iid, loss_rates: [0.2]}]\n"
    scn += "methods: [zeros]\ntrials: 1\n"
    run_scenario(tmp_path, scn)
    manifest_path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["machine"]["cpu"] == reproducibility.cpu_model()
    assert manifest["machine"]["isa_level"] == reproducibility.isa_level()
    assert set(manifest["machine"]["settings"]) == set(reproducibility.PINS)
    capsys.readouterr()
    # the same run again: nothing to say (on a machine that pins its kernels)
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "was made with other" not in err
    # made on another CPU with the same pinned kernels: said, with what it means
    pinned_elsewhere = json.loads(manifest_path.read_text())
    pinned_elsewhere["machine"]["cpu"] = "Some Other CPU"
    manifest_path.write_text(json.dumps(pinned_elsewhere))
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "was made with" in ln]
    assert len(lines) == 1 and "CPU 'Some Other CPU' -> " in lines[0]
    if reproducibility.state()["exact"]:
        assert lines[0].endswith("so the numbers should agree")
    # a result made with another numpy and unpinned kernels: one line says so
    manifest["versions"]["numpy"] = "1.0.0"
    manifest["machine"].update(kernels="native", exact=False, cpu="Some Other CPU")
    manifest_path.write_text(json.dumps(manifest))
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "was made with" in ln]
    assert len(lines) == 1
    assert f"numpy 1.0.0 -> {metadata.version('numpy')}" in lines[0]
    assert "kernels native -> " in lines[0]
    # and dfsim compare says the same of two directories
    assert main(["compare", str(manifest_path.parent), str(tmp_path / "out")]) == 0
    assert "numpy 1.0.0" not in capsys.readouterr().err  # the rerun rewrote the manifest
    manifest_path.write_text(json.dumps(manifest))
    other = tmp_path / "again"
    run_scenario(tmp_path, scn, "s.yaml", "again")
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "out"), str(other)]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "was made with" in ln]
    assert len(notes) == 1 and "numpy 1.0.0 ->" in notes[0]


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="checks the repository's own environment, made by setup.sh",
)
def test_environment_matches_the_lock():
    """setup.sh installs every distribution at the version constraints.txt locks."""
    locked = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[name.strip().lower().replace("_", "-")] = version.strip()
    installed = {
        d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()
    }
    installed.pop("dfsim", None)
    missing = sorted(set(installed) - set(locked))
    assert not missing, f"installed but not locked: {missing}"
    differ = {k: (v, locked[k]) for k, v in installed.items() if v.split("+")[0] != locked[k]}
    assert not differ, differ


def test_cache_entries_are_keyed_by_the_kernels(monkeypatch):
    """Features made by unpinned kernels (or another CPU's) never serve a pinned run."""
    from dfsim import cache

    pinned = {**reproducibility.state(), "kernels": "x86-64-v3", "exact": True}
    monkeypatch.setattr(reproducibility, "_state", pinned)
    a = cache.key_of(features="x", n=3)
    assert cache.key_of(features="x", n=3) == a
    native = {**pinned, "kernels": "native", "exact": False}
    monkeypatch.setattr(reproducibility, "_state", native)
    b = cache.key_of(features="x", n=3)
    monkeypatch.setattr(reproducibility, "_state", {**native, "cpu": "Another CPU"})
    assert len({a, b, cache.key_of(features="x", n=3)}) == 3
