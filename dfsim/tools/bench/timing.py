"""How the benchmarks time things: a rate over a time budget, or a median of repeats."""

from __future__ import annotations

import time

import numpy as np


def rate(fn, items_per_call: int, seconds: float) -> float:
    """Items per second of ``fn()`` (each call handles ``items_per_call``), calling it
    again and again for ``seconds`` after one warm-up call."""
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += items_per_call
    return n / (time.perf_counter() - t0)


def median_time(fn, budget_s: float, lo: int = 3, hi: int = 15) -> float:
    """Median seconds of ``fn()`` after one warm-up call: at least ``lo`` repeats, at most
    ``hi``, stopping once ``budget_s`` has passed."""
    fn()
    times, t_start = [], time.perf_counter()
    while len(times) < lo or (len(times) < hi and time.perf_counter() - t_start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
