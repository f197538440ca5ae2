"""The n-bit uniform min/max quantizer (Choi & Bajić's eqs. 2-3), the first step of a codec.

``q = round((V - min) / (max - min) * (2^n - 1))`` and
``V^ = q * (max - min) / (2^n - 1) + min``. min and max are computed *per tensor*
(per image, never shared across a batch) and travel as side information: two 32-bit
floats per tensor, counted in the bits sent (:data:`SIDE_INFO_BITS`). A constant
tensor (max == min) quantizes to all-zero codes and dequantizes to the constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE_INFO_BITS = 64  # float32 min + float32 max per tensor
MIN_BITS, MAX_BITS = 2, 16


@dataclass(frozen=True)
class Quantized:
    """Codes (uint8 for n <= 8, else uint16) of a batch of tensors with per-tensor min/max."""

    codes: np.ndarray  # N x C x H x W
    vmin: np.ndarray  # N, float32
    vmax: np.ndarray  # N, float32
    bits: int


def _check_bits(bits: int) -> None:
    if not (isinstance(bits, (int, np.integer)) and MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


def quantize(features: np.ndarray, bits: int) -> Quantized:
    """Quantize a batch ``N x ...`` of float tensors, each with its own min/max."""
    _check_bits(bits)
    v = np.asarray(features, dtype=np.float32)
    flat = v.reshape(len(v), -1)
    vmin = flat.min(axis=1).astype(np.float32)
    vmax = flat.max(axis=1).astype(np.float32)
    levels = (1 << bits) - 1
    span = vmax.astype(np.float64) - vmin
    scale = np.divide(levels, span, out=np.zeros_like(span), where=span > 0)
    shape = (-1,) + (1,) * (v.ndim - 1)
    q = np.rint((v - vmin.reshape(shape)) * scale.astype(np.float32).reshape(shape))
    np.clip(q, 0, levels, out=q)
    codes = q.astype(np.uint8 if bits <= 8 else np.uint16)
    return Quantized(codes, vmin, vmax, bits)


def dequantize(q: Quantized) -> np.ndarray:
    """Inverse of :func:`quantize`: float32 tensors ``N x ...``."""
    levels = (1 << q.bits) - 1
    step = ((q.vmax.astype(np.float64) - q.vmin) / levels).astype(np.float32)
    shape = (-1,) + (1,) * (q.codes.ndim - 1)
    out = q.codes.astype(np.float32)  # one allocation, then in place: this runs once per trial
    out *= step.reshape(shape)
    out += q.vmin.reshape(shape)
    return out
