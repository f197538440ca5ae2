"""The range codec's probability models: frequency tables quantized from counts, the
per-image table chosen for the fewest bits in all (``model: tensor``), and the one table
learned from training codes (``model: calibrated``).

How the tables are chosen is specified in docs/reference/range-coder.md ("The models").
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.range_coder.bitstrings import bitlen
from dfsim.codecs.range_coder.side_info import (
    HEADER_BITS,
    MAX_SCALE,
    mass,
    table_bits,
    write_table,
)
from dfsim.kernels import njit

MAX_CALIBRATED_SCALE = 22


@njit(cache=True)
def quantize_freqs(counts, order, total, scale):
    """Frequencies summing to ``mass(scale)`` from ``counts`` (> 0; ``order``: by count,
    largest first): max(1, round(count * mass / total)), the excess or deficit taken from
    / given to the most frequent symbols. Needs a mass >= len(counts)."""
    m = mass(scale)
    k = len(counts)
    if m < k:
        raise ValueError("frequency table: fewer slots than symbols")
    f = np.empty(k, np.int64)
    s = 0
    for i in range(k):
        v = (2 * counts[i] * m + total) // (2 * total)
        f[i] = max(1, v)
        s += f[i]
    diff = m - s
    while diff > 0:  # rounding down: at most k / 2 short
        for i in range(k):
            if diff == 0:
                break
            f[order[i]] += 1
            diff -= 1
    while diff < 0:  # rounding up and forced ones: take proportionally from the largest
        spare = s - k  # sum of (f - 1)
        for i in range(k):
            if diff == 0:
                break
            j = order[i]
            if f[j] > 1:
                take = min(f[j] - 1, max(1, (-diff * (f[j] - 1)) // max(spare, 1)), -diff)
                f[j] -= take
                diff += take
        s = m - diff
    return f


# ------------------------------------------------------------------------ model: tensor
@njit(cache=True)
def best_table(hist, n_values, bits, budget, packets):
    """Choose (d, s) and the table for one image's histogram ``hist`` (over 2^bits
    symbols, ``n_values`` values in ``packets`` packets): least table bits + ideal value
    bits + the coder's start-up cost (~s bits a packet), table <= ``budget``. For each d
    from 0 (the histogram coarsened to ``hi = v >> d``), a local search over s; stops
    once coarser d have done worse twice. Returns (d, s, syms, freqs, table bits)."""
    best_total = np.inf
    best_syms = np.zeros(1, np.int64)  # fallback: the uniform table (one hi symbol)
    best_f = np.ones(1, np.int64)
    best_d, best_s, best_tb = bits, 0, table_bits(best_syms, best_f, 0)
    h = hist.astype(np.int64)
    rises = 0
    prev_total = np.inf
    for d in range(bits + 1):
        if d > 0:  # coarsen: hi = v >> d
            half = len(h) // 2
            h2 = np.empty(half, np.int64)
            for i in range(half):
                h2[i] = h[2 * i] + h[2 * i + 1]
            h = h2
        syms = np.flatnonzero(h)
        k = len(syms)
        counts = h[syms]
        if HEADER_BITS + 2 * k > budget:
            continue  # no table this fine can fit: coarser
        order = np.argsort(-counts, kind="mergesort")
        if k == 1:  # one symbol: s = 0 (no bits per value, the smallest table)
            f = np.ones(1, np.int64)
            tb = table_bits(syms, f, 0)
            if tb + n_values * d < best_total:  # (s = 0: no start-up cost)
                best_total, best_d, best_s, best_tb = tb + n_values * d, d, 0, tb
                best_syms, best_f = syms.copy(), f
            break  # coarser tables are the same single symbol at more bits
        s_lo = bitlen(k)  # 2^s - 1 >= k
        if s_lo > MAX_SCALE:
            continue
        d_best = np.inf
        # local search over s from a guess, stopping after two increases
        s0 = min(MAX_SCALE, max(s_lo, bitlen(n_values) - 2))
        for direction in (1, -1):
            s = s0 if direction == 1 else s0 - 1
            up = 0
            last = np.inf
            while s_lo <= s <= MAX_SCALE and up < 2:
                f = quantize_freqs(counts, order, n_values, s)
                tb = table_bits(syms, f, s)
                content = 0.0
                for i in range(k):
                    content += counts[i] * (s - np.log2(f[i]))
                total = tb + content + n_values * d + packets * s
                if tb <= budget and total < best_total:
                    best_total, best_d, best_s, best_tb = total, d, s, tb
                    best_syms, best_f = syms.copy(), f
                if tb <= budget:
                    d_best = min(d_best, total)
                up = up + 1 if total >= last else 0
                last = total
                s += direction
        if d_best == np.inf:
            continue  # nothing this fine fits the budget
        if d_best >= prev_total:
            rises += 1
            if rises >= 2:
                break
        else:
            rises = 0
        prev_total = min(prev_total, d_best)
    return best_d, best_s, best_syms, best_f, best_tb


@njit(cache=True)
def tensor_tables(codes2d, bits, budget, packets):
    """Per image (rows of ``codes2d``): the chosen table written as a bit string.
    Returns (bytes N x B, bits N)."""
    n_images = codes2d.shape[0]
    hist = np.zeros(1 << bits, np.int64)
    bit_lengths = np.zeros(n_images, np.int64)
    lo_bits = np.zeros(n_images, np.int64)
    scales = np.zeros(n_images, np.int64)
    all_syms = []
    all_freqs = []
    for i in range(n_images):
        hist[:] = 0
        row = codes2d[i]
        for j in range(len(row)):
            hist[row[j]] += 1
        d, s, syms, freqs, tb = best_table(hist, len(row), bits, budget, packets)
        lo_bits[i], scales[i], bit_lengths[i] = d, s, tb
        all_syms.append(syms)
        all_freqs.append(freqs)
    nbytes = (bit_lengths.max() + 7) // 8 if n_images else 0
    out = np.zeros((n_images, nbytes), np.uint8)
    for i in range(n_images):
        write_table(out[i], lo_bits[i], scales[i], all_syms[i], all_freqs[i])
    return out, bit_lengths


# ------------------------------------------------------------------------ model: calibrated
def calibrated_scale(counts: np.ndarray, bits: int, n_images: int, packets: int) -> int:
    """The precision ``s`` in ``(bits, 22]`` of the calibrated table from smoothed
    training ``counts`` that codes the ``n_images`` training images in the fewest bits,
    the coder's start-up cost (``s`` bits in each of ``packets`` packets per image)
    counted."""
    best, best_s = np.inf, MAX_CALIBRATED_SCALE
    order = np.argsort(-counts, kind="mergesort")
    for scale in range(bits + 1, MAX_CALIBRATED_SCALE + 1):
        f = quantize_freqs(counts, order, int(counts.sum()), scale)
        per_image = float(np.sum(counts * (scale - np.log2(f)))) / n_images
        if per_image + packets * scale < best:
            best, best_s = per_image + packets * scale, scale
    return best_s


def calibrated_table(counts: np.ndarray, scale: int) -> tuple:
    """The calibrated model as one flat table (``d = 0``, every symbol of the alphabet
    present) from its smoothed counts and precision."""
    order = np.argsort(-counts, kind="mergesort")
    f = quantize_freqs(counts, order, int(counts.sum()), scale)
    syms = np.arange(len(counts), dtype=np.int64)
    return (
        np.zeros(1, np.int64),
        np.full(1, scale, np.int64),
        np.array([0, len(syms)], np.int64),
        syms,
        f.astype(np.int64),
        np.ones(1, np.bool_),
    )
