"""Fast-marching inpainting of the channels of feature tensors, compiled with numba.

The whole per-channel loop of :mod:`dfsim.completion.inpainting` (row crop, mapping to 16
bits and back) runs in one compiled call per batch of tensors, with work arrays allocated
once. Each crop goes to one of two kernels:

* :mod:`dfsim.completion.fmm_opencv`, a port of the 16-bit single-channel path of OpenCV's
  ``cv2.inpaint`` (``INPAINT_TELEA`` and ``INPAINT_NS``) that gives its bits;
* :mod:`dfsim.completion.fmm_bands` (``bands=True``), when every lost pixel of the crop
  lies in a fully lost row, which is what a lost packet of whole rows leaves: the same
  algorithm specialised to that geometry, not bit for bit (its error on lost entries of
  real features is lower than OpenCV's for INPAINT_TELEA and the same within 0.5 % for
  INPAINT_NS; tests/test_inpaint_bands.py, benchmarks/inpainting_vs_opencv.py).

What both share (compile settings, the neighbourhood of a radius, OpenCV's gradient and
rounding rules) is in :mod:`dfsim.completion.fmm_common`, the fast marching itself in
:mod:`dfsim.completion.fmm_march`.
"""

from __future__ import annotations

import numpy as np

from dfsim.completion.fmm_bands import inpaint_rows, new_band_work
from dfsim.completion.fmm_common import F32, cv_range, kernel, offsets, steps
from dfsim.completion.fmm_opencv import inpaint_image, inpaint_one, new_work

__all__ = ["cv_range", "inpaint_tensors", "inpaint_u16", "offsets"]

_LO, _HI = 16384, 49151  # where the received range [lo, hi] is mapped in 16 bits


@kernel
def _count_lost(mask, counts):
    """Lost pixels per row of the H x W ``mask`` into ``counts``. Returns the first and
    last row with a lost pixel (-1 for none) and how many are lost."""
    first = -1
    last = -1
    total = 0
    for y in range(mask.shape[0]):
        k = 0
        for col in range(mask.shape[1]):
            if mask[y, col]:
                k += 1
        counts[y] = k
        if k:
            if first < 0:
                first = y
            last = y
            total += k
    return first, last, total


@kernel
def _received_range(x, mask, r0, r1):
    """The smallest and largest received value (float64) of rows [r0, r1) of ``x``."""
    lo = np.inf
    hi = -np.inf
    for y in range(r0, r1):
        for col in range(x.shape[1]):
            if not mask[y, col]:
                v = np.float64(x[y, col])
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
    return lo, hi


@kernel
def _to_16_bits(x, r0, r1, lo32, step32, image):
    """Rows [r0, r1) of ``x`` mapped to 16 bits into ``image``: (x - lo) / step + 16384
    in float32 arithmetic (as numpy evaluates it on float32 data), rounded half to even
    and clamped to [0, 65535] (NaN to 0)."""
    flo = F32(_LO)
    for y in range(r0, r1):
        for col in range(x.shape[1]):
            v32 = np.rint((x[y, col] - lo32) / step32 + flo)
            if v32 > F32(65535.0):
                v32 = F32(65535.0)
            if not (v32 >= F32(0.0)):  # negative or NaN
                v32 = F32(0.0)
            image[y - r0, col] = np.uint16(v32)


@kernel
def _whole_rows(counts, r0, r1, w, lost_rows):
    """Mark in ``lost_rows`` the fully lost rows of [r0, r1) (from 0); whether every lost
    pixel there is in one."""
    whole = True
    for y in range(r0, r1):
        k = counts[y]
        lost_rows[y - r0] = k == w
        if k != 0 and k != w:
            whole = False
    return whole


