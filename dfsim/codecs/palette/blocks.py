"""What the palette encoder and decoder compute alike, block by block (numba): the most
probable mode, the five predictions, residuals and reconstruction, the positions of a
(partial) block in scan order, and the adaptive statistics of the Rice parameter.

A tile (a packet, or a channel in whole-tensor mode) is held as ``tile``, a 2-D int64
array of its values; a block is the ``block_h x block_w`` block (1..4 each) whose top-left
value is ``tile[top, left]``. Residuals are kept at raster positions ``r * 4 + c`` of a
16-value array. ``pal_value`` is the palette entry chosen for the tile, ``p[j*]``, which
stands in for every value outside the tile.
"""

from __future__ import annotations

from dfsim.codecs.palette.syntax import CTX_SKIP, FIL1, FIL_TAPS, HOR, PAL, RICE_RESET, SCANS, VER
from dfsim.kernels import njit


# ------------------------------------------------------------------------ Rice parameter
@njit(cache=True)
def rice_parameter(rice_stats) -> int:
    """The Rice parameter: the smallest k with ``N << k >= A`` (at most 16), ``A`` the
    sum and ``N`` the count of the remainders coded so far (``rice_stats = [A, N]``)."""
    total, count = rice_stats[0], rice_stats[1]
    k = 0
    while (count << k) < total and k < 16:
        k += 1
    return k


@njit(cache=True)
def rice_update(rice_stats, remainder) -> None:
    """Count one coded remainder; both statistics halved when the count reaches 32."""
    rice_stats[0] += remainder
    rice_stats[1] += 1
    if rice_stats[1] >= RICE_RESET:
        rice_stats[0] >>= 1
        rice_stats[1] >>= 1


@njit(cache=True)
def rice_init(rice_stats, bits) -> None:
    """The statistics at the start of a stream: ``A = max(2, (2^bits + 32) >> 6)``, N = 1."""
    rice_stats[0] = max(2, ((1 << bits) + 32) >> 6)
    rice_stats[1] = 1


# ------------------------------------------------------------------------ modes
@njit(cache=True)
def most_probable_mode(modes, block_row, block_col, blocks_across) -> int:
    """Most probable mode: the most frequent among the left, top and top-left blocks
    (inside the tile), ties to the left's, then the top's; Pal when none exists.
    ``modes``: the modes of the tile's blocks so far, in raster order."""
    here = block_row * blocks_across + block_col
    left = modes[here - 1] if block_col > 0 else -1
    top = modes[here - blocks_across] if block_row > 0 else -1
    top_left = modes[here - blocks_across - 1] if (block_col > 0 and block_row > 0) else -1
    if top >= 0 and top == top_left and top != left:
        return top  # two votes against at most one
    if left >= 0:
        return left
    if top >= 0:
        return top
    return PAL


@njit(cache=True)
def skip_context(skips, block_row, block_col, blocks_across) -> int:
    """The SKIP flag's context: how many of the left and top blocks were skipped."""
    ctx = CTX_SKIP
    if block_col > 0:
        ctx += skips[block_row * blocks_across + block_col - 1]
    if block_row > 0:
        ctx += skips[(block_row - 1) * blocks_across + block_col]
    return ctx


# ------------------------------------------------------------------------ prediction
@njit(cache=True, inline="always")
def prediction(tile, row, col, top, left, mode, pal_value):
    """The prediction of value ``tile[row, col]`` of the block at (``top``, ``left``)
    under ``mode``; outside the tile, ``pal_value`` stands in."""
    if mode == PAL:
        return pal_value
    if mode == HOR:
        return tile[row, left - 1] if left > 0 else pal_value
    if mode == VER:
        return tile[top - 1, col] if top > 0 else pal_value
    taps = mode - FIL1
    west = tile[row, col - 1] if col > 0 else pal_value
    north = tile[row - 1, col] if row > 0 else pal_value
    north_west = tile[row - 1, col - 1] if (col > 0 and row > 0) else pal_value
    return (
        FIL_TAPS[taps, 0] * north_west + FIL_TAPS[taps, 1] * north + FIL_TAPS[taps, 2] * west + 16
    ) >> 5


@njit(cache=True)
def block_residual(tile, top, left, block_h, block_w, mode, pal_value, residual) -> int:
    """``residual[r * 4 + c]`` = value - prediction of ``mode`` for the block at (``top``,
    ``left``) (0 outside a partial block); returns the sum of absolute residuals."""
    for i in range(16):
        residual[i] = 0
    sad = 0
    for r in range(block_h):
        row = top + r
        for c in range(block_w):
            col = left + c
            pred = prediction(tile, row, col, top, left, mode, pal_value)
            diff = tile[row, col] - pred
            residual[r * 4 + c] = diff
            sad += diff if diff >= 0 else -diff
    return sad


@njit(cache=True)
def reconstruct(tile, top, left, block_h, block_w, mode, pal_value, residual, max_value) -> bool:
    """``tile`` = prediction + ``residual`` over the block, in raster order (each value is
    the neighbour of the next); False if a value falls outside ``[0, max_value]``."""
    for r in range(block_h):
        row = top + r
        for c in range(block_w):
            col = left + c
            pred = prediction(tile, row, col, top, left, mode, pal_value)
            value = pred + residual[r * 4 + c]
            if value < 0 or value > max_value:
                return False
            tile[row, col] = value
    return True


@njit(cache=True)
def scan_positions(scan_type, block_h, block_w, order) -> int:
    """The block's positions in scan order, into ``order``; returns how many (the 4x4
    scan restricted to the positions inside a partial block)."""
    m = 0
    for i in range(16):
        pos = SCANS[scan_type, i]
        if (pos >> 2) < block_h and (pos & 3) < block_w:
            order[m] = pos
            m += 1
    return m
