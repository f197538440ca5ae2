"""How the default features correlate along rows and across channels: the structure each
completion method relies on (interpolation and inpainting on rows, ALTeC and CALTeC on
channels, SiLRTC/HaLRTC on both).

    .venv/bin/python benchmarks/feature_statistics.py [--images 1000] [--out FILE.md]

Features: fmnist-resnet at its default split (add_1, 32x28x28), 8-bit coded as in the default
scenario, first N test images. Every correlation is Pearson's, per channel, pooled over the
images and positions:

* rows at lag k: the values at (row h, column w) and (row h + k, column w) of one channel;
  k = 4 is the distance between the same row of two neighbouring 4-row packets;
* across channels: for each channel, the other channel whose co-located values correlate
  most with it (largest |r|), which is what copying one channel (CALTeC) can at best use.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

LAGS = (1, 2, 4, 8)


def row_correlation(x: np.ndarray, lag: int) -> np.ndarray:
    """Per channel, the correlation of values ``lag`` rows apart (x: N x C x H x W)."""
    a = x[:, :, :-lag, :].transpose(1, 0, 2, 3).reshape(x.shape[1], -1).astype(np.float64)
    b = x[:, :, lag:, :].transpose(1, 0, 2, 3).reshape(x.shape[1], -1).astype(np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def channel_correlation(x: np.ndarray) -> np.ndarray:
    """The C x C correlation matrix of co-located values (x: N x C x H x W)."""
    flat = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).astype(np.float64)
    return np.corrcoef(flat)


def main() -> None:
    from dfsim.tools.bench import cpu_name

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from halrtc_vs_reference import features

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/feature-statistics.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    x, _ = features(args.images)
    rows = {k: row_correlation(x, k) for k in LAGS}
    corr = channel_correlation(x)
    np.fill_diagonal(corr, 0.0)
    best = np.abs(corr).max(axis=1)

    def stats(v: np.ndarray) -> str:
        return f"{v.mean():.2f} | {np.median(v):.2f} | {v.min():.2f} | {v.max():.2f}"

    lines = [
        "# How the default features correlate",
        "",
        f"`.venv/bin/python benchmarks/feature_statistics.py --images {args.images}`; "
        f"{cpu_name()}, {os.cpu_count()} cores, {date.today()}, "
        f"{time.perf_counter() - t0:.0f} s. fmnist-resnet add_1 (32x28x28), 8-bit coded, first "
        f"{args.images} test images. Pearson correlations per channel (pooled over images and "
        "positions), then their mean, median, minimum and maximum over the 32 channels:",
        "",
        "| correlation | mean | median | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in rows.items():
        lines.append(f"| rows {k} apart (same channel, same column) | {stats(v)} |")
    lines.append(f"| best other channel, abs(r) (co-located values) | {stats(best)} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
