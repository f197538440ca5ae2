"""The palette encoder's modelling (numba): per tile the palette index ``j*``, per 4x4
block the mode decision (the mode with the fewest estimated bits), the mode and SKIP bins
and the residual's bins, recorded with :mod:`dfsim.codecs.cabac` (``enc_bin`` /
``enc_bypass``), which adapts the contexts as it goes.

Coder state, as :mod:`dfsim.codecs.cabac` keeps it: ``enc`` (the number of bins recorded)
and ``record`` (the bins), the contexts' probabilities ``probs`` and counts ``counts``
(indices: :mod:`dfsim.codecs.palette.syntax`), and the Rice statistics ``rice_stats``.
The tile and block arguments are those of :mod:`dfsim.codecs.palette.blocks`.
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.cabac import bin_cost, enc_bin, enc_bits, enc_bypass
from dfsim.codecs.palette.blocks import (
    block_residual,
    most_probable_mode,
    rice_parameter,
    rice_update,
    scan_positions,
    skip_context,
)
from dfsim.codecs.palette.syntax import (
    CTX_GT1,
    CTX_GT2,
    CTX_MODE,
    CTX_MPM,
    CTX_PRE,
    CTX_SIG,
    CTX_SIGN,
    CTX_TU,
    MODE_SCAN,
    N_MODES,
    SCANS,
)
from dfsim.kernels import njit

# The encoder's price list, refreshed before each block's mode decision: the bits of
# every context-coded bin of a residual at the contexts' current state.
TAB_SIG = 0  # scan type * 6 + (significant left + top) * 2 + flag
TAB_GT1 = 18  # ctx * 2 + flag
TAB_GT2 = 26  # scan type * 2 + flag
TAB_SIGN = 32  # mode * 2 + sign
TAB_PRE = 42  # EGR prefix of q = 0 .. 3, then q >= 4 (its 4 context-coded ones)
TAB_SIZE = 47


# ------------------------------------------------------------------------ mode
@njit(cache=True)
def encode_mode(enc, record, probs, counts, mode, mpm) -> None:
    """The mpm flag, then for another mode its index among the other four in 2 bins."""
    if mode == mpm:
        enc_bin(enc, record, probs, counts, CTX_MPM, 1)
        return
    enc_bin(enc, record, probs, counts, CTX_MPM, 0)
    index = mode - 1 if mode > mpm else mode
    first = index >> 1
    enc_bin(enc, record, probs, counts, CTX_MODE, first)
    enc_bin(enc, record, probs, counts, CTX_MODE + 1 + first, index & 1)


@njit(cache=True)
def mode_cost(probs, mode, mpm) -> float:
    """Bits of :func:`encode_mode`'s bins at the contexts' current state."""
    if mode == mpm:
        return bin_cost(probs[CTX_MPM], 1)
    index = mode - 1 if mode > mpm else mode
    first = index >> 1
    return (
        bin_cost(probs[CTX_MPM], 0)
        + bin_cost(probs[CTX_MODE], first)
        + bin_cost(probs[CTX_MODE + 1 + first], index & 1)
    )


# ------------------------------------------------------------------------ bit estimates
@njit(cache=True)
def cost_table(probs, prices) -> None:
    """Bits of every context-coded bin of a residual, at the contexts' current state."""
    for i in range(9):
        prob = probs[CTX_SIG + i]
        prices[TAB_SIG + 2 * i] = bin_cost(prob, 0)
        prices[TAB_SIG + 2 * i + 1] = bin_cost(prob, 1)
    for i in range(4):
        prices[TAB_GT1 + 2 * i] = bin_cost(probs[CTX_GT1 + i], 0)
        prices[TAB_GT1 + 2 * i + 1] = bin_cost(probs[CTX_GT1 + i], 1)
    for i in range(3):
        prices[TAB_GT2 + 2 * i] = bin_cost(probs[CTX_GT2 + i], 0)
        prices[TAB_GT2 + 2 * i + 1] = bin_cost(probs[CTX_GT2 + i], 1)
    for i in range(5):
        prices[TAB_SIGN + 2 * i] = bin_cost(probs[CTX_SIGN + i], 0)
        prices[TAB_SIGN + 2 * i + 1] = bin_cost(probs[CTX_SIGN + i], 1)
    ones = 0.0
    for q in range(4):
        prices[TAB_PRE + q] = ones + bin_cost(probs[CTX_PRE + q], 0)
        ones += bin_cost(probs[CTX_PRE + q], 1)
    prices[TAB_PRE + 4] = ones


