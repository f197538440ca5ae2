"""The results table: columns, atomic CSV I/O and per-group statistics."""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

# Contract (DESIGN.md §3): these columns always come first, in this order.
CORE_COLUMNS = (
    "method", "channel", "loss_rate", "burst_length", "trial", "n_images", "top1", "agreement",
    "realised_loss_rate", "completion_ms_per_tensor",
)
EXTRA_COLUMNS = (
    "completion_iters", "mse_lost", "latency_mean_ms", "latency_p95_ms", "bits_per_image", "packets_per_image", "split", "bits",
    "rows_per_packet", "order",
    # network (issue 5): latency percentiles, why packets were missing, error control
    "error_control", "latency_p50_ms", "latency_p99_ms", "e2e_latency_mean_ms", "e2e_latency_p95_ms",
    "channel_loss_rate", "congestion_loss_rate", "deadline_loss_rate", "side_info_loss_rate",
    "retransmissions_per_image",
)
COLUMNS = CORE_COLUMNS + EXTRA_COLUMNS


def atomic_write(path: Path, write) -> None:
    """Write via ``write(file)`` to a temporary file in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(v):
    if isinstance(v, float):
        return repr(v)  # exact round trip
    return v


def write_results_csv(rows: Iterable[dict], path: Path) -> None:
    rows = list(rows)

    def write(f):
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="raise")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r[k]) for k in COLUMNS})

    atomic_write(path, write)


def write_json(obj, path: Path) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=False, default=str))


_INT_COLS = {"trial", "n_images", "bits_per_image", "packets_per_image", "bits", "rows_per_packet"}
_STR_COLS = {"method", "channel", "split", "order", "error_control"}


def read_results_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({
            k: (v if k in _STR_COLS else int(v) if k in _INT_COLS else float(v)) for k, v in r.items()
            if v != "" or k in _STR_COLS  # files from before a column existed leave it empty
        })
    return out


def mean_ci95(values) -> tuple[float, float, float]:
    """Mean, sample standard deviation and half-width of the 95 % t-interval."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, 0.0, 0.0
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(x) - 1) * sd / math.sqrt(len(x)))
    return m, sd, half


def write_table(rows: list[dict], path: Path) -> None:
    """Any list of dicts as CSV, atomically: columns in first-seen order, floats exact."""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def write(f):
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in cols})

    atomic_write(path, write)


def write_summary(summary: list[dict], path: Path) -> None:
    """summary.csv: one row per (channel setting, method) with means, SDs and 95 % CIs."""
    write_table(summary, path)
