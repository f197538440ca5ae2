"""HaLRTC and SiLRTC against the public reference simulator's HaLRTC (DFTS2, Dhondea et al.),
on the default model's real features.

    .venv/bin/python benchmarks/halrtc_vs_reference.py [--images 200] [--out FILE.md]

Features: fmnist-resnet at its default split (add_1, 32x28x28), 8-bit, 4-row packets, one
Gilbert-Elliott loss pattern (30 %, mean burst 4, seed 0) over the first N test images.
MSE on the lost entries against the loss-free (dequantized) features, after 5, 10, 20 and 50
iterations: the reference's HaLRTC with uniform and with random mode weights (it draws them
per tensor), ours with uniform and with the default weights (1/2, 1/2, 0).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ITERS = (5, 10, 20, 50)


def dfts2_halrtc(damaged, received, iters: int, alpha) -> list[np.ndarray]:
    """The reference simulator's HaLRTC, ported to numpy as it runs there: channels-last
    float64 tensor, rho 1e-6 growing by 1.2 without a cap, no stopping rule, singular values
    shrunk without clamping at zero (its ``np.max(s - t, 0)`` reduces over a one-element
    axis), mode weights normalised (drawn at random there; given here). Returns the
    iterate after each iteration (C x H x W)."""
    x = np.moveaxis(damaged, 0, -1).astype(np.float64)
    rec = np.moveaxis(received, 0, -1)
    vals = x[rec]
    a = np.asarray(alpha, float) / np.sum(alpha)
    rho = 1e-6
    ys = np.zeros((3, *x.shape))
    ms = np.zeros((3, *x.shape))

    def unfold(t, mode):
        return np.moveaxis(t, mode, 0).reshape(t.shape[mode], -1)

    def fold(u, mode, shape):
        moved = (shape[mode], *[d for i, d in enumerate(shape) if i != mode])
        return np.moveaxis(u.reshape(moved), 0, mode)

    out = []
    for _ in range(iters):
        for i in range(3):
            u, s, vt = np.linalg.svd(unfold(x, i) + unfold(ys[i], i) / rho, full_matrices=False)
            ms[i] = fold((u * (s - a[i] / rho)) @ vt, i, x.shape)
        x = np.sum(ms - ys / rho, axis=0) / 3
        x[rec] = vals
        ys -= rho * (ms - x)
        rho *= 1.2
        out.append(np.moveaxis(x, -1, 0))
    return out


def features(n: int, seed: int = 0):
    """The first ``n`` test images' coded features and one loss pattern (drawn with ``seed``)."""
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import load_model

    model = load_model("fmnist-resnet")
    return coded_features(
        model, model.default_split, load_fashion_mnist("test").head(n).images, seed
    )


def coded_features(model, split: str, images, seed: int = 0):
    """``images``' 8-bit coded features at ``split`` in 4-row packets, and one
    Gilbert-Elliott loss pattern (30 %, mean burst 4) drawn with ``seed``."""
    from dfsim.codecs.raw import RawCodec
    from dfsim.experiment.prepare import coded_edge_features
    from dfsim.transport.channels import GilbertElliott
    from dfsim.transport.packets import PacketLayout

    layout = PacketLayout.for_shape(model.crossing(split)[0].shape, 4)
    x = coded_edge_features(model, split, images, RawCodec(8), layout)
    flags = GilbertElliott.from_loss_burst(0.3, 4).sample(
        len(x) * layout.packets_per_tensor, np.random.default_rng(seed)
    )
    return x, layout.lost_mask(flags)


def main() -> None:
    import torch

    from dfsim import completion
    from dfsim.tools.bench import cpu_name

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/halrtc-vs-reference.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    x, lost = features(args.images)
    damaged = np.where(lost, 0, x).astype(np.float32)

    def mse(y):
        return float(np.mean(np.square(y - x)[lost]))

    rows = {}
    rng = np.random.default_rng(0)
    for label, weights in [
        ("reference HaLRTC, uniform weights", lambda: (1, 1, 1)),
        ("reference HaLRTC, random weights per tensor", lambda: np.abs(rng.standard_normal(3))),
    ]:
        curves = [
            dfts2_halrtc(d, ~lo, max(ITERS), weights()) for d, lo in zip(damaged, lost, strict=True)
        ]
        rows[label] = [mse(np.stack([c[k - 1] for c in curves])) for k in ITERS]
    for name in ("halrtc", "silrtc"):
        for label, alpha in (
            ("uniform weights", [1, 1, 1]),
            ("default weights (1/2, 1/2, 0)", None),
        ):
            rows[f"dfsim {name}, {label}"] = [
                mse(completion.make(name, max_iters=k, alpha=alpha).complete_batch(damaged, lost))
                for k in ITERS
            ]
    lines = [
        "# HaLRTC/SiLRTC against the reference simulator's HaLRTC",
        "",
        f"`.venv/bin/python benchmarks/halrtc_vs_reference.py --images {args.images}`; "
        f"{cpu_name()}, {os.cpu_count()} cores, {date.today()}, "
        f"{time.perf_counter() - t0:.0f} s. fmnist-resnet add_1 (32x28x28), 8-bit, 4-row packets, "
        f"Gilbert-Elliott 30 % / mean burst 4 (seed 0), first {args.images} test images; "
        f"{lost.mean():.1%} of entries lost; zero-fill MSE {mse(damaged):.4f}. "
        "MSE on lost entries after k iterations (ours stop earlier when converged, tol 1e-4):",
        "",
        "| method | " + " | ".join(f"k = {k}" for k in ITERS) + " |",
        "|---|" + "---:|" * len(ITERS),
    ]
    for label, vals in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{v:.4g}" for v in vals) + " |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
