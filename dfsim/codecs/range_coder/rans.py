"""The range codec's coder (numba): one packet's values through rANS with minimal
termination, or packed raw when that is not shorter.

The payload format (the rANS steps, the leading final state, the raw fallback) is
specified in docs/reference/range-coder.md ("The coder"). A value ``v`` is coded as
``hi = v >> lo_bits`` with the table (frequencies ``freq``, cumulative ``cum``, total
``2^scale``) and ``lo_bits`` uniform low bits.
"""

from __future__ import annotations

import numpy as np

from dfsim.kernels import njit

STATE_BITS = 31
STATE_LOW = 1 << STATE_BITS  # L: the state lives in [L, 256 L) once a byte is out
STATE_HIGH = STATE_LOW << 8
FLUSH_BYTES = 5  # a final state >= 2^32: 5 bytes big-endian
BAD_SYMBOL = -1  # status: a value of probability 0 under the model


@njit(cache=True)
def rans_encode(values, n_values, lo_bits, scale, freq, cum, buf, limit):
    """Code ``values[:n_values]`` into the end of ``buf``; the payload length, ``limit``
    when it would reach ``limit`` bytes (-> raw), or :data:`BAD_SYMBOL` for a value of
    probability 0."""
    cap = len(buf)
    pos = cap
    x = np.int64(1)
    lo_mask = (np.int64(1) << lo_bits) - 1
    xmax_lo = (np.int64(STATE_LOW) >> lo_bits) << 8
    base_hi = (np.int64(STATE_LOW) >> scale) << 8
    for i in range(n_values - 1, -1, -1):
        v = np.int64(values[i])
        hi = v >> lo_bits
        if hi >= len(freq):
            return BAD_SYMBOL
        f = freq[hi]
        if f == 0:
            return BAD_SYMBOL
        if lo_bits > 0:
            while x >= xmax_lo:
                pos -= 1
                buf[pos] = x & 255
                x >>= 8
            x = (x << lo_bits) | (v & lo_mask)
        if scale > 0:
            xm = base_hi * f
            while x >= xm:
                pos -= 1
                buf[pos] = x & 255
                x >>= 8
            x = ((x // f) << scale) + x % f + cum[hi]
        if pos < cap and cap - pos + FLUSH_BYTES >= limit:
            return limit
    if pos == cap and x < STATE_LOW:
        rest = x - 1
        while rest > 0:
            pos -= 1
            buf[pos] = rest & 255
            rest >>= 8
    else:
        for _ in range(FLUSH_BYTES if x >= np.int64(1) << 32 else 4):
            pos -= 1
            buf[pos] = x & 255
            x >>= 8
    return min(cap - pos, limit)


@njit(cache=True)
def rans_decode(data, start, end, n_values, lo_bits, scale, slot_fb, slot_sym, out):
    """Decode ``n_values`` values of payload ``data[start:end]`` into ``out``; whether it
    is valid. Per slot of the table: ``slot_fb`` = f | (slot - cum) << 32 (0: the
    reserved slot), ``slot_sym`` = hi."""
    length = end - start
    if length == 0:
        x = np.int64(1)
        pos = end
    elif data[start] >= 128 and length >= 4:  # a final state in [2^31, 2^32): 4 bytes
        x = np.int64(0)
        for p in range(start, start + 4):
            x = (x << 8) | np.int64(data[p])
        pos = start + 4
    elif data[start] == 0:
        return False  # not minimally written
    elif length <= 4:  # no byte emitted, final state x < 2^31 sent as x - 1
        x = np.int64(1)
        for p in range(start, end):
            x += np.int64(data[p]) << (8 * (end - 1 - p))
        pos = end
    else:  # a final state in [2^32, 2^39): 5 bytes
        x = np.int64(0)
        for p in range(start, start + FLUSH_BYTES):
            x = (x << 8) | np.int64(data[p])
        pos = start + FLUSH_BYTES
    hi_mask = (np.int64(1) << scale) - 1
    lo_mask = (np.int64(1) << lo_bits) - 1
    low = np.int64(STATE_LOW)
    for i in range(n_values):
        hi = slot_sym[0]
        if scale > 0:
            slot = x & hi_mask
            fb = slot_fb[slot]
            if fb == 0:
                return False  # the reserved slot: probability 0
            hi = slot_sym[slot]
            x = (fb & 0xFFFFFFFF) * (x >> scale) + (fb >> 32)
            while x < low and pos < end:
                x = (x << 8) | np.int64(data[pos])
                pos += 1
        lo = np.int64(0)
        if lo_bits > 0:
            lo = x & lo_mask
            x >>= lo_bits
            while x < low and pos < end:
                x = (x << 8) | np.int64(data[pos])
                pos += 1
        out[i] = (np.int64(hi) << lo_bits) | lo
    return pos == end and x == 1


@njit(cache=True)
def raw_pack(values, n_values, bits, out, start):
    """Pack ``values[:n_values]`` at ``bits`` bits each, MSB first, into ``out`` from
    ``start``, the last byte zero-padded; returns the bytes written."""
    acc = np.int64(0)
    nacc = 0
    p = start
    for i in range(n_values):
        acc = (acc << bits) | np.int64(values[i])
        nacc += bits
        while nacc >= 8:
            nacc -= 8
            out[p] = (acc >> nacc) & 255
            p += 1
        acc &= (np.int64(1) << nacc) - 1
    if nacc > 0:
        out[p] = (acc << (8 - nacc)) & 255
        p += 1
    return p - start


@njit(cache=True)
def raw_unpack(data, start, n_values, bits, lo_bits, freq_hi, out):
    """Unpack ``n_values`` raw values from ``data[start:]``; False on non-zero padding or
    a value of probability 0 (``freq_hi[v >> lo_bits] == 0``)."""
    acc = np.int64(0)
    nacc = 0
    p = start
    mask = (np.int64(1) << bits) - 1
    for i in range(n_values):
        while nacc < bits:
            acc = (acc << 8) | np.int64(data[p])
            p += 1
            nacc += 8
        nacc -= bits
        v = (acc >> nacc) & mask
        acc &= (np.int64(1) << nacc) - 1
        if freq_hi[v >> lo_bits] == 0:
            return False
        out[i] = v
    return acc == 0