@njit(cache=True)
def residual_cost(prices, rice_param, residual, block_h, block_w, mode, limit) -> float:
    """Estimated bits of a non-skipped block's residual: the bins
    :func:`encode_residual` would code, priced by :func:`cost_table` (no adaptation
    inside the block, the Rice parameter held). Stops early once over ``limit``."""
    scan_type = MODE_SCAN[mode]
    n_valid = block_h * block_w
    sig0 = TAB_SIG + scan_type * 6
    gt2 = TAB_GT2 + scan_type * 2
    sign = TAB_SIGN + mode * 2
    cost = 0.0
    sigmask = 0
    seen = 0
    gt1_ctx = 1
    for i in range(16):
        pos = SCANS[scan_type, i]
        r = pos >> 2
        c = pos & 3
        if r >= block_h or c >= block_w:
            continue
        seen += 1
        value = residual[pos]
        if seen < n_valid or sigmask != 0:  # else: the last position, inferred significant
            neighbours = 0
            if c > 0:
                neighbours += (sigmask >> (pos - 1)) & 1
            if r > 0:
                neighbours += (sigmask >> (pos - 4)) & 1
            cost += prices[sig0 + neighbours * 2 + (1 if value != 0 else 0)]
        if value == 0:
            continue
        if cost > limit:
            return cost
        sigmask |= 1 << pos
        if value > 0:
            magnitude = value
            cost += prices[sign]
        else:
            magnitude = -value
            cost += prices[sign + 1]
        if magnitude == 1:
            cost += prices[TAB_GT1 + 2 * gt1_ctx]
            if 0 < gt1_ctx < 3:
                gt1_ctx += 1
            continue
        cost += prices[TAB_GT1 + 2 * gt1_ctx + 1]
        gt1_ctx = 0
        if magnitude == 2:
            cost += prices[gt2]
            continue
        cost += prices[gt2 + 1]
        # the remainder, priced as encode_remainder codes it
        remainder = magnitude - 3
        q = remainder >> rice_param
        if q < 4:
            cost += prices[TAB_PRE + q] + rice_param
        else:
            rest = remainder - (4 << rice_param)
            order = rice_param + 1
            while rest >= (1 << order):
                rest -= 1 << order
                order += 1
                cost += 1.0
            cost += prices[TAB_PRE + 4] + 1.0 + order
    return cost


# ------------------------------------------------------------------------ residual
@njit(cache=True)
def encode_remainder(enc, record, probs, counts, remainder, rice_param) -> None:
    """Exp-Golomb-Rice with parameter k = ``rice_param``: q = remainder >> k; q < 4: q
    ones, a zero (contexts), k bypass bins; else 4 ones, then remainder - (4 << k) in
    Exp-Golomb of order k + 1 (bypass)."""
    q = remainder >> rice_param
    if q < 4:
        for j in range(q):
            enc_bin(enc, record, probs, counts, CTX_PRE + j, 1)
        enc_bin(enc, record, probs, counts, CTX_PRE + q, 0)
        enc_bits(enc, record, remainder, rice_param)
    else:
        for j in range(4):
            enc_bin(enc, record, probs, counts, CTX_PRE + j, 1)
        rest = remainder - (4 << rice_param)
        order = rice_param + 1
        while rest >= (1 << order):
            enc_bypass(enc, record, 1)
            rest -= 1 << order
            order += 1
        enc_bypass(enc, record, 0)
        enc_bits(enc, record, rest, order)


@njit(cache=True)
def encode_residual(
    enc, record, probs, counts, rice_stats, residual, block_h, block_w, mode, order, sig
) -> None:
    """Code a non-skipped block's residual: significance map, greater-1 flags,
    greater-2 flags, signs, remainders, each pass in the mode's scan order (``order``
    and ``sig``: 16-value scratch)."""
    scan_type = MODE_SCAN[mode]
    m = scan_positions(scan_type, block_h, block_w, order)
    for i in range(16):
        sig[i] = 0
    seen = False
    for i in range(m):
        pos = order[i]
        flag = 1 if residual[pos] != 0 else 0
        if i == m - 1 and not seen:
            sig[pos] = 1  # inferred
            break
        neighbours = 0
        if (pos & 3) > 0:
            neighbours += sig[pos - 1]
        if (pos >> 2) > 0:
            neighbours += sig[pos - 4]
        enc_bin(enc, record, probs, counts, CTX_SIG + scan_type * 3 + neighbours, flag)
        sig[pos] = flag
        if flag:
            seen = True
    gt1_ctx = 1
    for i in range(m):
        magnitude = abs(residual[order[i]])
        if magnitude == 0:
            continue
        greater = 1 if magnitude > 1 else 0
        enc_bin(enc, record, probs, counts, CTX_GT1 + gt1_ctx, greater)
        if greater:
            gt1_ctx = 0
        elif 0 < gt1_ctx < 3:
            gt1_ctx += 1
    for i in range(m):
        magnitude = abs(residual[order[i]])
        if magnitude > 1:
            enc_bin(enc, record, probs, counts, CTX_GT2 + scan_type, 1 if magnitude > 2 else 0)
    for i in range(m):
        value = residual[order[i]]
        if value != 0:
            enc_bin(enc, record, probs, counts, CTX_SIGN + mode, 1 if value < 0 else 0)
    k = rice_parameter(rice_stats)
    for i in range(m):
        magnitude = abs(residual[order[i]])
        if magnitude <= 2:
            continue
        remainder = magnitude - 3
        encode_remainder(enc, record, probs, counts, remainder, k)
        rice_update(rice_stats, remainder)
        k = rice_parameter(rice_stats)


