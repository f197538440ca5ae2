"""``inpaint_ns`` and ``inpaint_telea``: latent-space inpainting (Bajić, ICC 2021).

Each damaged channel is treated as a grey image and repaired with the algorithms of
OpenCV's ``cv2.inpaint`` (``INPAINT_NS``: OpenCV's fast-marching variant of Bertalmio,
Bertozzi & Sapiro's Navier-Stokes method; ``INPAINT_TELEA``: Telea's fast marching
method) on the lost-entry mask, with ``radius`` (default 5; OpenCV rounds it half to
even and clamps it to [1, 100]). Only damaged channels are touched, and only the rows
from ``radius + 1`` above the first lost row to ``radius + 1`` below the last one
(``radius`` rounded up) are inpainted, since nothing farther contributes. A channel lost
entirely becomes 0; a channel whose received entries in those rows are all equal gets
that value.

Value mapping: OpenCV's float path of INPAINT_TELEA overshoots badly on signed
features (four times the error of its 16-bit path on the default model's features:
benchmarks/completion-notes.md), so each crop is mapped linearly to 16-bit integers and
back. The received values' range
[lo, hi] maps to the middle half [16384, 49151] of the 16-bit range, which leaves room
for estimates outside the received range (no real value is ever clipped) and keeps a
resolution of (hi - lo) / 32767. The way there is rounded float32 arithmetic (numpy's on
float32 data), the way back float64.

Implementation: :mod:`dfsim.completion.fmm_inpaint`, compiled with numba, whole batches
per call. A channel whose lost entries are all in fully lost rows (a lost packet is a
band of whole rows) is filled by the row-band kernel (:mod:`dfsim.completion.fmm_bands`):
the same algorithm (Telea's weights; OpenCV's Navier-Stokes weights, in OpenCV's order
within a row) with the fast marching specialised to full-width bands and the sums
vectorised across a row. Its estimates differ slightly from OpenCV's: the error on lost
entries of real features is lower for Telea and the same within 0.5 % for Navier-Stokes
(benchmarks/inpainting-vs-opencv.md). Any other mask, and every mask with
``opencv_exact: true``, goes to the port of OpenCV's 16-bit inpainting
(:mod:`dfsim.completion.fmm_opencv`), which gives the bits of ``cv2.inpaint`` (for
comparisons with simulators that call OpenCV). :func:`_inpaint_opencv` is the
method written with ``cv2.inpaint`` (the reference the port is tested against; images
narrower or shorter than 2 pixels still use it).
"""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np

from dfsim.completion.base import CompletionMethod, register_method
from dfsim.completion.fmm_inpaint import inpaint_tensors
from dfsim.registry import Range

_LO, _HI = 16384, 49151  # where the received range [lo, hi] is mapped in 16 bits


def _pad(radius: float) -> int:
    """Rows kept above the first and below the last lost row."""
    return int(np.ceil(radius)) + 1


def _inpaint_opencv(tensor: np.ndarray, lost: np.ndarray, radius: float, flag: int) -> np.ndarray:
    """The method with ``cv2.inpaint`` (``flag``: cv2.INPAINT_NS or cv2.INPAINT_TELEA) on
    one C x H x W tensor; returns a copy whose lost entries hold the estimates (received
    entries of a damaged crop come back through the 16-bit mapping)."""
    out = tensor.copy()
    h = tensor.shape[1]
    pad = _pad(radius)
    rows_lost = lost.any(axis=2)  # C x H
    for c in np.flatnonzero(rows_lost.any(axis=1)):
        if lost[c].all():
            out[c] = 0.0  # nothing to propagate from
            continue
        r = np.flatnonzero(rows_lost[c])
        r0, r1 = max(0, r[0] - pad), min(h, r[-1] + pad + 1)
        img = tensor[c, r0:r1]
        mask = lost[c, r0:r1]
        known = img[~mask]
        lo, hi = float(known.min()), float(known.max())
        if hi <= lo:
            out[c, r0:r1] = lo
            continue
        step = (hi - lo) / (_HI - _LO)
        q = np.rint((img - lo) / step + _LO).clip(0, 65535).astype(np.uint16)
        filled = cv2.inpaint(q, mask.astype(np.uint8), radius, flag)
        out[c, r0:r1] = ((filled.astype(np.float64) - _LO) * step + lo).astype(np.float32)
    return out


class _Inpainting(CompletionMethod):
    flag = None

    def __init__(
        self, radius: Annotated[float, Range(0, lo_open=True)] = 5, opencv_exact: bool = False
    ):
        self.radius = radius
        self.opencv_exact = bool(opencv_exact)

    def _batch(self, tensors: np.ndarray, lost: np.ndarray) -> np.ndarray:
        """N x C x H x W float32 copy of ``tensors`` with the lost entries filled."""
        if tensors.shape[-1] < 2 or tensors.shape[-2] < 2:  # outside the port's domain
            out = tensors.copy()
            for t, m, o in zip(tensors, lost, out, strict=True):
                if m.any():
                    np.copyto(o, _inpaint_opencv(t, m, self.radius, self.flag), where=m)
            return out
        telea = self.flag == cv2.INPAINT_TELEA
        pad = _pad(self.radius)
        return inpaint_tensors(tensors, lost, self.radius, telea, pad, not self.opencv_exact)

    def complete(self, tensor, lost, layout=None):
        tensor = np.asarray(tensor, dtype=np.float32)
        lost = np.asarray(lost, dtype=bool)
        if tensor.shape != lost.shape:
            raise ValueError(f"tensor shape {tensor.shape} != mask shape {lost.shape}")
        return self._batch(tensor[None], lost[None])[0]

    def complete_batch(self, tensors, lost, layout=None):
        tensors = np.asarray(tensors, dtype=np.float32)
        lost = np.asarray(lost, dtype=bool)
        if tensors.shape != lost.shape:
            raise ValueError(f"tensor shape {tensors.shape} != mask shape {lost.shape}")
        if not len(tensors):
            return tensors.copy()
        return self._batch(tensors, lost)

    def _fill(self, tensor, lost, layout):
        return self._batch(tensor[None], lost[None])[0]


@register_method("inpaint_ns")
class NavierStokesInpainting(_Inpainting):
    """Per-channel Navier-Stokes inpainting (OpenCV INPAINT_NS)."""

    flag = cv2.INPAINT_NS


@register_method("inpaint_telea")
class TeleaInpainting(_Inpainting):
    """Per-channel fast-marching inpainting (OpenCV INPAINT_TELEA)."""

    flag = cv2.INPAINT_TELEA
