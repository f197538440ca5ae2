"""A run's wall time, estimated before it runs (``dfsim run --dry-run``).

A short calibration runs the scenario's own pipeline on a sample of its images: the first
config is prepared on a few images and one trial of every method run on them (a warm-up:
first calls, lazy imports, numba's cache), then prepared on up to
:data:`CALIBRATION_IMAGES` images (model, data, edge pass, encoding, loss-free cloud pass)
and one trial of its median-loss channel setting timed, every method (transport,
decoding, completion, cloud pass, scoring). A trained method is fitted on the
calibration's own features rather than its training set. A run's work grows with its
images (it batches them), so both times are scaled by ``n_images / sample``:

    wall ~ configs x prepare x scale / min(workers, configs) + units x trial x scale / workers

It writes no results; the loss-free features of its sample go to dfsim's cache, as the
run's own would. What it does not see: the fit of a trained method on its real training set
(cached after the first run), worker start-up, the loss rates other than the median, and
other work on the machine; so it is an estimate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass

CALIBRATION_IMAGES = 200  # at most this many images are run to calibrate
WARM_UP_IMAGES = 8


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


def _fit_on_own_features(method, spec, prep, log, stream: int) -> None:
    """A trained method fitted on the calibration's own decoded features (it has not got,
    and must not wait for, its training set)."""
    s = prep.streams[stream]
    method.fit(s.reference, s.layout)


def calibrate(scn, workers: int | None = None) -> Estimate:
    """Estimate ``scn``'s wall time on ``workers`` processes (default: all cores) from a
    short run of its own pipeline on a sample of its images (see the module's text).
    Raises what the pipeline raises where it cannot run."""
    import torch

    t0 = time.perf_counter()
    workers = max(1, min(workers or os.cpu_count() or 1, scn.n_units))
    n = scn.data.n_images
    sample = min(n, CALIBRATION_IMAGES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a run's workers are
    try:  # its notes (a fit on a few tensors is a poor one) are not the run's
        with contextlib.redirect_stderr(io.StringIO()):
            _time_config(scn, min(sample, WARM_UP_IMAGES))
            prep_s, unit_s = _time_config(scn, sample)
    finally:
        torch.set_num_threads(threads)
    configs, scale = len(scn.configs), n / sample
    seconds = (
        configs * prep_s * scale / min(workers, configs) + scn.n_units * unit_s * scale / workers
    )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"calibration gave {seconds!r} s")
    return Estimate(seconds, time.perf_counter() - t0, workers)


def _time_config(scn, n: int) -> tuple[float, float]:
    """Seconds to prepare the first config on ``n`` images, and of one work unit (every
    method) at the median-loss channel setting."""
    from dfsim.experiment.prepare import build_methods, prepare
    from dfsim.experiment.trial import run_trial

    t = time.perf_counter()
    prep = prepare(_with_images(scn, n))
    methods = build_methods(prep, fit=_fit_on_own_features)
    prep_s = time.perf_counter() - t
    order = sorted(range(len(scn.cells)), key=lambda c: scn.cells[c].loss_rate)
    t = time.perf_counter()
    run_trial(prep, order[len(order) // 2], 0, methods)
    return prep_s, time.perf_counter() - t
