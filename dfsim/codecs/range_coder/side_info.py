"""The range codec's side-information format (numba): a frequency table written as a bit
string, its exact length, and the parser that turns the strings of many images back
into flat tables, rejecting any that does not parse.

The format is specified in docs/reference/range-coder.md ("Side-information format").
A table is ``lo_bits`` (``d``: low bits coded uniformly), ``scale`` (``s``: the
frequencies sum to :func:`mass`) and the present ``hi`` symbols, ascending, with their
frequencies.

Flat tables, as the coders take them: ``table_lo_bits``, ``table_scale``, ``table_ok``
one per table; table ``t``'s symbols and frequencies are
``table_syms[table_start[t]:table_start[t + 1]]`` and the same slice of
``table_freqs``.
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.range_coder.bitstrings import (
    bitlen,
    exp_golomb_bits,
    gamma_bits,
    get_bits,
    get_exp_golomb,
    get_gamma,
    put_bits,
    put_exp_golomb,
    put_gamma,
)
from dfsim.kernels import njit

MAX_SCALE = 20  # side-information tables sum to 2^s - 1, s <= 20
HEADER_BITS = 10  # d (5 bits) + s (5 bits)
SIDE_KEY = "range_table"  # the side-information array's name


@njit(cache=True)
def mass(scale):
    """What a table's frequencies sum to: 2^s - 1 (slot 0 is reserved: a state that
    decodes to it is invalid), or 1 for the one-symbol table of s = 0."""
    return (np.int64(1) << scale) - 1 if scale > 0 else np.int64(1)


@njit(cache=True)
def next_order(freq):
    """The Exp-Golomb order of the frequency after one of ``freq``."""
    return max(0, bitlen(freq) - 2)


@njit(cache=True)
def table_bits(syms, freqs, scale):
    """Bits of a table in the side-information format."""
    total = HEADER_BITS
    prev_sym = -1
    order = max(0, scale - 2)
    for i in range(len(syms)):
        total += gamma_bits(syms[i] - prev_sym) + exp_golomb_bits(freqs[i] - 1, order)
        prev_sym = syms[i]
        order = next_order(freqs[i])
    return total


@njit(cache=True)
def write_table(buf, lo_bits, scale, syms, freqs):
    """Write a table into ``buf`` (zeroed); returns its length in bits."""
    bit_pos = put_bits(buf, 0, lo_bits, 5)
    bit_pos = put_bits(buf, bit_pos, scale, 5)
    prev_sym = -1
    order = max(0, scale - 2)
    for i in range(len(syms)):
        bit_pos = put_gamma(buf, bit_pos, syms[i] - prev_sym)
        bit_pos = put_exp_golomb(buf, bit_pos, freqs[i] - 1, order)
        prev_sym = syms[i]
        order = next_order(freqs[i])
    return bit_pos


@njit(cache=True)
def parse_tables(raw, rows, bits):
    """Parse the side-information rows ``rows`` of ``raw`` (N x B bytes) into flat
    tables: (lo_bits, scale, start, syms, freqs, ok) per table; a table that does not
    parse has ``ok`` False and no symbols."""
    n_tables = len(rows)
    table_lo_bits = np.zeros(n_tables, np.int64)
    table_scale = np.zeros(n_tables, np.int64)
    table_ok = np.zeros(n_tables, np.bool_)
    table_start = np.zeros(n_tables + 1, np.int64)
    syms_list = []
    freqs_list = []
    end_bit = raw.shape[1] * 8
    for i in range(n_tables):
        buf = raw[rows[i]]
        lo_bits, bit_pos = get_bits(buf, 0, 5, end_bit)
        scale, bit_pos = get_bits(buf, bit_pos, 5, end_bit)
        ok = bit_pos >= 0 and lo_bits <= bits and scale <= MAX_SCALE
        table_mass = mass(scale) if ok else 0
        n_hi = np.int64(1) << (bits - lo_bits) if ok else 0
        syms = np.empty(min(table_mass, n_hi) if ok else 0, np.int64)
        freqs = np.empty(len(syms), np.int64)
        count = 0
        total = 0
        prev_sym = -1
        order = max(0, scale - 2)
        while ok and total < table_mass:
            gap, bit_pos = get_gamma(buf, bit_pos, end_bit)
            value, bit_pos = get_exp_golomb(buf, bit_pos, order, end_bit)
            sym = prev_sym + gap
            freq = value + 1
            if bit_pos < 0 or sym >= n_hi or total + freq > table_mass or count >= len(syms):
                ok = False
                break
            syms[count], freqs[count] = sym, freq
            count += 1
            total += freq
            prev_sym = sym
            order = next_order(freq)
        if not ok:
            count = 0
        table_lo_bits[i], table_scale[i], table_ok[i] = lo_bits, scale, ok
        syms_list.append(syms[:count])
        freqs_list.append(freqs[:count])
        table_start[i + 1] = table_start[i] + count
    table_syms = np.empty(table_start[n_tables], np.int64)
    table_freqs = np.empty(table_start[n_tables], np.int64)
    for i in range(n_tables):
        table_syms[table_start[i] : table_start[i + 1]] = syms_list[i]
        table_freqs[table_start[i] : table_start[i + 1]] = freqs_list[i]
    return table_lo_bits, table_scale, table_start, table_syms, table_freqs, table_ok


def worst_table_bits(bits: int) -> int:
    """An upper bound on a table's bits for ``bits``-bit codes (every symbol present,
    largest gap and frequency codes)."""
    return HEADER_BITS + (1 << bits) * (2 * bits + 1 + 2 * MAX_SCALE + 3)
