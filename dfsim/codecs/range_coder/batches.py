"""The range codec's batch kernels (numba): many packets, each with the table of its image,
encoded into one byte array with offsets, or decoded into rows, packets of the same table
together so that each table is expanded once.

Tables come flat (:mod:`dfsim.codecs.range_coder.side_info`): ``table_lo_bits``,
``table_scale``, ``table_start``, ``table_syms``, ``table_freqs``, ``table_ok``;
``packet_table[j]`` is packet j's table. A packet has ``n_values[j]`` values, its row of
``codes`` (or of ``out``) padded beyond them.
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.range_coder.rans import (
    BAD_SYMBOL,
    rans_decode,
    rans_encode,
    raw_pack,
    raw_unpack,
)
from dfsim.kernels import njit

BAD_TABLE = -2  # status: a table that does not parse


@njit(cache=True)
def load_dense(
    table, table_lo_bits, table_scale, table_start, table_syms, table_freqs, freq, cum, cost
):
    """Table ``table`` as dense arrays over the ``hi`` alphabet: ``freq``, ``cum`` (slot 0
    reserved when s > 0) and ``cost``, the bits of a value with that ``hi``. ``freq``
    must be zero where the table has no symbol."""
    c = 1 if table_scale[table] > 0 else 0  # slot 0 reserved
    for j in range(table_start[table], table_start[table + 1]):
        s = table_syms[j]
        freq[s] = table_freqs[j]
        cum[s] = c
        c += table_freqs[j]
        cost[s] = table_scale[table] - np.log2(table_freqs[j]) + table_lo_bits[table]


@njit(cache=True)
def clear_dense(table, table_start, table_syms, freq):
    """Zero ``freq`` where table ``table`` has symbols (undoes :func:`load_dense`)."""
    for j in range(table_start[table], table_start[table + 1]):
        freq[table_syms[j]] = 0


@njit(cache=True)
def load_slots(table, table_scale, table_start, table_syms, table_freqs, freq, slot_fb, slot_sym):
    """Table ``table`` as the decoder's slot arrays (``slot_fb`` = f | (slot - cum) << 32,
    0 for the reserved slot; ``slot_sym`` = hi) and dense ``freq`` (zero elsewhere)."""
    c = 0
    if table_scale[table] > 0:  # the reserved slot: f = 0 marks it
        slot_fb[0] = 0
        slot_sym[0] = 0
        c = 1
    for j in range(table_start[table], table_start[table + 1]):
        f = table_freqs[j]
        freq[table_syms[j]] = f
        for m in range(f):
            slot_fb[c + m] = f | (np.int64(m) << 32)
            slot_sym[c + m] = table_syms[j]
        c += f


@njit(cache=True)
def encode_batch(
    codes,
    n_values,
    packet_table,
    table_lo_bits,
    table_scale,
    table_start,
    table_syms,
    table_freqs,
    table_ok,
    bits,
):
    """Encode packets (rows of ``codes``): (data, offsets, ideal bits, status); status
    :data:`~dfsim.codecs.range_coder.rans.BAD_SYMBOL`: a value the model cannot code,
    :data:`BAD_TABLE`: a table that does not parse."""
    n_packets = codes.shape[0]
    alphabet = 1 << bits
    freq = np.zeros(alphabet, np.int64)
    cum = np.zeros(alphabet, np.int64)
    cost = np.zeros(alphabet, np.float64)
    order = np.argsort(packet_table, kind="mergesort")
    raw_len = (n_values * bits + 7) // 8
    start = np.zeros(n_packets + 1, np.int64)
    for j in range(n_packets):
        start[j + 1] = start[j] + raw_len[j]
    big = np.empty(start[n_packets], np.uint8)
    size = np.zeros(n_packets, np.int64)
    ideal = np.zeros(n_packets, np.float64)
    scratch = np.empty(raw_len.max() + 16 if n_packets else 16, np.uint8)
    cur = -1
    status = 0
    for o in range(n_packets):
        j = order[o]
        t = packet_table[j]
        if t != cur:
            if cur >= 0:
                clear_dense(cur, table_start, table_syms, freq)
            cur = t
            if not table_ok[t]:
                return np.empty(0, np.uint8), start, ideal, BAD_TABLE
            load_dense(
                t, table_lo_bits, table_scale, table_start, table_syms, table_freqs, freq, cum, cost
            )
        n = n_values[j]
        row = codes[j]
        d = table_lo_bits[t]
        acc = 0.0
        for i in range(n):
            hi = np.int64(row[i]) >> d
            if hi >= alphabet or freq[hi] == 0:
                return np.empty(0, np.uint8), start, ideal, BAD_SYMBOL
            acc += cost[hi]
        ideal[j] = acc
        length = rans_encode(row, n, d, table_scale[t], freq, cum, scratch, raw_len[j])
        if length < 0:
            return np.empty(0, np.uint8), start, ideal, BAD_SYMBOL
        if length >= raw_len[j]:
            size[j] = raw_pack(row, n, bits, big, start[j])
        else:
            first = len(scratch) - length
            for b in range(length):
                big[start[j] + b] = scratch[first + b]
            size[j] = length
    offsets = np.zeros(n_packets + 1, np.int64)
    for j in range(n_packets):
        offsets[j + 1] = offsets[j] + size[j]
    data = np.empty(offsets[n_packets], np.uint8)
    for j in range(n_packets):
        data[offsets[j] : offsets[j + 1]] = big[start[j] : start[j] + size[j]]
    return data, offsets, ideal, status


@njit(cache=True)
def decode_batch(
    data,
    offsets,
    which,
    n_values,
    packet_table,
    table_lo_bits,
    table_scale,
    table_start,
    table_syms,
    table_freqs,
    table_ok,
    bits,
    out,
):
    """Decode packets ``which`` (payload ``data[offsets[j]:offsets[j + 1]]``, table
    ``packet_table[q]``) into the rows of ``out``; ``ok`` per packet (its row zeroed when
    False)."""
    n_packets = len(which)
    ok = np.zeros(n_packets, np.bool_)
    max_scale = 0
    for q in range(n_packets):
        if table_ok[packet_table[q]]:
            max_scale = max(max_scale, table_scale[packet_table[q]])
    slot_fb = np.zeros(np.int64(1) << max_scale, np.int64)
    slot_sym = np.zeros(np.int64(1) << max_scale, np.int32)
    freq = np.zeros(1 << bits, np.int64)
    order = np.argsort(packet_table, kind="mergesort")
    n_data = len(data)
    cur = -1
    for o in range(n_packets):
        q = order[o]
        t = packet_table[q]
        if not table_ok[t]:
            continue
        if t != cur:
            if cur >= 0:
                clear_dense(cur, table_start, table_syms, freq)
            cur = t
            load_slots(
                t, table_scale, table_start, table_syms, table_freqs, freq, slot_fb, slot_sym
            )
        n = n_values[q]
        j = which[q]
        if n < 0 or n > out.shape[1] or j < 0 or j + 1 >= len(offsets):
            continue
        start, end = offsets[j], offsets[j + 1]
        if start < 0 or end < start or end > n_data:
            continue
        raw_len = (n * bits + 7) // 8
        row = out[q]
        if end - start == raw_len:
            good = raw_unpack(data, start, n, bits, table_lo_bits[t], freq, row)
        elif end - start < raw_len:
            good = rans_decode(
                data, start, end, n, table_lo_bits[t], table_scale[t], slot_fb, slot_sym, row
            )
        else:
            good = False
        if not good:
            row[:] = 0
        ok[q] = good
    return ok
