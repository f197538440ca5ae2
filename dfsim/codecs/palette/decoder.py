"""The palette decoder (numba): the inverse of :mod:`dfsim.codecs.palette.encoder`, bin for
bin, with every value checked against its range.

Decoder state, as :mod:`dfsim.codecs.cabac` keeps it: ``dec`` (position, range, code) and
the payload bytes ``data``; the contexts ``probs`` / ``counts`` and ``rice_stats`` as in
the encoder. A function returns False (or -1) as soon as the payload cannot be a stream
the encoder wrote.
"""

from __future__ import annotations

from dfsim.codecs.cabac import dec_bin, dec_bits, dec_bypass
from dfsim.codecs.palette.blocks import (
    most_probable_mode,
    reconstruct,
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
    EG_MAX_PREFIX,
    MODE_SCAN,
)
from dfsim.kernels import njit


@njit(cache=True)
def decode_truncated_unary(dec, data, probs, counts) -> int:
    """Inverse of :func:`~dfsim.codecs.palette.encoder.encode_truncated_unary`."""
    index = 0
    while index < 7 and dec_bin(dec, data, probs, counts, CTX_TU + index):
        index += 1
    return index


@njit(cache=True)
def decode_mode(dec, data, probs, counts, mpm) -> int:
    """Inverse of :func:`~dfsim.codecs.palette.encoder.encode_mode`."""
    if dec_bin(dec, data, probs, counts, CTX_MPM):
        return mpm
    first = dec_bin(dec, data, probs, counts, CTX_MODE)
    index = first * 2 + dec_bin(dec, data, probs, counts, CTX_MODE + 1 + first)
    return index + 1 if index >= mpm else index


@njit(cache=True)
def decode_remainder(dec, data, probs, counts, rice_param, max_remainder) -> int:
    """Inverse of :func:`~dfsim.codecs.palette.encoder.encode_remainder`; -1 if the
    prefix is overlong or the remainder exceeds ``max_remainder``."""
    q = 0
    while q < 4 and dec_bin(dec, data, probs, counts, CTX_PRE + q):
        q += 1
    if q < 4:
        remainder = (q << rice_param) | dec_bits(dec, data, rice_param)
    else:
        remainder = 4 << rice_param
        order = rice_param + 1
        prefix = 0
        while dec_bypass(dec, data):
            remainder += 1 << order
            order += 1
            prefix += 1
            if prefix > EG_MAX_PREFIX:
                return -1
        remainder += dec_bits(dec, data, order)
    if remainder > max_remainder:
        return -1
    return remainder


@njit(cache=True)
def decode_significance(dec, data, probs, counts, scan_type, order, n_positions, sig) -> None:
    """The significance map of the block's positions ``order[:n_positions]`` into
    ``sig`` (the last one inferred when no earlier one is significant)."""
    seen = False
    for i in range(n_positions):
        pos = order[i]
        if i == n_positions - 1 and not seen:
            sig[pos] = 1
            break
        neighbours = 0
        if (pos & 3) > 0:
            neighbours += sig[pos - 1]
        if (pos >> 2) > 0:
            neighbours += sig[pos - 4]
        flag = dec_bin(dec, data, probs, counts, CTX_SIG + scan_type * 3 + neighbours)
        sig[pos] = flag
        if flag:
            seen = True


@njit(cache=True)
def decode_residual(
    dec,
    data,
    probs,
    counts,
    rice_stats,
    residual,
    block_h,
    block_w,
    mode,
    order,
    sig,
    max_remainder,
) -> bool:
    """Inverse of :func:`~dfsim.codecs.palette.encoder.encode_residual`, into
    ``residual`` (raster positions); False on an invalid remainder."""
    scan_type = MODE_SCAN[mode]
    m = scan_positions(scan_type, block_h, block_w, order)
    for i in range(16):
        sig[i] = 0
        residual[i] = 0
    decode_significance(dec, data, probs, counts, scan_type, order, m, sig)
    gt1_ctx = 1
    for i in range(m):
        pos = order[i]
        if sig[pos]:
            greater = dec_bin(dec, data, probs, counts, CTX_GT1 + gt1_ctx)
            residual[pos] = 1 + greater
            if greater:
                gt1_ctx = 0
            elif 0 < gt1_ctx < 3:
                gt1_ctx += 1
    for i in range(m):
        pos = order[i]
        if residual[pos] > 1:
            residual[pos] += dec_bin(dec, data, probs, counts, CTX_GT2 + scan_type)
    for i in range(m):
        pos = order[i]
        if residual[pos] != 0:
            if dec_bin(dec, data, probs, counts, CTX_SIGN + mode):
                residual[pos] = -residual[pos]
    k = rice_parameter(rice_stats)
    for i in range(m):
        pos = order[i]
        value = residual[pos]
        if value != 3 and value != -3:
            continue
        remainder = decode_remainder(dec, data, probs, counts, k, max_remainder)
        if remainder < 0:
            return False
        residual[pos] = value + remainder if value > 0 else value - remainder
        rice_update(rice_stats, remainder)
        k = rice_parameter(rice_stats)
    return True


@njit(cache=True)
def decode_tile(
    dec,
    data,
    probs,
    counts,
    rice_stats,
    tile,
    height,
    width,
    palette,
    modes,
    skips,
    work,
    max_value,
) -> bool:
    """Inverse of :func:`~dfsim.codecs.palette.encoder.encode_tile`, into
    ``tile[:height, :width]``; False when the payload cannot be decoded or a value falls
    outside ``[0, max_value]``."""
    pal_value = palette[decode_truncated_unary(dec, data, probs, counts)]
    blocks_down = (height + 3) >> 2
    blocks_across = (width + 3) >> 2
    residual = work[0:16]
    order = work[80:96]
    sig = work[96:112]
    max_remainder = max_value - 3
    for block_row in range(blocks_down):
        top = block_row * 4
        block_h = min(4, height - top)
        for block_col in range(blocks_across):
            left = block_col * 4
            block_w = min(4, width - left)
            mpm = most_probable_mode(modes, block_row, block_col, blocks_across)
            mode = decode_mode(dec, data, probs, counts, mpm)
            skip_ctx = skip_context(skips, block_row, block_col, blocks_across)
            skip = dec_bin(dec, data, probs, counts, skip_ctx)
            if skip:
                for i in range(16):
                    residual[i] = 0
            elif not decode_residual(
                dec,
                data,
                probs,
                counts,
                rice_stats,
                residual,
                block_h,
                block_w,
                mode,
                order,
                sig,
                max_remainder,
            ):
                return False
            if not reconstruct(
                tile, top, left, block_h, block_w, mode, pal_value, residual, max_value
            ):
                return False
            modes[block_row * blocks_across + block_col] = mode
            skips[block_row * blocks_across + block_col] = skip
    return True
