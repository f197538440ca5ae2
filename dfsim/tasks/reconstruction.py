"""``reconstruction``: the cloud rebuilds the input image from the received features with
a *mirror* of the edge sub-model (:mod:`dfsim.models.fmnist_mirror`), and the image is
scored against the original and against the loss-free reconstruction.

The task brings its own cloud sub-model (the mirror, in place of the model's classifier
part): it receives the repaired, dequantized features and returns images N x 1 x H x W in
[0, 1]; predictions are those images clipped to [0, 1] (float32). The built-in mirror
inverts the committed ``fmnist-resnet`` at split ``add_1``, trained on its 8-bit quantized
features (the default codec's); it also serves ``fmnist-resnet-traced`` at ``add_1.main``,
whose two crossing tensors sum to ``add_1`` (a two-stream, two-task system with
classification); ``weights`` loads another mirror of the same architecture
(e.g. one trained for other ``fmnist-resnet`` weights).

Metrics, each the mean over a trial's images of the per-image value: ``psnr`` and ``ssim``
of the reconstruction against the original image (pixel / 255), ``psnr_lossfree`` and
``ssim_lossfree`` against the loss-free reconstruction (the ``reference``: the mirror's
image of the features without packet loss; no labels needed). PSNR is
``10 log10(1 / MSE)`` dB on [0, 1] images; it is infinite for identical images, so each
image's PSNR is capped at :data:`PSNR_CAP` dB before the mean (the results' columns stay
finite; an image at the cap is reconstructed exactly as the reference, to 1e-10 MSE). SSIM
is ``pytorch_msssim``'s (Gaussian window of 7 pixels with sigma 1.5, ``data_range=1``,
K1 = 0.01, K2 = 0.03, computed in float64): 1 for identical images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np

from dfsim.errors import UserError
from dfsim.registry import FILE, register
from dfsim.stages import Metric

PSNR_CAP = 100.0  # dB: the per-image PSNR a run's mean uses for identical images
SSIM_WINDOW = 7  # Gaussian window (pixels) of SSIM on 28 x 28 images
# (model, split) pairs with a built-in mirror; at the traced model's add_1.main the two
# crossing tensors (the skip and the branch) are summed into add_1 first
MIRRORS = {("fmnist-resnet", "add_1"), ("fmnist-resnet-traced", "add_1.main")}
_CHUNK = 1000  # images per SSIM batch (bounds memory on large trials)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray | float:
    """PSNR in dB of ``a`` against ``b``: ``10 log10(data_range^2 / MSE)``, per image for
    batches N x ... (an array N), else one number; +inf where the images are identical."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"psnr of images of different shapes {a64.shape} and {b64.shape}")
    batched = a64.ndim == 4
    axes = tuple(range(1, a64.ndim)) if batched else None
    mse = np.mean((a64 - b64) ** 2, axis=axes)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(data_range**2 / mse)
    return out if batched else float(out)


def ssim_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each image of ``a`` (N x C x H x W in [0, 1]) against the same image of
    ``b``, computed by ``pytorch_msssim`` in float64 (window 7, ``data_range=1``): N."""
    import torch
    from pytorch_msssim import ssim

    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape or a64.ndim != 4:
        raise ValueError(f"ssim needs two N x C x H x W batches, got {a64.shape} and {b64.shape}")
    out = np.empty(len(a64))
    with torch.inference_mode():
        for i in range(0, len(a64), _CHUNK):
            x, y = torch.from_numpy(a64[i : i + _CHUNK]), torch.from_numpy(b64[i : i + _CHUNK])
            s = ssim(x, y, data_range=1.0, win_size=SSIM_WINDOW, size_average=False)
            out[i : i + _CHUNK] = s.numpy()
    return out


def mean_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the PSNR capped at :data:`PSNR_CAP` (NaN for no image)."""
    return float(np.minimum(psnr(a, b), PSNR_CAP).mean()) if len(a) else float("nan")


def mean_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of :func:`ssim_per_image` (NaN for no image)."""
    return float(ssim_per_image(a, b).mean()) if len(a) else float("nan")


@register("task", "reconstruction")
class Reconstruction:
    """Input reconstruction by the mirror model (see the module docstring)."""

    metrics = (
        Metric("psnr", "PSNR against the original", "dB", True, core=True, decimals=2),
        Metric("ssim", "SSIM against the original", "", True, core=True, decimals=4),
        Metric(
            "psnr_lossfree",
            "PSNR against the loss-free reconstruction",
            "dB",
            True,
            core=True,
            decimals=2,
        ),
        Metric(
            "ssim_lossfree",
            "SSIM against the loss-free reconstruction",
            "",
            True,
            core=True,
            decimals=4,
        ),
    )
    primary = "ssim"
    label_free = "ssim_lossfree"

    def __init__(self, weights: Annotated[str, FILE] | None = None):
        self.weights = weights
        self._mirror = None

    def bind(self, model, split: str) -> None:
        """Check that a mirror exists for ``model`` at ``split`` and load it."""
        if (model.name, split) not in MIRRORS:
            have = ", ".join(f"{m} at split {s}" for m, s in sorted(MIRRORS))
            raise UserError(
                f"task: reconstruction has a mirror model for {have} only "
                f"(got {model.name} at {split})"
            )
        from dfsim.models.fmnist_mirror import SumThenMirror, load_mirror

        mirror = load_mirror(self.weights, classifier_id=model.weights_id)
        self._mirror = SumThenMirror(mirror).eval() if split == "add_1.main" else mirror

    def cache_id(self) -> str:
        """The mirror's weights (digest), which determine the predictions."""
        from dfsim.models.fmnist_mirror import WEIGHTS_FILE
        from dfsim.models.fmnist_resnet import weights_digest

        path = Path(self.weights) if self.weights else WEIGHTS_FILE
        return weights_digest(path) if path.is_file() else ""

    def cloud_model(self, model, split: str):
        """The mirror: features N x 32 x 28 x 28 -> images N x 1 x 28 x 28 in [0, 1]."""
        if self._mirror is None:
            self.bind(model, split)
        return self._mirror

    def targets(self, images) -> np.ndarray:
        """The original images as float32 in [0, 1] (N x C x H x W)."""
        return np.asarray(images.images, np.float32) / np.float32(255.0)

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """The mirror's images clipped to [0, 1] (a float32 copy)."""
        return np.clip(np.asarray(outputs, np.float32), 0.0, 1.0)

    def evaluate(self, predictions, reference, targets) -> dict[str, float]:
        """Mean per-image PSNR (capped) and SSIM against the originals and the reference."""
        return {
            "psnr": mean_psnr(predictions, targets),
            "ssim": mean_ssim(predictions, targets),
            "psnr_lossfree": mean_psnr(predictions, reference),
            "ssim_lossfree": mean_ssim(predictions, reference),
        }

    show_original = True  # example figures show the original image next to the reconstructions

    def show(self, ax, image: np.ndarray, prediction: np.ndarray, classes) -> None:
        """Draw one reconstructed image."""
        ax.imshow(prediction[0], cmap="gray", vmin=0.0, vmax=1.0)

    def __repr__(self) -> str:
        return f"Reconstruction(weights={self.weights!r})"
