"""``range``: entropy coding of the quantized values, packet by packet (rANS).

The coder
---------
Each packet (``nrows x W`` codes of one channel) is coded on its own by a byte-wise
rANS coder (Duda's asymmetric numeral systems, range variant) written with numba: a
64-bit state ``x``, renormalisation interval ``[L, 256 L)`` with ``L = 2^31``, a
frequency table of total ``2^s`` (``s <= 22``, so ``L / 2^s >= 512``: against
``-log2 p``, 784-value packets lose under 0.01 bit per value, termination included).
The state resets at every packet, so any subset of packets decodes. One 32x28x28 8-bit
tensor in 224 4-row packets: ~0.26 ms to encode, ~0.16 ms to decode, ~0.06 ms for its
table (warm, this 2-core machine); 1000 such tensors (224 000 packets): ~0.3 s, ~0.2 s,
~0.07 s.

**Minimal termination.** The textbook flush costs ~28 bits per packet (an initial state
``L`` and a whole final state), 10 % of a 112-value packet at 3 bits per value. Here the
encoder starts from ``x = 1`` and the decoder reads a byte only *while ``x < L`` and
bytes remain*; the encoder's emissions match those reads exactly (until the first byte
is out the state stays below ``L`` and nothing is read; every emission leaves a state in
``[L, 256 L)`` as in plain rANS). The final state leads the payload, big-endian: 4
bytes when in ``[2^31, 2^32)`` (first byte >= 0x80), 5 when in ``[2^32, 2^39)``; a state
that never reached ``L`` (no byte emitted) is sent as ``x - 1`` in 0-4 bytes, first byte
non-zero. A constant packet is 0 bytes. Starting from a small state has a cost that grows
with the table's precision (~1 bit a packet per bit of ``s``): the table's ``s`` is
chosen with it counted (below). Measured overhead over the ideal bits: 4-5 bits a packet
(8-bit features, 4-row packets; ~5 at 2-6 bits, 2-3 at 10-16 bits).

**Raw fallback.** A packet whose coded form would not be shorter than its raw form
(``ceil(n * bits / 8)`` bytes, values packed MSB first) is sent raw. The decoder tells
them apart by the length alone (it knows ``n``): equal to the raw length: raw; shorter:
rANS; longer: invalid. So no packet exceeds the raw codec's size
(:meth:`RangeCodec.max_payload_bits`), and maximum-entropy noise costs nothing extra.

The models
----------
A code ``v`` is split into ``hi = v >> d`` and ``lo = v & (2^d - 1)``: ``hi`` is coded
with a frequency table, ``lo`` uniformly with ``d`` bits (two rANS steps). Frequencies
sum to ``2^s - 1``: slot 0 is reserved (probability 0), so a damaged stream whose state
decays to it is caught (and garbage cannot settle on small states that decode to
themselves). ``p(v) = f[hi] / 2^s * 2^-d``; the ideal bits reported per packet are
``-sum log2 p`` under the table actually used (the quantized one, reserved slot
included). Frequencies are ``max(1, round(count * (2^s - 1) / n))``, the sum then
corrected on the most frequent symbols.

* ``model="tensor"`` (default): each image's own histogram, sent as side information.
  The encoder picks ``d`` (0..bits) and ``s`` minimising table bits + the values' ideal
  bits + ``s`` bits per packet (the start-up cost above; packets counted from the layout
  being encoded, 4-row packets if unknown), among tables of at most ``max_table_bits``
  (default 8192: 1 KiB, so that with the first-packet placement a packet plus the side
  information fits a 1500-byte MTU). ``d = bits`` (one ``hi`` symbol) is the uniform
  model, which always fits. 8-bit feature maps use ``d = 0``; ``d > 0`` keeps 12-16-bit
  tensors, whose histograms have thousands of symbols, within the budget (at 16 bits the
  budget, not the data, limits the gain: ``max_table_bits`` trades it).
* ``model="calibrated"``: one table learned from training codes (:meth:`RangeCodec.fit`
  / :meth:`RangeCodec.fit_codes`), known to both ends, not sent (0 side bits). Add-one
  (Laplace) smoothing: every symbol of the ``2^bits`` alphabet counts once more than in
  training and keeps a frequency >= 1, so symbols never seen in training stay codable
  (at most ``s`` bits each); ``s`` in ``(bits, 22]`` minimises the training images' bits
  with the start-up cost in the layout's packets.

Side-information format (``model="tensor"``)
--------------------------------------------
A bit string per image, MSB first, zero-padded to whole bytes in the side-information
array ``range_table`` (N x B bytes, B for the longest); the bits counted per image are
the string's exact length::

    d: 5 bits | s: 5 bits | for each symbol hi present, ascending:
        Elias-gamma(gap + 1)          gap: symbols skipped since the previous one
        exp-Golomb_k(f - 1)           k = max(0, bitlen(previous f) - 2); first k = s - 2
    ... until the frequencies sum to 2^s - 1 (1 when s = 0; no count, no end marker)

Measured on 20 32x28x28 feature-like tensors (ReLU of smoothed Gaussian noise), 4-row
packets, bits per value::

    bits  H0      coded   +table  ideal   table bits  calibrated
    2     0.8235  0.8746  0.8761  0.8334     38       0.8806
    4     2.1579  2.2158  2.2196  2.1695     94       2.2260
    8     4.3898  4.4401  4.4807  4.4026   1021       4.4661
    12    6.3393  6.4724  6.7530  6.4563   7042       6.4993

At 8 bits: 1.2 % over the order-0 entropy, 2.1 % with the table.

Robustness
----------
The decoder never reads outside its payload and every loop is bounded by the value
count. ``ok`` is False (:meth:`RangeCodec.decode_packet` raises
:class:`~dfsim.codecs.base.PayloadError`) when: the length exceeds the raw length; the
leading state is not minimally written; a state decodes to the reserved slot
(probability 0); bytes are left unread; the final state is not the initial state 1
(rANS's own check); a raw packet has non-zero padding or a value of probability 0 under
the model; the image's side information does not parse (gamma code too long, symbol
beyond the alphabet, frequencies overshooting ``2^s - 1``, bits past the array's end).
The decoder alone rejects (8-bit default features, packets of 1, 4 and 8 rows;
``benchmarks/decoder-robustness.md``) 55-69 % of payloads with one bit flipped (68 % in
4-row packets) and 94-100 % of those cut or extended by a byte or replaced by random
bytes with the tensor model; 85-95 % and 87-100 % with the calibrated one. The rest
decode to other valid values (an entropy code has almost no redundancy), which the
transport's CRC-32 catches.

constriction (0.5.0) was measured and not used: its ``AnsCoder`` per packet from Python
takes ~0.3 ms to encode and ~0.7 ms to decode the same 224 packets, and its 32-bit words
make them 7 % larger (4.74 against 4.44 bits per value).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from numba import njit

from dfsim.codecs.base import PacketBytes, PacketCodec, PayloadError, TensorCode
from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS
from dfsim.registry import Range, register
from dfsim.stages import Encoded
from dfsim.transport.packets import PacketLayout

STATE_BITS = 31
STATE_LOW = 1 << STATE_BITS  # L: the state lives in [L, 256 L) once a byte is out
STATE_HIGH = STATE_LOW << 8
FLUSH_BYTES = 5  # a final state >= L: 5 bytes big-endian
MAX_SCALE = 20  # side-information tables sum to 2^s - 1, s <= 20
MAX_CALIBRATED_SCALE = 22
HEADER_BITS = 10  # d (5 bits) + s (5 bits)
SIDE_KEY = "range_table"

# status codes of the encoder
_BAD_SYMBOL = -1


# --------------------------------------------------------------------------- bit strings
@njit(cache=True)
def _bitlen(v):
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


@njit(cache=True)
def _gamma_bits(v):
    """Elias-gamma length of v >= 1."""
    return 2 * _bitlen(v) - 1


@njit(cache=True)
def _eg_bits(v, k):
    """Exp-Golomb order k length of v >= 0."""
    return _gamma_bits((v >> k) + 1) + k


@njit(cache=True)
def _put(buf, bp, value, nbits):
    """Write ``nbits`` bits of ``value`` MSB first at bit ``bp``; the new bit position."""
    for i in range(nbits - 1, -1, -1):
        if (value >> i) & 1:
            buf[bp >> 3] |= np.uint8(0x80 >> (bp & 7))
        bp += 1
    return bp


@njit(cache=True)
def _put_gamma(buf, bp, v):
    n = _bitlen(v)
    bp += n - 1  # zeros (buf starts zeroed)
    return _put(buf, bp, v, n)


@njit(cache=True)
def _put_eg(buf, bp, v, k):
    bp = _put_gamma(buf, bp, (v >> k) + 1)
    return _put(buf, bp, v & ((1 << k) - 1), k)


@njit(cache=True)
def _get(buf, bp, nbits, end):
    """(value, new bp); bp = -1 when the read would pass bit ``end``."""
    if bp < 0 or bp + nbits > end:
        return 0, -1
    v = 0
    for _ in range(nbits):
        v = (v << 1) | ((buf[bp >> 3] >> (7 - (bp & 7))) & 1)
        bp += 1
    return v, bp


@njit(cache=True)
def _get_gamma(buf, bp, end):
    if bp < 0:
        return 0, -1
    zeros = 0
    while True:
        if bp >= end or zeros > 40:
            return 0, -1
        if (buf[bp >> 3] >> (7 - (bp & 7))) & 1:
            break
        zeros += 1
        bp += 1
    return _get(buf, bp, zeros + 1, end)


@njit(cache=True)
def _get_eg(buf, bp, k, end):
    q, bp = _get_gamma(buf, bp, end)
    r, bp = _get(buf, bp, k, end)
    return ((q - 1) << k) | r, bp


@njit(cache=True)
def _next_k(f):
    return max(0, _bitlen(f) - 2)


# --------------------------------------------------------------------------- tables
@njit(cache=True)
def _mass(scale):
    """What a table's frequencies sum to: 2^s - 1 (slot 0 is reserved: a state that
    decodes to it is invalid), or 1 for the one-symbol table of s = 0."""
    return (np.int64(1) << scale) - 1 if scale > 0 else np.int64(1)


@njit(cache=True)
def _quantize_freqs(counts, order, total, scale):
    """Frequencies summing to ``_mass(scale)`` from ``counts`` (> 0; ``order``: by count,
    largest first): max(1, round(count * mass / total)), the excess or deficit taken from
    / given to the most frequent symbols. Needs a mass >= len(counts)."""
    m = _mass(scale)
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


@njit(cache=True)
def _table_bits(syms, f, scale):
    """Bits of a table in the side-information format."""
    bits = HEADER_BITS
    prev_sym = -1
    k = max(0, scale - 2)
    for i in range(len(syms)):
        bits += _gamma_bits(syms[i] - prev_sym) + _eg_bits(f[i] - 1, k)
        prev_sym = syms[i]
        k = _next_k(f[i])
    return bits


@njit(cache=True)
def _write_table(buf, d, scale, syms, f):
    bp = _put(buf, 0, d, 5)
    bp = _put(buf, bp, scale, 5)
    prev_sym = -1
    k = max(0, scale - 2)
    for i in range(len(syms)):
        bp = _put_gamma(buf, bp, syms[i] - prev_sym)
        bp = _put_eg(buf, bp, f[i] - 1, k)
        prev_sym = syms[i]
        k = _next_k(f[i])
    return bp


@njit(cache=True)
def _best_table(hist, n, bits, budget, packets):
    """Choose (d, s) and the table for one image's histogram ``hist`` (over 2^bits
    symbols, ``n`` values in ``packets`` packets): least table bits + ideal value bits +
    the coder's start-up cost (~s bits a packet), table <= ``budget``.
    Returns (d, s, syms, freqs, table bits)."""
    best_total = np.inf
    best_syms = np.zeros(1, np.int64)  # fallback: the uniform table (one hi symbol)
    best_f = np.ones(1, np.int64)
    best_d, best_s, best_tb = bits, 0, _table_bits(best_syms, best_f, 0)
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
            tb = _table_bits(syms, f, 0)
            if tb + n * d < best_total:  # (s = 0: no start-up cost)
                best_total, best_d, best_s, best_tb = tb + n * d, d, 0, tb
                best_syms, best_f = syms.copy(), f
            break  # coarser tables are the same single symbol at more bits
        s_lo = _bitlen(k)  # 2^s - 1 >= k
        if s_lo > MAX_SCALE:
            continue
        d_best = np.inf
        # local search over s from a guess, stopping after two increases
        s0 = min(MAX_SCALE, max(s_lo, _bitlen(n) - 2))
        for direction in (1, -1):
            s = s0 if direction == 1 else s0 - 1
            up = 0
            last = np.inf
            while s_lo <= s <= MAX_SCALE and up < 2:
                f = _quantize_freqs(counts, order, n, s)
                tb = _table_bits(syms, f, s)
                content = 0.0
                for i in range(k):
                    content += counts[i] * (s - np.log2(f[i]))
                total = tb + content + n * d + packets * s
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
def _tensor_tables(codes2d, bits, budget, packets):
    """Per image (rows of ``codes2d``): the chosen table written as a bit string.
    Returns (bytes N x B, bits N)."""
    n_img = codes2d.shape[0]
    a = 1 << bits
    hist = np.zeros(a, np.int64)
    tbits = np.zeros(n_img, np.int64)
    ds = np.zeros(n_img, np.int64)
    ss = np.zeros(n_img, np.int64)
    offs = np.zeros(n_img + 1, np.int64)
    all_syms = []
    all_f = []
    for i in range(n_img):
        hist[:] = 0
        row = codes2d[i]
        for j in range(len(row)):
            hist[row[j]] += 1
        d, s, syms, f, tb = _best_table(hist, len(row), bits, budget, packets)
        ds[i], ss[i], tbits[i] = d, s, tb
        all_syms.append(syms)
        all_f.append(f)
        offs[i + 1] = offs[i] + len(syms)
    nbytes = (tbits.max() + 7) // 8 if n_img else 0
    out = np.zeros((n_img, nbytes), np.uint8)
    for i in range(n_img):
        _write_table(out[i], ds[i], ss[i], all_syms[i], all_f[i])
    return out, tbits


@njit(cache=True)
def _parse_tables(raw, rows, bits):
    """Parse the side-information rows ``rows`` of ``raw`` (N x B bytes) into flat
    tables: (d, s, offsets, syms, freqs, ok) per table."""
    t = len(rows)
    t_d = np.zeros(t, np.int64)
    t_s = np.zeros(t, np.int64)
    t_ok = np.zeros(t, np.bool_)
    t_off = np.zeros(t + 1, np.int64)
    syms_l = []
    f_l = []
    end = raw.shape[1] * 8
    for i in range(t):
        buf = raw[rows[i]]
        d, bp = _get(buf, 0, 5, end)
        s, bp = _get(buf, bp, 5, end)
        ok = bp >= 0 and d <= bits and s <= MAX_SCALE
        m = _mass(s) if ok else 0
        na = np.int64(1) << (bits - d) if ok else 0
        sy = np.empty(min(m, na) if ok else 0, np.int64)
        fr = np.empty(len(sy), np.int64)
        k = 0
        tot = 0
        prev_sym = -1
        kk = max(0, s - 2)
        while ok and tot < m:
            g, bp = _get_gamma(buf, bp, end)
            v, bp = _get_eg(buf, bp, kk, end)
            sym = prev_sym + g
            f = v + 1
            if bp < 0 or sym >= na or tot + f > m or k >= len(sy):
                ok = False
                break
            sy[k], fr[k] = sym, f
            k += 1
            tot += f
            prev_sym = sym
            kk = _next_k(f)
        if not ok:
            k = 0
        t_d[i], t_s[i], t_ok[i] = d, s, ok
        syms_l.append(sy[:k])
        f_l.append(fr[:k])
        t_off[i + 1] = t_off[i] + k
    t_sym = np.empty(t_off[t], np.int64)
    t_f = np.empty(t_off[t], np.int64)
    for i in range(t):
        t_sym[t_off[i] : t_off[i + 1]] = syms_l[i]
        t_f[t_off[i] : t_off[i + 1]] = f_l[i]
    return t_d, t_s, t_off, t_sym, t_f, t_ok


# --------------------------------------------------------------------------- rANS
@njit(cache=True)
def _rans_encode(sym, n, d, scale, freq, cum, buf, limit):
    """Code ``sym[:n]`` into the end of ``buf``; the payload length, ``limit`` when it
    would reach ``limit`` bytes (-> raw), or -1 for a symbol of probability 0."""
    cap = len(buf)
    pos = cap
    x = np.int64(1)
    lo_mask = (np.int64(1) << d) - 1
    xmax_lo = (np.int64(STATE_LOW) >> d) << 8
    base_hi = (np.int64(STATE_LOW) >> scale) << 8
    for i in range(n - 1, -1, -1):
        v = np.int64(sym[i])
        hi = v >> d
        if hi >= len(freq):
            return _BAD_SYMBOL
        f = freq[hi]
        if f == 0:
            return _BAD_SYMBOL
        if d > 0:
            while x >= xmax_lo:
                pos -= 1
                buf[pos] = x & 255
                x >>= 8
            x = (x << d) | (v & lo_mask)
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
        v = x - 1
        while v > 0:
            pos -= 1
            buf[pos] = v & 255
            v >>= 8
    else:
        for _ in range(FLUSH_BYTES if x >= np.int64(1) << 32 else 4):
            pos -= 1
            buf[pos] = x & 255
            x >>= 8
    return min(cap - pos, limit)


@njit(cache=True)
def _rans_decode(data, a, e, n, d, scale, slot_fb, slot_sym, out):
    """Decode ``n`` values of payload ``data[a:e]`` into ``out``; whether it is valid.
    Per slot of the table: ``slot_fb`` = f | (slot - cum) << 32, ``slot_sym`` = hi."""
    length = e - a
    if length == 0:
        x = np.int64(1)
        pos = e
    elif data[a] >= 128 and length >= 4:  # a final state in [2^31, 2^32): 4 bytes
        x = np.int64(0)
        for p in range(a, a + 4):
            x = (x << 8) | np.int64(data[p])
        pos = a + 4
    elif data[a] == 0:
        return False  # not minimally written
    elif length <= 4:  # no byte emitted, final state x < 2^31 sent as x - 1
        x = np.int64(1)
        for p in range(a, e):
            x += np.int64(data[p]) << (8 * (e - 1 - p))
        pos = e
    else:  # a final state in [2^32, 2^39): 5 bytes
        x = np.int64(0)
        for p in range(a, a + FLUSH_BYTES):
            x = (x << 8) | np.int64(data[p])
        pos = a + FLUSH_BYTES
    hi_mask = (np.int64(1) << scale) - 1
    lo_mask = (np.int64(1) << d) - 1
    low = np.int64(STATE_LOW)
    for i in range(n):
        hi = slot_sym[0]
        if scale > 0:
            sl = x & hi_mask
            fb = slot_fb[sl]
            if fb == 0:
                return False  # the reserved slot: probability 0
            hi = slot_sym[sl]
            x = (fb & 0xFFFFFFFF) * (x >> scale) + (fb >> 32)
            while x < low and pos < e:
                x = (x << 8) | np.int64(data[pos])
                pos += 1
        lo = np.int64(0)
        if d > 0:
            lo = x & lo_mask
            x >>= d
            while x < low and pos < e:
                x = (x << 8) | np.int64(data[pos])
                pos += 1
        out[i] = (np.int64(hi) << d) | lo
    return pos == e and x == 1


@njit(cache=True)
def _raw_pack(sym, n, bits, out, start):
    acc = np.int64(0)
    nacc = 0
    p = start
    for i in range(n):
        acc = (acc << bits) | np.int64(sym[i])
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
def _raw_unpack(data, a, n, bits, d, freq_hi, out):
    """Unpack ``n`` raw values; False on non-zero padding or a value of probability 0."""
    acc = np.int64(0)
    nacc = 0
    p = a
    mask = (np.int64(1) << bits) - 1
    for i in range(n):
        while nacc < bits:
            acc = (acc << 8) | np.int64(data[p])
            p += 1
            nacc += 8
        nacc -= bits
        v = (acc >> nacc) & mask
        acc &= (np.int64(1) << nacc) - 1
        if freq_hi[v >> d] == 0:
            return False
        out[i] = v
    return acc == 0


@njit(cache=True)
def _load_dense(t, t_d, t_s, t_off, t_sym, t_f, freq, cum, cost):
    """Dense freq / cum / cost (bits of hi) of table t (``freq`` zeroed)."""
    c = 1 if t_s[t] > 0 else 0  # slot 0 reserved
    for j in range(t_off[t], t_off[t + 1]):
        s = t_sym[j]
        freq[s] = t_f[j]
        cum[s] = c
        c += t_f[j]
        cost[s] = t_s[t] - np.log2(t_f[j]) + t_d[t]


@njit(cache=True)
def _clear_dense(t, t_off, t_sym, freq):
    for j in range(t_off[t], t_off[t + 1]):
        freq[t_sym[j]] = 0


@njit(cache=True)
def _encode_kernel(codes, nsym, tab, t_d, t_s, t_off, t_sym, t_f, t_ok, bits):
    """Encode packets (rows of ``codes``) with table ``tab[j]``: (data, offsets, ideal
    bits, status); status -1: a value the model cannot code, -2: a bad table."""
    p_count = codes.shape[0]
    a = 1 << bits
    freq = np.zeros(a, np.int64)
    cum = np.zeros(a, np.int64)
    cost = np.zeros(a, np.float64)
    order = np.argsort(tab, kind="mergesort")
    raw_len = (nsym * bits + 7) // 8
    start = np.zeros(p_count + 1, np.int64)
    for j in range(p_count):
        start[j + 1] = start[j] + raw_len[j]
    big = np.empty(start[p_count], np.uint8)
    size = np.zeros(p_count, np.int64)
    ideal = np.zeros(p_count, np.float64)
    scratch = np.empty(raw_len.max() + 16 if p_count else 16, np.uint8)
    cur = -1
    status = 0
    for o in range(p_count):
        j = order[o]
        t = tab[j]
        if t != cur:
            if cur >= 0:
                _clear_dense(cur, t_off, t_sym, freq)
            cur = t
            if not t_ok[t]:
                return np.empty(0, np.uint8), start, ideal, -2
            _load_dense(t, t_d, t_s, t_off, t_sym, t_f, freq, cum, cost)
        n = nsym[j]
        row = codes[j]
        d = t_d[t]
        acc = 0.0
        for i in range(n):
            hi = np.int64(row[i]) >> d
            if hi >= a or freq[hi] == 0:
                return np.empty(0, np.uint8), start, ideal, _BAD_SYMBOL
            acc += cost[hi]
        ideal[j] = acc
        ln = _rans_encode(row, n, d, t_s[t], freq, cum, scratch, raw_len[j])
        if ln < 0:
            return np.empty(0, np.uint8), start, ideal, _BAD_SYMBOL
        if ln >= raw_len[j]:
            size[j] = _raw_pack(row, n, bits, big, start[j])
        else:
            c0 = len(scratch) - ln
            for b in range(ln):
                big[start[j] + b] = scratch[c0 + b]
            size[j] = ln
    offsets = np.zeros(p_count + 1, np.int64)
    for j in range(p_count):
        offsets[j + 1] = offsets[j] + size[j]
    data = np.empty(offsets[p_count], np.uint8)
    for j in range(p_count):
        data[offsets[j] : offsets[j + 1]] = big[start[j] : start[j] + size[j]]
    return data, offsets, ideal, status


@njit(cache=True)
def _decode_kernel(data, offsets, which, nsym, tab, t_d, t_s, t_off, t_sym, t_f, t_ok, bits, out):
    """Decode packets ``which`` (table ``tab[q]``) into ``out`` rows; ``ok`` per packet."""
    q_count = len(which)
    ok = np.zeros(q_count, np.bool_)
    a = 1 << bits
    max_s = 0
    for q in range(q_count):
        if t_ok[tab[q]]:
            max_s = max(max_s, t_s[tab[q]])
    slot_fb = np.zeros(np.int64(1) << max_s, np.int64)
    slot_sym = np.zeros(np.int64(1) << max_s, np.int32)
    freq = np.zeros(a, np.int64)
    order = np.argsort(tab, kind="mergesort")
    n_data = len(data)
    cur = -1
    for o in range(q_count):
        q = order[o]
        t = tab[q]
        if not t_ok[t]:
            continue
        if t != cur:
            if cur >= 0:
                _clear_dense(cur, t_off, t_sym, freq)
            cur = t
            c = 0
            if t_s[t] > 0:  # the reserved slot: f = 0 marks it
                slot_fb[0] = 0
                slot_sym[0] = 0
                c = 1
            for j in range(t_off[t], t_off[t + 1]):
                f = t_f[j]
                freq[t_sym[j]] = f
                for m in range(f):
                    slot_fb[c + m] = f | (np.int64(m) << 32)
                    slot_sym[c + m] = t_sym[j]
                c += f
        n = nsym[q]
        j = which[q]
        if n < 0 or n > out.shape[1] or j < 0 or j + 1 >= len(offsets):
            continue
        a0, e0 = offsets[j], offsets[j + 1]
        if a0 < 0 or e0 < a0 or e0 > n_data:
            continue
        raw_len = (n * bits + 7) // 8
        row = out[q]
        if e0 - a0 == raw_len:
            good = _raw_unpack(data, a0, n, bits, t_d[t], freq, row)
        elif e0 - a0 < raw_len:
            good = _rans_decode(data, a0, e0, n, t_d[t], t_s[t], slot_fb, slot_sym, row)
        else:
            good = False
        if not good:
            row[:] = 0
        ok[q] = good
    return ok


# --------------------------------------------------------------------------- the codec
def worst_table_bits(bits: int) -> int:
    """An upper bound on a table's bits for ``bits``-bit codes (every symbol present,
    largest gap and frequency codes)."""
    return HEADER_BITS + (1 << bits) * (2 * bits + 1 + 2 * MAX_SCALE + 3)


@register("codec", "range")
class RangeCodec(PacketCodec):
    """rANS entropy coding of the ``bits``-bit codes, each packet on its own, with the
    image's histogram sent as side information (``model: tensor``) or a histogram learned
    from training features (``model: calibrated``); ``max_table_bits``: the most bits an
    image's table may take (side information; coarser tables are chosen to fit)."""

    def __init__(
        self,
        bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8,
        model: Literal["tensor", "calibrated"] = "tensor",
        max_table_bits: Annotated[int, Range(64, 1 << 24)] = 8192,
    ):
        super().__init__(bits)
        if model not in ("tensor", "calibrated"):
            raise ValueError(f"model must be 'tensor' or 'calibrated', got {model!r}")
        if not (isinstance(max_table_bits, (int, np.integer)) and max_table_bits >= 64):
            raise ValueError(f"max_table_bits must be an integer >= 64, got {max_table_bits!r}")
        self.model = model
        self.max_table_bits = int(max_table_bits)
        self.needs_fit = model == "calibrated"
        self.model_side_info_bits = (
            min(self.max_table_bits, worst_table_bits(self.bits)) if model == "tensor" else 0
        )
        self._calibrated: tuple | None = None  # flat table arrays, one table
        self._rows: int | None = None  # rows per packet of the layout last encoded with
        self._whole_tensor = False

    # ------------------------------------------------------------ models
    def fit_codes(self, codes: np.ndarray, layout: PacketLayout | None = None) -> None:
        """Learn the calibrated table from training codes N x C x H x W, add-one
        smoothed; its precision ``s`` minimises the training images' bits in ``layout``'s
        packets (default: 4-row packets)."""
        codes = np.asarray(codes)
        if codes.ndim != 4 or not codes.size:
            raise ValueError(f"training codes must be N x C x H x W, got shape {codes.shape}")
        if int(codes.max()) >= 1 << self.bits:
            raise ValueError(f"training codes exceed {self.bits} bits")
        counts = np.bincount(codes.reshape(-1).astype(np.int64), minlength=1 << self.bits) + 1
        packets = self._packets_per_image(codes.shape[1:], layout)
        best, best_s = np.inf, MAX_CALIBRATED_SCALE
        order = np.argsort(-counts, kind="mergesort")
        for scale in range(self.bits + 1, MAX_CALIBRATED_SCALE + 1):
            f = _quantize_freqs(counts, order, int(counts.sum()), scale)
            per_image = float(np.sum(counts * (scale - np.log2(f)))) / len(codes)
            if per_image + packets * scale < best:
                best, best_s = per_image + packets * scale, scale
        self.load_fitted_state({"counts": counts, "scale": np.array(best_s)})

    def fitted_state(self) -> dict[str, np.ndarray]:
        """The calibrated table's (smoothed) training counts and precision."""
        if self._calibrated is None:
            return {}
        return {"counts": self._calibrated[-1], "scale": self._calibrated[1][:1].copy()}

    def load_fitted_state(self, state: dict[str, np.ndarray]) -> RangeCodec:
        """Restore the calibrated table from :meth:`fitted_state`'s arrays."""
        counts = np.asarray(state["counts"], np.int64)
        scale = int(np.asarray(state["scale"]).reshape(-1)[0])
        if counts.shape != (1 << self.bits,) or (counts < 1).any():
            raise ValueError(f"counts must be {1 << self.bits} positive integers")
        if not self.bits < scale <= MAX_CALIBRATED_SCALE:
            raise ValueError(f"scale must be in ({self.bits}, {MAX_CALIBRATED_SCALE}]")
        order = np.argsort(-counts, kind="mergesort")
        f = _quantize_freqs(counts, order, int(counts.sum()), scale)
        syms = np.arange(1 << self.bits, dtype=np.int64)
        self._calibrated = (
            np.zeros(1, np.int64),
            np.full(1, scale, np.int64),
            np.array([0, len(syms)], np.int64),
            syms,
            f.astype(np.int64),
            np.ones(1, np.bool_),
            counts,
        )
        return self

    def _packets_per_image(self, shape, layout: PacketLayout | None = None) -> int:
        """Packets of one C x H x W tensor: ``layout``'s, else those of the layout last
        encoded with, else 4-row packets; 1 in whole-tensor mode."""
        if self._whole_tensor:
            return 1
        c, h = int(shape[0]), int(shape[1])
        if layout is not None:
            return layout.packets_per_tensor
        rows = self._rows or 4
        return c * -(-h // rows)

    def tensor_side_info(
        self, codes: np.ndarray, packets_per_image: int | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``model: tensor``: each image's table as a bit string (``range_table``, N x B
        bytes, zero-padded) and its exact length in bits; nothing for ``calibrated``.
        ``packets_per_image`` (default: as in :meth:`_packets_per_image`) weighs the
        coder's start-up cost in the choice of the table's precision."""
        n = len(codes)
        if self.model == "calibrated":
            return {}, np.zeros(n, np.int64)
        flat = np.ascontiguousarray(codes.reshape(n, -1))
        self._check_codes(flat)
        if packets_per_image is None:
            packets_per_image = self._packets_per_image(codes.shape[1:])
        raw, tbits = _tensor_tables(flat, self.bits, self.max_table_bits, int(packets_per_image))
        return {SIDE_KEY: raw}, tbits

    def encode(self, features: np.ndarray, layout: PacketLayout) -> Encoded:
        """As :meth:`PacketCodec.encode`; the layout's packet count tunes the tables."""
        self._rows = layout.rows_per_packet
        return super().encode(features, layout)

    def encode_tensor(self, codes: np.ndarray) -> TensorCode:
        """As :meth:`PacketCodec.encode_tensor` (one packet: tables tuned for it)."""
        self._whole_tensor = True
        try:
            return super().encode_tensor(codes)
        finally:
            self._whole_tensor = False

    def _check_codes(self, flat: np.ndarray) -> None:
        if flat.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"codes must be uint8 or uint16, got {flat.dtype}")
        if flat.size and int(flat.max()) >= 1 << self.bits:
            raise ValueError(f"a code exceeds {self.bits} bits")

    def _tables(self, image: np.ndarray, side: dict) -> tuple[np.ndarray, tuple]:
        """(table index per packet, flat tables) for packets of images ``image``."""
        if self.model == "calibrated":
            if self._calibrated is None:
                raise RuntimeError("range codec, model calibrated: fit() on training codes first")
            return np.zeros(len(image), np.int64), self._calibrated[:6]
        raw = np.asarray(side[SIDE_KEY])
        if raw.ndim == 1:
            raw = raw[None]
        uniq, inv = np.unique(np.asarray(image, np.int64), return_inverse=True)
        raw = np.ascontiguousarray(raw, np.uint8)
        if len(uniq) and (uniq[0] < 0 or uniq[-1] >= len(raw)):
            raise ValueError("packet image index outside the side information")
        return inv.astype(np.int64), _parse_tables(raw, uniq, self.bits)

    # ------------------------------------------------------------ batched coding
    def encode_packets(
        self, packets: np.ndarray, nrows: np.ndarray, image: np.ndarray, side: dict
    ) -> tuple[PacketBytes, np.ndarray]:
        """P packets (P x r x w codes, padded) -> payloads and ideal bits per packet."""
        p, r, w = packets.shape
        flat = np.ascontiguousarray(packets.reshape(p, r * w))
        self._check_codes(flat)
        nsym = np.asarray(nrows, np.int64) * w
        tab, tables = self._tables(image, side)
        data, offsets, ideal, status = _encode_kernel(flat, nsym, tab, *tables, self.bits)
        if status == -2:
            raise ValueError("range codec: the side information does not parse")
        if status < 0:
            raise ValueError("range codec: a value has probability 0 under the model")
        return PacketBytes(data, offsets), ideal

    def decode_packets(
        self,
        payloads: PacketBytes,
        which: np.ndarray,
        nrows: np.ndarray,
        width: int,
        image: np.ndarray,
        side: dict,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode packets ``which`` -> codes len(which) x max(nrows) x width and ``ok``."""
        which = np.asarray(which, np.int64)
        nrows = np.asarray(nrows, np.int64)
        r = int(nrows.max()) if len(nrows) else 0
        out = np.zeros((len(which), r * width), self.code_dtype)
        if not len(which):
            return out.reshape(0, r, width), np.zeros(0, bool)
        tab, tables = self._tables(image, side)
        ok = _decode_kernel(
            payloads.data, payloads.offsets, which, nrows * width, tab, *tables, self.bits, out
        )
        return out.reshape(len(which), r, width), ok

    # ------------------------------------------------------------ one packet
    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One packet's codes (rows x width) -> its payload (``side``: this image's)."""
        one = {k: np.asarray(v)[None] for k, v in side.items()}
        codes = np.asarray(codes, self.code_dtype)
        zero = np.zeros(1, np.int64)
        pb, _ = self.encode_packets(codes[None], zero + codes.shape[0], zero, one)
        return pb.payload(0)

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """A payload -> its codes (rows x width); :class:`PayloadError` if invalid."""
        one = {k: np.asarray(v)[None] for k, v in side.items()}
        data = np.frombuffer(bytes(payload), np.uint8)
        pb = PacketBytes(data, np.array([0, len(data)], np.int64), np.zeros(1, np.uint32))
        zero = np.zeros(1, np.int64)
        codes, ok = self.decode_packets(pb, zero, zero + rows, width, zero, one)
        if not ok[0]:
            raise PayloadError(f"range: packet of {rows}x{width} values does not decode")
        return codes[0]

    def ideal_packet_bits(self, codes: np.ndarray, side: dict) -> float:
        """-sum log2 p of one packet's codes under the model used."""
        one = {k: np.asarray(v)[None] for k, v in side.items()}
        codes = np.asarray(codes, self.code_dtype)
        zero = np.zeros(1, np.int64)
        _, ideal = self.encode_packets(codes[None], zero + codes.shape[0], zero, one)
        return float(ideal[0])

    def max_payload_bits(self, rows: int, width: int) -> int:
        """No packet is longer than its raw form (the coder falls back to it)."""
        return 8 * ((rows * width * self.bits + 7) // 8)

    def describe_values(self) -> str:
        """How values are coded, for messages."""
        return f"at {self.bits} bits, rANS-coded ({self.model} model)"

    def __repr__(self) -> str:
        return (
            f"RangeCodec(bits={self.bits}, model={self.model!r}, "
            f"max_table_bits={self.max_table_bits})"
        )
