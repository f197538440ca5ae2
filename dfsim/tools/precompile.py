"""Compile dfsim's numba kernels ahead of time, into numba's on-disk cache.

dfsim's per-packet and per-pixel loops (network queue, codecs, interpolation, ALTeC/CALTeC,
inpainting) are numba functions with ``cache=True``: the first call of each compiles it
(what that costs: ``benchmarks/tools-notes.md``) and writes the machine code to the
package's ``__pycache__``, where every later process, workers included, loads it at once.
``setup.sh`` runs :func:`precompile` (``dfsim precompile``) once after installing, as a
build step, so that the first real run does not pay for compilation.

It compiles by running the real pipeline once on a tiny scenario (8 test images, one
trial, i.i.d. and bursty loss, every registered codec and completion method), so the
kernels are compiled for exactly the argument types a run passes them. The run uses a
temporary directory for its outputs and for dfsim's artefact cache (``$DFSIM_CACHE``), so
no features, fitted methods or results are left behind: a later run still starts cold.
"""

from __future__ import annotations

import os
import tempfile
import time

from dfsim.registry import names

# Small limits: what is compiled does not depend on them.
_METHOD_ARGS = {
    "altec": {"fit_images": 16},
    "silrtc": {"max_iters": 2},
    "halrtc": {"max_iters": 2},
}


def tiny_scenario(output: str) -> dict:
    """The scenario :func:`precompile` runs: the default model and data, every registered
    codec and completion method, 8 images, one trial."""
    from dfsim.completion.base import available_methods

    return {
        "name": "precompile",
        "seed": 0,
        "model": {"name": "fmnist-resnet", "split": "add_1"},
        "data": {"dataset": "fashion-mnist", "subset": "test", "n_images": 8},
        "encoding": {"codec": names("codec")},
        "packets": {"rows_per_packet": 4},
        "network": {"bandwidth_mbps": 10, "propagation_ms": 5, "fps": 30},
        "channels": [
            {"kind": "iid", "loss_rates": [0.3]},
            {"kind": "gilbert-elliott", "loss_rates": [0.3], "burst_lengths": [4]},
        ],
        "methods": [{"name": m, **_METHOD_ARGS.get(m, {})} for m in available_methods()],
        "trials": 1,
        "output": output,
    }


def precompile(log=None) -> float:
    """Run :func:`tiny_scenario` in this process (temporary outputs and artefact cache);
    returns the seconds it took."""
    from dfsim import experiment
    from dfsim.experiment.scenario import parse_scenario

    t0 = time.perf_counter()
    saved = os.environ.get("DFSIM_CACHE")
    with tempfile.TemporaryDirectory(prefix="dfsim-precompile-") as tmp:
        os.environ["DFSIM_CACHE"] = os.path.join(tmp, "cache")
        try:
            scn = parse_scenario(tiny_scenario(os.path.join(tmp, "results")), source="precompile")
            experiment.run(scn, log=log, workers=1)
        finally:
            if saved is None:
                os.environ.pop("DFSIM_CACHE", None)
            else:
                os.environ["DFSIM_CACHE"] = saved
    return time.perf_counter() - t0
