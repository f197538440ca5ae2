"""Kernels that show the palette coder's intermediate results, for the tests: the bins and
block decisions of one packet, the bins of one remainder, a residual coding round trip.
The codec never calls them.
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.cabac import (
    D_SIZE,
    E_NBINS,
    E_SIZE,
    HALF,
    dec_finish,
    dec_init,
    enc_init,
    enc_run,
    reset_contexts,
)
from dfsim.codecs.palette.blocks import rice_init
from dfsim.codecs.palette.decoder import decode_residual
from dfsim.codecs.palette.encoder import encode_remainder, encode_residual, encode_tile
from dfsim.codecs.palette.syntax import BINS_EXTRA, BINS_PER_VALUE, N_CTX, WORK_SIZE
from dfsim.kernels import njit


@njit(cache=True)
def trace_packet(codes, palette, bits, init_prob):
    """Encode one packet (rows x width ``codes``) and return its bins (0/1, in coding
    order), each block's mode and SKIP flag (blocks down x across) and ``j*``."""
    height, width = codes.shape
    tile = np.zeros((height, width), np.int64)
    for row in range(height):
        for col in range(width):
            tile[row, col] = codes[row, col]
    record = np.zeros(BINS_PER_VALUE * height * width + BINS_EXTRA, np.int64)
    enc = np.zeros(E_SIZE, np.int64)
    probs = np.zeros(N_CTX, np.int64)
    counts = np.zeros(N_CTX, np.int64)
    rice_stats = np.zeros(2, np.int64)
    reset_contexts(probs, counts, init_prob)
    rice_init(rice_stats, bits)
    enc_init(enc)
    blocks_down = (height + 3) >> 2
    blocks_across = (width + 3) >> 2
    modes = np.zeros(blocks_down * blocks_across, np.int64)
    skips = np.zeros(blocks_down * blocks_across, np.int64)
    work = np.zeros(WORK_SIZE, np.int64)
    pal_index = encode_tile(
        enc, record, probs, counts, rice_stats, tile, height, width, palette, modes, skips, work
    )
    bins = record[: enc[E_NBINS]] & 1
    blocks = (blocks_down, blocks_across)
    return bins, modes.reshape(blocks), skips.reshape(blocks), pal_index


@njit(cache=True)
def remainder_bins(remainder, rice_param):
    """The bins of one Exp-Golomb-Rice remainder with Rice parameter ``rice_param``."""
    record = np.zeros(64, np.int64)
    enc = np.zeros(E_SIZE, np.int64)
    probs = np.full(N_CTX, HALF, np.int64)
    counts = np.zeros(N_CTX, np.int64)
    encode_remainder(enc, record, probs, counts, remainder, rice_param)
    return record[: enc[E_NBINS]] & 1


@njit(cache=True)
def residual_round_trip(blocks, block_h, block_w, modes, bits, init_prob):
    """Code residual blocks (n x 16, raster positions) of size block_h x block_w with
    ``modes``, SKIP-less, one stream, then decode them: (decoded n x 16, ok, ideal bits,
    bytes)."""
    n_blocks = len(blocks)
    record = np.zeros(BINS_PER_VALUE * 16 * n_blocks + BINS_EXTRA, np.int64)
    enc = np.zeros(E_SIZE, np.int64)
    probs = np.zeros(N_CTX, np.int64)
    counts = np.zeros(N_CTX, np.int64)
    rice_stats = np.zeros(2, np.int64)
    work = np.zeros(WORK_SIZE, np.int64)
    order, sig = work[80:96], work[96:112]
    reset_contexts(probs, counts, init_prob)
    rice_init(rice_stats, bits)
    enc_init(enc)
    for i in range(n_blocks):
        encode_residual(
            enc,
            record,
            probs,
            counts,
            rice_stats,
            blocks[i],
            block_h,
            block_w,
            modes[i],
            order,
            sig,
        )
    buf = np.zeros((enc[E_NBINS] * 11) // 8 + 16, np.uint8)
    size, ideal = enc_run(record, enc[E_NBINS], buf)
    data = buf[:size].copy()
    out = np.zeros((n_blocks, 16), np.int64)
    dec = np.zeros(D_SIZE, np.int64)
    reset_contexts(probs, counts, init_prob)
    rice_init(rice_stats, bits)
    ok = dec_init(dec, data, 0, size)
    max_remainder = (1 << bits) - 4
    for i in range(n_blocks):
        if ok:
            ok = decode_residual(
                dec,
                data,
                probs,
                counts,
                rice_stats,
                out[i],
                block_h,
                block_w,
                modes[i],
                order,
                sig,
                max_remainder,
            )
    if ok:
        ok = dec_finish(dec, data)
    return out, ok, ideal, size