@kernel
def _inpaint_tensors(x, lost, out, radius, pad, telea, flat, rec, bands, step_x, step_y):
    """For each channel of the N x C x H x W ``x`` with lost entries, fill ``out``'s lost
    entries as :mod:`dfsim.completion.inpainting` specifies: rows [first lost - pad, last
    lost + pad], received range [lo, hi] mapped to [16384, 49151] (float32 arithmetic, as
    numpy evaluates it), inpainted, mapped back (float64). With ``bands``, a crop whose
    lost pixels fill whole rows goes to :func:`~dfsim.completion.fmm_bands.inpaint_rows`,
    any other to :func:`~dfsim.completion.fmm_opencv.inpaint_image`."""
    N, C, H, W = x.shape
    margin = radius
    stride = W + 2 + 2 * margin
    work = new_work((H + 2 + 2 * margin) * stride, flat.shape[0])
    band_work = new_band_work(H, W, step_x.shape[0], radius)
    lost_rows = np.empty(H, np.bool_)
    counts = np.empty(H, np.int64)
    image = np.empty((H, W), np.uint16)
    for i in range(N):
        for c in range(C):
            xc = x[i, c]
            mc = lost[i, c]
            oc = out[i, c]
            first, last, nlost = _count_lost(mc, counts)
            if first < 0:
                continue
            if nlost == H * W:  # nothing to propagate from
                for y in range(H):
                    for col in range(W):
                        oc[y, col] = F32(0.0)
                continue
            r0 = max(0, first - pad)
            r1 = min(H, last + pad + 1)
            lo, hi = _received_range(xc, mc, r0, r1)
            if hi <= lo:
                for y in range(r0, r1):
                    for col in range(W):
                        if mc[y, col]:
                            oc[y, col] = F32(lo)
                continue
            step = (hi - lo) / (_HI - _LO)
            _to_16_bits(xc, r0, r1, F32(lo), F32(step), image)
            if _whole_rows(counts, r0, r1, W, lost_rows) and bands:
                inpaint_rows(image, lost_rows, r1 - r0, W, radius, telea, step_x, step_y, rec,
                             band_work)  # fmt: skip
            else:
                inpaint_image(image, mc[r0:r1], r1 - r0, W, radius, telea, stride, margin,
                              flat, rec, work)  # fmt: skip
            for y in range(r0, r1):
                for col in range(W):
                    if mc[y, col]:
                        oc[y, col] = F32((np.float64(image[y - r0, col]) - _LO) * step + lo)


_OFFSETS: dict = {}


def _offsets(rng: int, stride: int, telea: bool):
    """:func:`offsets` and :func:`~dfsim.completion.fmm_common.steps`, computed once per
    (radius, stride, method)."""
    key = (rng, stride, telea)
    if key not in _OFFSETS:
        _OFFSETS[key] = (*offsets(*key), *steps(rng))
    return _OFFSETS[key]


def inpaint_tensors(
    x, lost, radius: float, telea: bool, pad: int, bands: bool = False
) -> np.ndarray:
    """Copy of the N x C x H x W float32 ``x`` whose ``lost`` entries are inpainted channel
    by channel (see :func:`_inpaint_tensors`; ``bands``: whole lost rows filled row by row,
    else always OpenCV's algorithm, bit for bit). Needs H, W >= 2."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    lost = np.ascontiguousarray(lost, dtype=np.bool_)
    out = x.copy()
    rng = cv_range(radius)
    flat, rec, step_x, step_y = _offsets(rng, x.shape[3] + 2 + 2 * rng, bool(telea))
    _inpaint_tensors(x, lost, out, rng, int(pad), bool(telea), flat, rec, bool(bands), step_x,
                     step_y)  # fmt: skip
    return out


def inpaint_u16(img: np.ndarray, mask: np.ndarray, radius: float, telea: bool) -> np.ndarray:
    """``cv2.inpaint(img, mask, radius, cv2.INPAINT_TELEA if telea else cv2.INPAINT_NS)``
    for a 16-bit single-channel image of at least 2 x 2 pixels."""
    q = np.array(img, dtype=np.uint16, order="C", copy=True)
    msk = np.ascontiguousarray(mask, dtype=np.bool_)
    if q.ndim != 2 or q.shape != msk.shape or min(q.shape) < 2:
        raise ValueError("expected a 2-D image of at least 2 x 2 pixels and a mask of its shape")
    rng = cv_range(radius)
    flat, rec, _, _ = _offsets(rng, q.shape[1] + 2 + 2 * rng, bool(telea))
    inpaint_one(q, msk, rng, bool(telea), flat, rec)
    return q
