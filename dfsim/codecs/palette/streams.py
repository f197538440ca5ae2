"""The palette codec's streams (numba): packets coded one by one, each decodable on its own,
and the whole tensor coded as one stream of tiles whose palette order adapts; the hash
that ends a stream when check bits are asked for.

``init_prob`` is the contexts' initial probabilities
(:data:`~dfsim.codecs.palette.syntax.INIT_PROB`); ``check_bits`` the number of hash bits
(0: none).
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.cabac import (
    D_SIZE,
    E_NBINS,
    E_SIZE,
    dec_bits,
    dec_finish,
    dec_init,
    enc_bits,
    enc_init,
    enc_run,
    reset_contexts,
)
from dfsim.codecs.palette.blocks import rice_init
from dfsim.codecs.palette.decoder import decode_tile
from dfsim.codecs.palette.encoder import encode_tile
from dfsim.codecs.palette.syntax import (
    BINS_EXTRA,
    BINS_PER_VALUE,
    N_CTX,
    PALETTE_SIZE,
    WORK_SIZE,
)
from dfsim.kernels import njit


@njit(cache=True)
def values_hash(tile, height, width, seed) -> int:
    """32-bit hash of the values ``tile[:height, :width]`` in raster order (FNV-1a steps
    from ``seed``, then murmur3's finaliser)."""
    value = (seed ^ 0x811C9DC5) & 0xFFFFFFFF
    for row in range(height):
        for col in range(width):
            value = ((value ^ tile[row, col]) * 0x01000193) & 0xFFFFFFFF
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & 0xFFFFFFFF
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & 0xFFFFFFFF
    value ^= value >> 16
    return value


# ------------------------------------------------------------------------ packets
@njit(cache=True)
def encode_packet_streams(packets, nrows, palettes, bits, check_bits, init_prob):
    """Code each packet ``packets[j, :nrows[j]]`` with palette ``palettes[j]``, the coder
    and every adaptive state afresh: (payloads concatenated, offsets P + 1, ideal bits P)."""
    n_packets, max_rows, width = packets.shape
    offsets = np.zeros(n_packets + 1, np.int64)
    ideal = np.zeros(n_packets, np.float64)
    n_bins = BINS_PER_VALUE * max_rows * width + BINS_EXTRA
    record = np.zeros(n_bins, np.int64)
    scratch = np.zeros((n_bins * 11) // 8 + 16, np.uint8)
    out = np.zeros(max(1024, n_packets * max_rows * width // 2), np.uint8)
    tile = np.zeros((max(max_rows, 1), max(width, 1)), np.int64)
    enc = np.zeros(E_SIZE, np.int64)
    probs = np.zeros(N_CTX, np.int64)
    counts = np.zeros(N_CTX, np.int64)
    rice_stats = np.zeros(2, np.int64)
    n_blocks = ((max_rows + 3) >> 2) * ((width + 3) >> 2)
    modes = np.zeros(max(n_blocks, 1), np.int64)
    skips = np.zeros(max(n_blocks, 1), np.int64)
    work = np.zeros(WORK_SIZE, np.int64)
    total = 0
    for j in range(n_packets):
        height = nrows[j]
        for row in range(height):
            for col in range(width):
                tile[row, col] = packets[j, row, col]
        enc_init(enc)
        reset_contexts(probs, counts, init_prob)
        rice_init(rice_stats, bits)
        if height > 0 and width > 0:
            encode_tile(
                enc,
                record,
                probs,
                counts,
                rice_stats,
                tile,
                height,
                width,
                palettes[j],
                modes,
                skips,
                work,
            )
        if check_bits > 0:
            enc_bits(enc, record, values_hash(tile, height, width, 0), check_bits)
        size, ideal[j] = enc_run(record, enc[E_NBINS], scratch)
        if total + size > len(out):
            bigger = np.zeros(max(2 * len(out), total + size), np.uint8)
            bigger[:total] = out[:total]
            out = bigger
        out[total : total + size] = scratch[:size]
        total += size
        offsets[j + 1] = total
    return out[:total].copy(), offsets, ideal


@njit(cache=True)
def decode_packet_streams(data, starts, ends, nrows, width, palettes, bits, check_bits, init_prob):
    """Decode payload j, ``data[starts[j]:ends[j]]``, into ``nrows[j]`` rows of ``width``
    values with palette ``palettes[j]``: (codes P x max(nrows) x width uint16, ok P);
    a packet that does not decode is all zeros, its ``ok`` False."""
    n_packets = len(starts)
    max_rows = 0
    for j in range(n_packets):
        max_rows = max(max_rows, nrows[j])
    out = np.zeros((n_packets, max_rows, width), np.uint16)
    ok = np.ones(n_packets, np.bool_)
    tile = np.zeros((max(max_rows, 1), max(width, 1)), np.int64)
    dec = np.zeros(D_SIZE, np.int64)
    probs = np.zeros(N_CTX, np.int64)
    counts = np.zeros(N_CTX, np.int64)
    rice_stats = np.zeros(2, np.int64)
    n_blocks = ((max_rows + 3) >> 2) * ((width + 3) >> 2)
    modes = np.zeros(max(n_blocks, 1), np.int64)
    skips = np.zeros(max(n_blocks, 1), np.int64)
    work = np.zeros(WORK_SIZE, np.int64)
    max_value = (1 << bits) - 1
    for j in range(n_packets):
        height = nrows[j]
        reset_contexts(probs, counts, init_prob)
        rice_init(rice_stats, bits)
        good = dec_init(dec, data, starts[j], ends[j])
        if good and height > 0 and width > 0:
            good = decode_tile(
                dec,
                data,
                probs,
                counts,
                rice_stats,
                tile,
                height,
                width,
                palettes[j],
                modes,
                skips,
                work,
                max_value,
            )
        if good and check_bits > 0:
            mask = (1 << check_bits) - 1
            good = dec_bits(dec, data, check_bits) == (values_hash(tile, height, width, 0) & mask)
        if good:
            good = dec_finish(dec, data)
        if good:
            for row in range(height):
                for col in range(width):
                    out[j, row, col] = tile[row, col]
        else:
            ok[j] = False
    return out, ok


# ------------------------------------------------------------------------ whole tensor
@njit(cache=True)
def stable_sort_by_count(palette, pal_counts) -> None:
    """Insertion sort of ``palette`` by ``pal_counts`` descending, ties keeping their
    order (``pal_counts`` sorted along)."""
    for i in range(1, 8):
        entry = palette[i]
        count = pal_counts[i]
        j = i - 1
        while j >= 0 and pal_counts[j] < count:
            palette[j + 1] = palette[j]
            pal_counts[j + 1] = pal_counts[j]
            j -= 1
        palette[j + 1] = entry
        pal_counts[j + 1] = count


@njit(cache=True)
def count_palette_values(tile, height, width, palette, pal_counts) -> None:
    """Add to ``pal_counts[j]`` the exact occurrences of ``palette[j]`` in the tile."""
    for row in range(height):
        for col in range(width):
            value = tile[row, col]
            for j in range(8):
                if palette[j] == value:
                    pal_counts[j] += 1


@njit(cache=True)
def encode_tensor_stream(codes, first_palette, bits, check_bits, init_prob):
    """Code the C x H x W ``codes`` as one stream: the palette (in the order
    ``first_palette``, ``bits`` bypass bins each), then the tiles (channels) in order,
    the palette re-sorted before each by the occurrences so far. (stream, ideal bits)."""
    channels, height, width = codes.shape
    n_bins = (
        BINS_PER_VALUE * channels * height * width
        + BINS_EXTRA * channels
        + PALETTE_SIZE * bits
        + 16
    )
    record = np.zeros(n_bins, np.int64)
    enc = np.zeros(E_SIZE, np.int64)
    probs = np.zeros(N_CTX, np.int64)
    counts = np.zeros(N_CTX, np.int64)
    rice_stats = np.zeros(2, np.int64)
    n_blocks = ((height + 3) >> 2) * ((width + 3) >> 2)
    modes = np.zeros(max(n_blocks, 1), np.int64)
    skips = np.zeros(max(n_blocks, 1), np.int64)
    work = np.zeros(WORK_SIZE, np.int64)
    tile = np.zeros((height, width), np.int64)
    enc_init(enc)
    reset_contexts(probs, counts, init_prob)
    rice_init(rice_stats, bits)
    palette = first_palette.copy()
    for i in range(PALETTE_SIZE):
        enc_bits(enc, record, palette[i], bits)
    pal_counts = np.zeros(PALETTE_SIZE, np.int64)
    check = 0
    for channel in range(channels):
        if channel > 0:
            stable_sort_by_count(palette, pal_counts)
        for row in range(height):
            for col in range(width):
                tile[row, col] = codes[channel, row, col]
        encode_tile(
            enc, record, probs, counts, rice_stats, tile, height, width, palette, modes, skips, work
        )
        count_palette_values(tile, height, width, palette, pal_counts)
        check = values_hash(tile, height, width, check)
    if check_bits > 0:
        enc_bits(enc, record, check, check_bits)
    buf = np.zeros((enc[E_NBINS] * 11) // 8 + 16, np.uint8)
    size, ideal = enc_run(record, enc[E_NBINS], buf)
    return buf[:size].copy(), ideal


@njit(cache=True)
def decode_tensor_stream(data, channels, height, width, bits, check_bits, init_prob):
    """Inverse of :func:`encode_tensor_stream`: (codes C x H x W uint16, ok)."""
    out = np.zeros((channels, height, width), np.uint16)
    dec = np.zeros(D_SIZE, np.int64)
    probs = np.zeros(N_CTX, np.int64)
    counts = np.zeros(N_CTX, np.int64)
    rice_stats = np.zeros(2, np.int64)
    n_blocks = ((height + 3) >> 2) * ((width + 3) >> 2)
    modes = np.zeros(max(n_blocks, 1), np.int64)
    skips = np.zeros(max(n_blocks, 1), np.int64)
    work = np.zeros(WORK_SIZE, np.int64)
    tile = np.zeros((height, width), np.int64)
    max_value = (1 << bits) - 1
    if not dec_init(dec, data, 0, len(data)):
        return out, False
    reset_contexts(probs, counts, init_prob)
    rice_init(rice_stats, bits)
    palette = np.zeros(PALETTE_SIZE, np.int64)
    for i in range(PALETTE_SIZE):
        palette[i] = dec_bits(dec, data, bits)
    pal_counts = np.zeros(PALETTE_SIZE, np.int64)
    check = 0
    for channel in range(channels):
        if channel > 0:
            stable_sort_by_count(palette, pal_counts)
        if not decode_tile(
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
        ):
            return out, False
        count_palette_values(tile, height, width, palette, pal_counts)
        check = values_hash(tile, height, width, check)
        for row in range(height):
            for col in range(width):
                out[channel, row, col] = tile[row, col]
    if check_bits > 0 and dec_bits(dec, data, check_bits) != (check & ((1 << check_bits) - 1)):
        return out, False
    return out, dec_finish(dec, data)
