"""A run's wall time, estimated before it runs (``dfsim run --dry-run``).

A short calibration runs the scenario's own pipeline on a few images: the first config is
prepared at two image counts (model, data, edge pass, encoding, loss-free cloud pass: a
fixed part and a part per image), its methods built (a trained method is fitted on the
calibration's own features rather than its training set, which costs about what
completing with the real fit does), and one trial of the lowest-, middle- and highest-loss
channel setting run, every method (transport, decoding, completion, cloud pass, scoring).
Then

    wall ~ configs x prepare(n_images) / min(workers, configs)
           + units x (trial time per image x n_images) / workers

It writes no results; the loss-free features of its few images go to dfsim's cache like
any run's. What it does not see: a cold numba or feature cache, the fit of a
trained method on its real training set (cached after the first run), worker start-up,
and other work on the machine; so it is an estimate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass

CALIBRATION_IMAGES = (16, 64)  # the two image counts the first config is run at


@dataclass(frozen=True)
class Estimate:
    """An estimated wall time and what it came from."""

    seconds: float  #: the estimated wall time of the whole run
    calibration_s: float  #: how long the calibration took
    workers: int

    def line(self) -> str:
        """``estimated wall time: ~3 min (from a 4 s calibration on this machine; ...)``"""
        return (
            f"estimated wall time: ~{duration(self.seconds)} with {self.workers} "
            f"worker{'s' if self.workers > 1 else ''} (from a {self.calibration_s:.0f} s "
            "calibration on this machine; actual times vary)"
        )


def duration(seconds: float) -> str:
    """Seconds in words a person reads at a glance: 40 s, 3 min, 2.5 h."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _with_images(scn, n: int):
    return dataclasses.replace(scn, data=dataclasses.replace(scn.data, n_images=n))


def _methods(prep) -> list:
    """The scenario's methods for ``prep``, a trained one fitted on ``prep``'s own decoded
    features (the calibration has not got, and must not wait for, its training set)."""
    out = []
    for spec in prep.scenario.methods:
        per_stream = []
        for s in prep.streams:
            method = spec.build()
            method.device = prep.scenario.device
            if method.needs_fit:
                method.fit(s.reference, s.layout)
            per_stream.append(method)
        out.append((spec, per_stream))
    return out


def calibrate(scn, workers: int | None = None) -> Estimate:
    """Estimate ``scn``'s wall time on ``workers`` processes (default: all cores) from a
    short run of its own pipeline on a few images (see the module's text). Raises what
    the pipeline raises where it cannot run."""
    import torch

    t0 = time.perf_counter()
    workers = max(1, min(workers or os.cpu_count() or 1, scn.n_units))
    counts = sorted({min(n, scn.data.n_images) for n in CALIBRATION_IMAGES})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a run's workers are
    try:  # its notes (a fit on a few tensors is a poor one) are not the run's
        with contextlib.redirect_stderr(io.StringIO()):
            prep_s, unit_s = zip(*(_time_config(scn, n) for n in counts), strict=True)
    finally:
        torch.set_num_threads(threads)
    n, configs = scn.data.n_images, len(scn.configs)
    prep = _line(counts, prep_s)
    unit = _line(counts, unit_s)
    seconds = configs * prep(n) / min(workers, configs) + scn.n_units * unit(n) / workers
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"calibration gave {seconds!r} s")
    return Estimate(seconds, time.perf_counter() - t0, workers)


def _time_config(scn, n: int) -> tuple[float, float]:
    """Seconds to prepare the first config on ``n`` images, and the mean seconds of one
    work unit (every method) over the lowest-, middle- and highest-loss settings."""
    from dfsim.experiment.prepare import prepare
    from dfsim.experiment.trial import run_trial

    t = time.perf_counter()
    prep = prepare(_with_images(scn, n))
    methods = _methods(prep)
    prep_s = time.perf_counter() - t
    order = sorted(range(len(scn.cells)), key=lambda c: scn.cells[c].loss_rate)
    picked = sorted({order[0], order[len(order) // 2], order[-1]})
    run_trial(prep, picked[-1], 0, methods)  # warm-up: first calls, lazy imports
    t = time.perf_counter()
    for c in picked:
        run_trial(prep, c, 0, methods)
    return prep_s, (time.perf_counter() - t) / len(picked)


def _line(counts: list[int], seconds: tuple[float, ...]):
    """Seconds as a function of images: fixed part plus a part per image, through the two
    calibration points (a fixed part alone from one point)."""
    if len(counts) < 2:
        return lambda n: seconds[0]
    (n_a, n_b), (s_a, s_b) = counts, seconds
    per_image = max(0.0, (s_b - s_a) / (n_b - n_a))
    fixed = max(0.0, s_b - per_image * n_b)
    return lambda n: fixed + per_image * n
