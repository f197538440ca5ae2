"""Inpainting of whole lost rows: the row-band kernel (the default) against OpenCV's bits
(``opencv_exact: true``, the numba port that equals ``cv2.inpaint``), on the default model's
real features.

    .venv/bin/python benchmarks/inpainting_vs_opencv.py [--images 200] [--out FILE.md]

Features and loss as benchmarks/halrtc_vs_reference.py: fmnist-resnet add_1 (32x28x28),
8-bit, 4-row packets, one Gilbert-Elliott loss pattern (30 %, mean burst 4, seed 0) over the
first N test images; and the same for EfficientNet-Lite0 after _blocks.4 (40x28x28) on the
144 sample photographs of scenarios/imagenet-efficientnet.yaml. For each method and
radius: MSE on the lost entries against the loss-free (dequantized) features, the RMS
difference between the two estimates, and the time per tensor over the whole batch (one
thread; the best of 3).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from halrtc_vs_reference import coded_features, features  # noqa: E402 - the benchmarks' directory


def efficientnet_features(seed: int = 0):
    """EfficientNet-Lite0's coded features after _blocks.4 for the 144 sample photographs,
    and one loss pattern as :func:`features`."""
    from dfsim.data.datasets import load_sample_photos
    from dfsim.models import load_model

    model = load_model("efficientnet-lite0")
    images = load_sample_photos(model.input_shape, 144).images
    return coded_features(model, "_blocks.4", images, seed)


def main() -> None:
    import torch

    from dfsim import completion
    from dfsim.tools.bench import cpu_name

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/inpainting-vs-opencv.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sets = [
        (
            f"fmnist-resnet add_1 (32x28x28), first {args.images} Fashion-MNIST test images",
            features(args.images),
        ),
        (
            "EfficientNet-Lite0 _blocks.4 (40x28x28), the 144 sample photographs",
            efficientnet_features(),
        ),
    ]
    lines = [
        "# Inpainting of whole lost rows: row-band kernel against OpenCV's bits",
        "",
        f"`.venv/bin/python benchmarks/inpainting_vs_opencv.py --images {args.images}`; "
        "{cpu}, {cores} cores, one thread, {day}, {secs} s. 8-bit features, 4-row packets, "
        "Gilbert-Elliott 30 % / mean burst 4 (seed 0). MSE on lost entries; RMS difference "
        "between the two estimates on lost entries; time per tensor over the whole batch "
        "(best of 3).",
    ]
    for title, (x, lost) in sets:
        damaged = np.where(lost, 0, x).astype(np.float32)

        def mse(y, ref=x, lost=lost):
            return float(np.mean(np.square(y - ref)[lost]))

        def timed(m, damaged=damaged, lost=lost):
            m.complete_batch(damaged[:2], lost[:2])  # compiled, work arrays sized
            best, out = np.inf, None
            for _ in range(3):
                t = time.perf_counter()
                out = m.complete_batch(damaged, lost)
                best = min(best, time.perf_counter() - t)
            return out, 1e3 * best / len(damaged)

        lines += [
            "",
            f"{title}: {lost.mean():.1%} of entries lost, zero-fill MSE {mse(damaged):.4f}.",
            "",
            "| method | radius | MSE, row bands (default) | MSE, OpenCV's bits | ratio "
            "| RMS difference | ms / tensor, row bands | ms / tensor, OpenCV's bits |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name in ("inpaint_telea", "inpaint_ns"):
            for radius in (2, 5):
                bands, t_bands = timed(completion.make(name, radius=radius))
                exact, t_exact = timed(completion.make(name, radius=radius, opencv_exact=True))
                e_b, e_x = mse(bands), mse(exact)
                lines.append(
                    f"| `{name}` | {radius} | {e_b:.4f} | {e_x:.4f} | {e_b / e_x:.4f} "
                    f"| {np.sqrt(mse(bands, exact)):.4f} | {t_bands:.3f} | {t_exact:.3f} |"
                )
    text = "\n".join(lines).format(
        cpu=cpu_name(),
        cores=os.cpu_count(),
        day=date.today(),
        secs=f"{time.perf_counter() - t0:.0f}",
    )
    text += "\n"
    Path(args.out).write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
