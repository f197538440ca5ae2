"""What the two inpainting kernels share: how they are compiled, the neighbourhood of a
radius, OpenCV's image-gradient rule and its rounding to 16 bits.

The kernels are :mod:`dfsim.completion.fmm_opencv` (OpenCV's fast-marching inpainting, bit
for bit) and :mod:`dfsim.completion.fmm_bands` (the same algorithm specialised to whole
lost rows); :mod:`dfsim.completion.fmm_inpaint` runs them on tensors.
"""

from __future__ import annotations

import numpy as np

from dfsim.kernels import njit

F32 = np.float32
# flat pixel indices are unsigned: no negative-index wraparound in the loops
U64 = np.uint64
U0, U1 = U64(0), U64(1)

JIT = {"cache": True, "error_model": "numpy"}  # no fastmath: IEEE operations as written


def kernel(fn=None, *, inline: str = "never", nsz: bool = False):
    """:func:`dfsim.kernels.njit` with :data:`JIT` (``inline="always"``: inlined into its
    callers; cached with a stamp that covers the other fmm_* modules whose kernels it
    compiles in). ``nsz``: "no signed zeros", for the row-band kernel's sums (still IEEE
    operations as written, no reassociation, no fused multiply-add: it only lets LLVM
    vectorize their loops across a row)."""

    def wrap(f):
        options = {**JIT, "inline": inline, **({"fastmath": {"nsz"}} if nsz else {})}
        return njit(**options)(f)

    return wrap(fn) if fn is not None else wrap


def cv_range(radius: float) -> int:
    """OpenCV's neighbourhood radius for ``inpaintRange``: cvRound (half to even; values
    outside the int range give INT_MIN), then clamped to [1, 100]."""
    r = float(radius)
    v = np.rint(r) if np.isfinite(r) else np.nan
    iv = int(v) if -(2.0**31) <= v <= 2.0**31 - 1 else -(2**31)
    return min(max(iv, 1), 100)


def offsets(rng: int, stride: int, telea: bool):
    """The in-radius offsets (k - i)^2 + (l - j)^2 <= rng^2 in OpenCV's scan order (row by
    row, left to right), without the centre: the flat offset (wrapped to uint64) and per
    offset (r.x, r.y, distance weight, |r|^2) as float32, r = (j - l, i - k); the weight
    is INPAINT_TELEA's 1 / |r|^3 or INPAINT_NS's 1 / (|r|^4 + 1), computed as OpenCV does."""
    lin, rec = [], []
    for dk in range(-rng, rng + 1):
        for dl in range(-rng, rng + 1):
            if dk * dk + dl * dl > rng * rng or (dk == 0 and dl == 0):
                continue
            x, y = F32(-dl), F32(-dk)
            v = F32(x * x + y * y)
            if telea:  # float sqrt and product, double reciprocal, rounded to float
                dst = F32(1.0 / float(F32(v * np.sqrt(v))))
            else:  # float arithmetic
                dst = F32(F32(1.0) / F32(v * v + F32(1.0)))
            lin.append(dk * stride + dl)
            rec.append((x, y, dst, v))
    return np.array(lin, np.int64).view(np.uint64), np.array(rec, np.float32).ravel()


def steps(rng: int):
    """The in-radius offsets of :func:`offsets`, in the same order, as (column, row) steps."""
    pairs = [
        (dl, dk)
        for dk in range(-rng, rng + 1)
        for dl in range(-rng, rng + 1)
        if dk * dk + dl * dl <= rng * rng and (dk or dl)
    ]
    return np.array([d for d, _ in pairs], np.int64), np.array([k for _, k in pairs], np.int64)


@kernel
def to_u16(v):
    """saturate_cast<ushort>(double): round half to even (out of the int range: INT_MIN),
    then clamp to [0, 65535]."""
    r = np.rint(v)
    if not (r >= -2147483648.0 and r <= 2147483647.0):
        return F32(0.0)
    if r < 0.0:
        return F32(0.0)
    if r > 65535.0:
        return F32(65535.0)
    return F32(r)


@kernel
def gradient_part(ahead_known, behind_known, a, b, c, d, mid, telea):
    """One part (horizontal or vertical) of OpenCV's gradI at a pixel from the values
    ``a`` (the neighbour ahead: right or below), ``b`` (behind: left or above), ``c`` and
    ``d`` (the pixel itself as the one-sided rules read it) and ``mid`` (the pixel),
    ``ahead_known``/``behind_known``: whether those neighbours are known. INPAINT_TELEA:
    a - b doubled, a - c, d - b or 0; INPAINT_NS: |a - mid| + |mid - b|, either one
    doubled, or 0."""
    g = F32(0.0)
    if telea:
        if ahead_known:
            g = (a - b) * F32(2.0) if behind_known else a - c
        elif behind_known:
            g = d - b
    elif ahead_known:
        g = abs(a - mid)
        g = g + abs(mid - b) if behind_known else g * F32(2.0)
    elif behind_known:
        g = abs(mid - b) * F32(2.0)
    return g


@kernel(inline="always")
def inv_length(a, b):
    """1 / |(a, b)| in float32, 0 for the zero vector."""
    g2 = a * a + b * b
    return F32(1.0) / np.sqrt(g2) if g2 > F32(0.0) else F32(0.0)
