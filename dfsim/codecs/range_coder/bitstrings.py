"""Bit strings, MSB first, for the range codec's side information (numba): fixed-width
fields, Elias-gamma and Exp-Golomb codes, their lengths, writing and bounds-checked
reading.

A string lives in a uint8 array ``buf`` (zeroed before writing) and is addressed by bit
position ``bit_pos``; a reader returns the new position, or -1 once a read would pass
``end_bit`` (and keeps returning -1, so a parse can check once at the end).
"""

from __future__ import annotations

import numpy as np

from dfsim.kernels import njit


@njit(cache=True)
def bitlen(value):
    """The number of bits of ``value >= 0`` (0 for 0)."""
    n = 0
    while value > 0:
        value >>= 1
        n += 1
    return n


@njit(cache=True)
def gamma_bits(value):
    """Elias-gamma length of ``value >= 1``."""
    return 2 * bitlen(value) - 1


@njit(cache=True)
def exp_golomb_bits(value, order):
    """Exp-Golomb length of ``value >= 0`` at ``order``."""
    return gamma_bits((value >> order) + 1) + order


@njit(cache=True)
def put_bits(buf, bit_pos, value, nbits):
    """Write ``nbits`` bits of ``value`` MSB first at ``bit_pos``; the new bit position."""
    for i in range(nbits - 1, -1, -1):
        if (value >> i) & 1:
            buf[bit_pos >> 3] |= np.uint8(0x80 >> (bit_pos & 7))
        bit_pos += 1
    return bit_pos


@njit(cache=True)
def put_gamma(buf, bit_pos, value):
    """Elias-gamma of ``value >= 1``: ``bitlen(value) - 1`` zeros, then ``value``."""
    nbits = bitlen(value)
    bit_pos += nbits - 1  # zeros (buf starts zeroed)
    return put_bits(buf, bit_pos, value, nbits)


@njit(cache=True)
def put_exp_golomb(buf, bit_pos, value, order):
    """Exp-Golomb of ``value >= 0`` at ``order``: Elias-gamma of ``(value >> order) + 1``,
    then the low ``order`` bits of ``value``."""
    bit_pos = put_gamma(buf, bit_pos, (value >> order) + 1)
    return put_bits(buf, bit_pos, value & ((1 << order) - 1), order)


@njit(cache=True)
def get_bits(buf, bit_pos, nbits, end_bit):
    """(value, new bit_pos); bit_pos = -1 when the read would pass bit ``end_bit``."""
    if bit_pos < 0 or bit_pos + nbits > end_bit:
        return 0, -1
    value = 0
    for _ in range(nbits):
        value = (value << 1) | ((buf[bit_pos >> 3] >> (7 - (bit_pos & 7))) & 1)
        bit_pos += 1
    return value, bit_pos


@njit(cache=True)
def get_gamma(buf, bit_pos, end_bit):
    """Read an Elias-gamma code (at most 40 leading zeros): (value, new bit_pos)."""
    if bit_pos < 0:
        return 0, -1
    zeros = 0
    while True:
        if bit_pos >= end_bit or zeros > 40:
            return 0, -1
        if (buf[bit_pos >> 3] >> (7 - (bit_pos & 7))) & 1:
            break
        zeros += 1
        bit_pos += 1
    return get_bits(buf, bit_pos, zeros + 1, end_bit)


@njit(cache=True)
def get_exp_golomb(buf, bit_pos, order, end_bit):
    """Read an Exp-Golomb code at ``order``: (value, new bit_pos)."""
    q, bit_pos = get_gamma(buf, bit_pos, end_bit)
    low, bit_pos = get_bits(buf, bit_pos, order, end_bit)
    return ((q - 1) << order) | low, bit_pos
