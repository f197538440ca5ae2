"""The mirror model: reconstructs the input image in the cloud from the ``add_1`` features
of the default Fashion-MNIST ResNet (:mod:`dfsim.models.fmnist_resnet`), as they arrive
after the codec (quantized to 8 bits per tensor, then dequantized).

Architecture: the edge sub-model up to ``add_1`` mirrored, layer for layer, in reverse::

    edge    stem conv3x3(1->32) BN ReLU ->
            block conv3x3(32->32) BN ReLU conv3x3(32->32) BN + x          [add_1 32x28x28]
    mirror  block conv3x3(32->32) BN ReLU conv3x3(32->32) BN + x, ReLU ->
            conv3x3(32->1) -> sigmoid                                    [image 1x28x28]

The edge has no pooling or stride before ``add_1`` (its features keep the image's 28 x 28
resolution), so the mirror needs no upsampling. The sigmoid puts the image in [0, 1]
(pixel / 255).

Training (:func:`train`, ``dfsim train --model fmnist-mirror``): the frozen edge
sub-model of the committed ``fmnist-resnet`` computes the features of the training images
once: the first :data:`FIT_IMAGES` to fit on and the last :data:`VALIDATION` held out for
validation (a subset of the 60 000: a mirror of three convolutions needs no more). Every
image's tensor is quantized to 8 bits with its own min/max and dequantized by the codec's
own functions (:mod:`dfsim.codecs.quantizer`), so the mirror learns from exactly what the
cloud receives when nothing is lost. The loss is ``0.6 * (1 - SSIM) + 1.0 * MSE`` on [0, 1]
images, with SSIM from ``pytorch_msssim`` (Gaussian window of 7 pixels, sigma 1.5,
``data_range=1``: the 11-pixel default would leave only an 18 x 18 map of a 28 x 28 image);
Adam at learning rate 1e-4, batches of 32 images. After each epoch the validation loss is
computed: training stops after :data:`PATIENCE` epochs without a better one, or after
``epochs``, and the best epoch's weights are kept. Deterministic: the seed drives
initialisation and shuffling, and torch runs with deterministic algorithms.

The committed weights (``weights/fmnist_mirror.pt``) come from ``train(WEIGHTS_FILE)``
with the defaults (seed 0, at most 8 epochs) and one torch thread (``dfsim train --model
fmnist-mirror --threads 1``: torch's results depend on the thread count); how long that
takes, and the committed mirror's PSNR and SSIM, are in benchmarks/training.md and
benchmarks/models-notes.md.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfsim.errors import UserError
from dfsim.models.fmnist_resnet import load_weights

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "fmnist_mirror.pt"
# the fmnist-resnet weights (weights_digest) whose edge the committed mirror inverts
TRAINED_FOR = "3564154bc59a28c2"
SPLIT = "add_1"  # the split point the mirror inverts
BITS = 8  # the default codec's quantization
SSIM_WINDOW = 7  # Gaussian window (pixels) of SSIM on 28 x 28 images
LAMBDA_SSIM, LAMBDA_MSE = 0.6, 1.0
VALIDATION = 5000  # the last training images, held out for early stopping
FIT_IMAGES = 20000  # the first training images, the ones the mirror is fitted on
PATIENCE = 2  # epochs without a better validation loss before training stops


class MirrorResidual(nn.Module):
    """``x + conv BN ReLU conv BN (x)``: the mirror of the edge's residual block."""

    def __init__(self, width: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x):
        return x + self.main(x)


class FashionMirror(nn.Module):
    """Features N x 32 x 28 x 28 (``add_1``) -> images N x 1 x 28 x 28 in [0, 1]."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.block = MirrorResidual(width)
        self.relu = nn.ReLU()
        self.stem = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, features):
        return torch.sigmoid(self.stem(self.relu(self.block(features))))


class SumThenMirror(nn.Module):
    """The mirror on the sum of the tensors crossing a cut just before ``add_1``
    (fmnist-resnet-traced at ``add_1.main``: the skip and the block's branch, whose sum is
    ``add_1``): tensors in (positional), images out."""

    def __init__(self, mirror: FashionMirror):
        super().__init__()
        self.mirror = mirror

    def forward(self, *tensors):
        total = tensors[0]
        for t in tensors[1:]:
            total = total + t
        return self.mirror(total)


def quantized_features(images_u8: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """The committed ``fmnist-resnet``'s ``add_1`` features of uint8 images, quantized to
    8 bits per image tensor and dequantized, as the default codec delivers them (float32
    N x 32 x 28 x 28)."""
    from dfsim.codecs.quantizer import dequantize, quantize
    from dfsim.models import load_model
    from dfsim.models.inference import prepare_for_inference, run_batched

    model = load_model("fmnist-resnet")
    edge = prepare_for_inference(model.edge(SPLIT))
    out = np.empty((len(images_u8), *model.crossing(SPLIT)[0].shape), np.float32)
    for i in range(0, len(images_u8), batch_size):
        x = model.normalise(images_u8[i : i + batch_size])
        out[i : i + batch_size] = dequantize(quantize(run_batched(edge, x, batch_size), BITS))
    return out


def psnr_ssim(recon: torch.Tensor, images: torch.Tensor) -> tuple[float, float]:
    """Mean per-image PSNR (dB) and SSIM of reconstructions against images, both in [0, 1]."""
    from pytorch_msssim import ssim

    a, b = recon.double(), images.double()
    mse = ((a - b) ** 2).flatten(1).mean(1)
    psnr = (10 * torch.log10(1.0 / mse)).clamp(max=100.0)
    s = ssim(a, b, data_range=1.0, win_size=SSIM_WINDOW, size_average=False)
    return float(psnr.mean()), float(s.mean())


@torch.no_grad()
def reconstruct(net: nn.Module, features, batch_size: int = 500) -> torch.Tensor:
    """The mirror's images of ``features`` (float32 N x 32 x 28 x 28), in eval mode."""
    net.eval()
    feats = torch.as_tensor(features)
    return torch.cat([net(feats[i : i + batch_size]) for i in range(0, len(feats), batch_size)])