# ------------------------------------------------------------------------ tile
@njit(cache=True)
def choose_palette_index(tile, height, width, palette) -> int:
    """``j*``: the palette entry with the least sum of absolute differences from the
    tile (eq. 3), ties to the smaller index."""
    best = 0
    best_sum = -1
    for j in range(8):
        entry = palette[j]
        total = 0
        for row in range(height):
            for col in range(width):
                diff = tile[row, col] - entry
                total += diff if diff >= 0 else -diff
        if best_sum < 0 or total < best_sum:
            best_sum = total
            best = j
    return best


@njit(cache=True)
def encode_truncated_unary(enc, record, probs, counts, index) -> None:
    """Truncated unary code of ``index`` in 0..7 (Table II): ``index`` ones, then a zero
    if ``index < 7``; bin i with context ``CTX_TU + i``."""
    for i in range(7):
        if i < index:
            enc_bin(enc, record, probs, counts, CTX_TU + i, 1)
        else:
            enc_bin(enc, record, probs, counts, CTX_TU + i, 0)
            break


@njit(cache=True)
def choose_mode(
    probs,
    prices,
    rice_param,
    tile,
    top,
    left,
    block_h,
    block_w,
    pal_value,
    mpm,
    skip_ctx,
    candidates,
):
    """The mode with the fewest estimated bits for the block (mode bins + SKIP +
    residual), ties to the lower mode; (mode, skip). ``candidates``: 5 x 16 scratch, left
    holding each mode's residual."""
    best = 0
    best_cost = 1e300
    best_skip = 0
    cost_table(probs, prices)
    skip0 = bin_cost(probs[skip_ctx], 0)
    skip1 = bin_cost(probs[skip_ctx], 1)
    for i in range(N_MODES):
        # the mpm first: usually the cheapest, it bounds the others' estimates
        mode = mpm if i == 0 else (i - 1 if i - 1 < mpm else i)
        residual = candidates[mode * 16 : mode * 16 + 16]
        if block_residual(tile, top, left, block_h, block_w, mode, pal_value, residual) == 0:
            cost = mode_cost(probs, mode, mpm) + skip1
            skip = 1
        else:
            cost = mode_cost(probs, mode, mpm) + skip0
            cost += residual_cost(
                prices, rice_param, residual, block_h, block_w, mode, best_cost - cost
            )
            skip = 0
        if cost < best_cost or (cost == best_cost and mode < best):  # ties: the lower mode
            best_cost = cost
            best = mode
            best_skip = skip
    return best, best_skip


@njit(cache=True)
def encode_tile(
    enc, record, probs, counts, rice_stats, tile, height, width, palette, modes, skips, work
):
    """Code one tile (or packet) ``tile[:height, :width]`` with ``palette`` (its current
    order): ``j*``, then every block in raster order. ``modes`` and ``skips`` receive
    each block's mode and SKIP flag; ``work``: the scratch of
    :data:`~dfsim.codecs.palette.syntax.WORK_SIZE`. Returns ``j*``."""
    pal_index = choose_palette_index(tile, height, width, palette)
    encode_truncated_unary(enc, record, probs, counts, pal_index)
    pal_value = palette[pal_index]
    blocks_down = (height + 3) >> 2
    blocks_across = (width + 3) >> 2
    candidates = work[0:80]  # 5 modes x 16
    order = work[80:96]
    sig = work[96:112]
    prices = np.empty(TAB_SIZE, np.float64)
    for block_row in range(blocks_down):
        top = block_row * 4
        block_h = min(4, height - top)
        for block_col in range(blocks_across):
            left = block_col * 4
            block_w = min(4, width - left)
            mpm = most_probable_mode(modes, block_row, block_col, blocks_across)
            skip_ctx = skip_context(skips, block_row, block_col, blocks_across)
            k = rice_parameter(rice_stats)
            mode, skip = choose_mode(
                probs,
                prices,
                k,
                tile,
                top,
                left,
                block_h,
                block_w,
                pal_value,
                mpm,
                skip_ctx,
                candidates,
            )
            encode_mode(enc, record, probs, counts, mode, mpm)
            enc_bin(enc, record, probs, counts, skip_ctx, skip)
            if not skip:
                residual = candidates[mode * 16 : mode * 16 + 16]
                encode_residual(
                    enc,
                    record,
                    probs,
                    counts,
                    rice_stats,
                    residual,
                    block_h,
                    block_w,
                    mode,
                    order,
                    sig,
                )
            modes[block_row * blocks_across + block_col] = mode
            skips[block_row * blocks_across + block_col] = skip
    return pal_index