def _loss(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    from pytorch_msssim import ssim

    s = ssim(recon, images, data_range=1.0, win_size=SSIM_WINDOW)
    return LAMBDA_SSIM * (1 - s) + LAMBDA_MSE * F.mse_loss(recon, images)


def _mirror_data(data_dir, fit_images: int, log, t0: float):
    """The quantized features and [0, 1] images to fit on and to validate on (see the module
    docstring), and the Fashion-MNIST test set."""
    from dfsim.data.datasets import load_fashion_mnist

    train_set = load_fashion_mnist("train", data_dir)
    test_set = load_fashion_mnist("test", data_dir)
    n_fit = min(fit_images, len(train_set) - VALIDATION)
    used = np.concatenate([train_set.images[:n_fit], train_set.images[-VALIDATION:]])
    feats = torch.from_numpy(quantized_features(used))
    images = torch.from_numpy(used).float() / 255.0
    log(f"features of {len(used)} training images: {time.perf_counter() - t0:.0f} s")
    return (feats[:n_fit], images[:n_fit]), (feats[n_fit:], images[n_fit:]), test_set


def _train_epoch(net, opt, x_fit, y_fit, batch_size: int, gen) -> float:
    """One epoch over the fitting set in an order drawn from ``gen``; its mean loss."""
    n_fit = len(x_fit)
    net.train()
    perm = torch.randperm(n_fit, generator=gen)
    total = 0.0
    for i in range(0, n_fit, batch_size):
        idx = perm[i : i + batch_size]
        loss = _loss(net(x_fit[idx]), y_fit[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total / n_fit


def train(
    out: Path,
    epochs: int = 8,
    batch_size: int = 32,
    lr: float = 1e-4,
    seed: int = 0,
    data_dir: str | None = None,
    log=print,
    fit_images: int = FIT_IMAGES,
) -> dict:
    """Train the mirror (see the module docstring), save the best epoch's weights to
    ``out`` and return its validation and test PSNR/SSIM, the seconds and epochs taken."""
    if epochs < 1:
        raise UserError(f"--epochs: must be at least 1, got {epochs}")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    (x_fit, y_fit), (x_val, y_val), test_set = _mirror_data(data_dir, fit_images, log, t0)

    net = FashionMirror()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, best_state, best_epoch, stale, ran = math.inf, None, 0, 0, 0
    val_psnr = val_ssim = math.nan
    for epoch in range(epochs):
        ran = epoch + 1
        train_loss = _train_epoch(net, opt, x_fit, y_fit, batch_size, gen)
        recon = reconstruct(net, x_val)
        v_loss = float(_loss(recon, y_val))
        v_psnr, v_ssim = psnr_ssim(recon, y_val)
        log(
            f"epoch {ran}/{epochs}: train loss {train_loss:.4f}, validation loss "
            f"{v_loss:.4f}, PSNR {v_psnr:.2f} dB, SSIM {v_ssim:.4f}, "
            f"{time.perf_counter() - t0:.0f} s"
        )
        if v_loss < best:
            best, best_epoch, stale = v_loss, ran, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            val_psnr, val_ssim = v_psnr, v_ssim
        else:
            stale += 1
            if stale >= PATIENCE:
                log(f"no better validation loss for {PATIENCE} epochs: stopping")
                break
    net.load_state_dict(best_state)
    test_psnr, test_ssim = psnr_ssim(
        reconstruct(net, quantized_features(test_set.images)),
        torch.from_numpy(test_set.images).float() / 255.0,
    )
    seconds = time.perf_counter() - t0
    log(
        f"best epoch {best_epoch}: validation PSNR {val_psnr:.2f} dB, SSIM {val_ssim:.4f}; "
        f"test PSNR {test_psnr:.2f} dB, SSIM {test_ssim:.4f}; {seconds:.0f} s"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    return {
        "val_psnr": val_psnr,
        "val_ssim": val_ssim,
        "test_psnr": test_psnr,
        "test_ssim": test_ssim,
        "best_epoch": float(best_epoch),
        "seconds": seconds,
        "epochs": ran,
        "seed": seed,
    }


def load_mirror(
    weights: str | Path | None = None,
    key: str = "task.weights",
    classifier_id: str | None = None,
) -> FashionMirror:
    """The mirror with the committed weights (or ``weights``), in eval mode; a missing or
    unloadable file is a one-line :class:`~dfsim.errors.UserError` naming ``key``. Given
    the weights digest of the fmnist-resnet whose features it will see (``classifier_id``),
    the committed mirror refuses any other than :data:`TRAINED_FOR` (a user's ``weights``
    are taken as trained for them)."""
    if weights is None and classifier_id is not None and classifier_id != TRAINED_FOR:
        raise UserError(
            f"{key}: the built-in mirror inverts fmnist-resnet weights {TRAINED_FOR}, "
            f"not these ({classifier_id}); give {key}: a mirror of the same "
            "architecture trained for them"
        )
    net = FashionMirror()
    train = "dfsim train --model fmnist-mirror"
    load_weights(net, weights, WEIGHTS_FILE, key, train, "mirror weights file")
    return net
