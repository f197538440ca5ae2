"""A CABAC-style adaptive binary arithmetic coder (numba), the entropy coder of the palette
codec (:mod:`dfsim.codecs.palette`).

**Coder.** A 32-bit binary range coder in the style of LZMA's: ``low`` (33 bits, the top
one a carry) and ``range`` in ``[2^24, 2^32)``, byte-wise renormalisation, carries
propagated through a cached byte and a count of pending 0xFF bytes. A bin with
probability ``p`` (of the bin being 1, 16-bit fixed point) splits the range at
``(range >> 16) * p``; a 1 takes the lower part. LZMA's first output byte, always 0, is
not written. Bypass bins are bins with ``p = 1/2`` and no context.

**Contexts.** Each context is a probability ``probs[ctx]`` (16 bits, kept in
``[PMIN, 2^16 - PMIN]``) and an observation count ``counts[ctx]``. After a bin the
probability
moves towards it by ``1 / (n + PRIOR)`` (n: bins the context has seen; PRIOR: the weight
of its initial probability, in bins) until that reaches ``1 / WINDOW``, then by
``1 / WINDOW``: a count-based (Krichevsky-Trofimov-like) start that learns fast inside a
short packet, then an exponential window like CABAC's state machine.

**Encoder in two steps.** The modelling records each bin as ``record[i] = p << 1 | bit``
(``p``: its context's probability at that moment; the context then adapts), and
:func:`enc_run` codes the whole record in one tight loop whose state stays in registers.
The record also lets tests read the exact bin string a binarisation produced.

**Termination (minimal, canonical).** At the end the encoder picks, in the final interval
``[low, low + range)``, the number with the most trailing zero bits, flushes it, and drops
every trailing zero byte: the decoder reads zeros past the end of a payload. A payload
thus costs its ideal bits plus at most about 9 bits (mean ~2.5; it can even be a few bits
less, the dropped zeros being free). The termination is canonical, so the decoder checks
it: it recomputes the encoder's final interval from its own state and rejects a payload
whose last window is not the canonical value, which has bytes it never read, or which
ends with a zero byte. There is no redundancy beyond that: a truncated or corrupted
payload often decodes to other values (the palette codec adds its own checks and,
optionally, hash bits).

**Ideal bits.** :func:`enc_run` also returns ``-sum log2 p`` over the bins, ``p`` the
probability the model gave each bin when it was coded (bypass: 1 bit each), from a
16384-entry table (within 0.06 bits per bin).

State lives in small arrays so that numba functions can pass it around: the encoder's
record ``record`` and its length ``enc[E_NBINS]``, the contexts ``probs`` / ``counts``;
the decoder's state ``dec`` (:data:`D_CODE` ...) and input ``data`` (uint8).

Kernels are compiled with :func:`dfsim.kernels.njit`, whose cache stamp covers every module
of ``dfsim/codecs/``: editing any of them recompiles the kernels that could include it.
"""

from __future__ import annotations

import numpy as np

from dfsim.kernels import njit

ONE = 1 << 16  # probabilities are 16-bit fixed point
HALF = ONE >> 1
PMIN = 48  # probability clamp: no bin costs more than log2(65536/48) ~ 10.4 bits
TOP = 1 << 24
MASK32 = 0xFFFFFFFF
PRIOR = 5  # weight of a context's initial probability, in bins
WINDOW = 40  # steady-state adaptation rate 1 / WINDOW

# rate (16-bit fixed point) after n observations of a context
RATE_N = 64
RATE = np.array([ONE // min(n + PRIOR, WINDOW) for n in range(RATE_N)], np.int64)

# -log2(q / 2^16) for q in [4i, 4i + 4), taken at the centre (4i + 2): within 2/q of the
# exact value (< 0.06 bits for q >= PMIN); index 16384 is q = 2^16 (cost 0)
# (exact at q = 1/2: bypass bins cost 1 bit)
COST = np.append(-np.log2((4 * np.arange(16384) + 2) / ONE), 0.0)
COST[HALF >> 2] = 1.0

# encoder state: the number of bins recorded
E_NBINS = 0
E_SIZE = 1
# decoder state
D_CODE, D_RANGE, D_POS, D_END, D_START = 0, 1, 2, 3, 4
D_SIZE = 5


@njit(cache=True)
def bin_cost(prob: int, bit: int) -> float:
    """-log2 of the probability a context with P(1) = prob / 2^16 gives ``bit`` (from a
    table, to within 0.06 bits)."""
    return COST[(prob if bit else ONE - prob) >> 2]


@njit(cache=True)
def reset_contexts(probs, counts, init) -> None:
    """Every context back to its initial probability, count 0."""
    for i in range(len(init)):
        probs[i] = init[i]
        counts[i] = 0


@njit(cache=True)
def _update(probs, counts, ctx, bit) -> None:
    p = probs[ctx]
    n = counts[ctx]
    r = RATE[n] if n < RATE_N else RATE[RATE_N - 1]
    if bit:
        p += ((ONE - p) * r) >> 16
        if p > ONE - PMIN:
            p = ONE - PMIN
    else:
        p -= (p * r) >> 16
        if p < PMIN:
            p = PMIN
    probs[ctx] = p
    counts[ctx] = n + 1


# ------------------------------------------------------------------------------- encoder
# The encoder works in two steps: the modelling records each bin's probability and value
# (``record[i] = p << 1 | bit``, contexts adapted as it goes), then :func:`enc_run` codes the
# record in one tight loop whose coder state stays in registers.


@njit(cache=True)
def enc_init(enc) -> None:
    """A fresh record (no bins)."""
    enc[E_NBINS] = 0


@njit(cache=True)
def enc_bin(enc, record, probs, counts, ctx, bit) -> None:
    """Record ``bit`` with context ``ctx``'s probability and adapt the context."""
    p = probs[ctx]
    n = enc[E_NBINS]
    record[n] = (p << 1) | bit
    enc[E_NBINS] = n + 1
    _update(probs, counts, ctx, bit)


@njit(cache=True)
def enc_bypass(enc, record, bit) -> None:
    """Record ``bit`` with probability 1/2 (no context)."""
    n = enc[E_NBINS]
    record[n] = (HALF << 1) | bit
    enc[E_NBINS] = n + 1


@njit(cache=True)
def enc_bits(enc, record, value, nbits) -> None:
    """``nbits`` bypass bins: ``value``'s low ``nbits`` bits, most significant first."""
    for b in range(nbits - 1, -1, -1):
        enc_bypass(enc, record, (value >> b) & 1)


@njit(cache=True)
def canonical(low, rng):
    """The number in ``[low, low + rng)`` with the most trailing zero bits (k <= 32)."""
    hi = low + rng - 1
    for k in range(32, 0, -1):
        m = (1 << k) - 1
        v = (low + m) & ~m
        if v <= hi:
            return v
    return low


@njit(cache=True)
def _shift_low(low, cache, csize, pos, buf):
    if low < 0xFF000000 or low > MASK32:
        carry = low >> 32
        temp = cache
        while True:
            if 0 <= pos < len(buf):
                buf[pos] = (temp + carry) & 0xFF
            pos += 1
            temp = 0xFF
            csize -= 1
            if csize == 0:
                break
        cache = (low >> 24) & 0xFF
    return (low & 0x00FFFFFF) << 8, cache, csize + 1, pos


def enc_capacity(n_bins: int) -> int:
    """Bytes :func:`enc_run` may write for ``n_bins`` bins (at most ~10.4 bits each)."""
    return (n_bins * 11) // 8 + 16


@njit(cache=True)
def enc_run(record, n_bins, buf):
    """Arithmetic-code the first ``n_bins`` recorded bins into ``buf``, terminate canonically
    and drop trailing zero bytes. Returns (m, ideal): the payload is ``buf[:m]`` (m = -1
    if ``buf`` was too small), ideal = -sum log2 p of the bins. LZMA's leading 0 byte is
    not written."""
    low = 0
    rng = MASK32
    cache = 0
    csize = 1
    pos = -1
    ideal = 0.0
    for i in range(n_bins):
        v = record[i]
        p = v >> 1
        bound = (rng >> 16) * p
        if v & 1:
            rng = bound
            ideal += bin_cost(p, 1)
        else:
            low += bound
            rng -= bound
            ideal += bin_cost(p, 0)
        while rng < TOP:
            rng <<= 8
            low, cache, csize, pos = _shift_low(low, cache, csize, pos, buf)
    low = canonical(low, rng)
    for _ in range(5):
        low, cache, csize, pos = _shift_low(low, cache, csize, pos, buf)
    if pos > len(buf):
        return -1, ideal
    while pos > 0 and buf[pos - 1] == 0:
        pos -= 1
    return pos, ideal


# ------------------------------------------------------------------------------- decoder
@njit(cache=True)
def _byte(dec, data) -> int:
    pos = dec[D_POS]
    dec[D_POS] = pos + 1
    if pos < dec[D_END]:
        return data[pos]
    return 0


@njit(cache=True)
def dec_init(dec, data, start, end) -> bool:
    """Start decoding ``data[start:end]``; False if the first bytes cannot start a stream."""
    dec[D_START] = start
    dec[D_END] = end
    dec[D_POS] = start
    dec[D_RANGE] = MASK32
    code = 0
    for _ in range(4):
        code = (code << 8) | _byte(dec, data)
    dec[D_CODE] = code
    return code < MASK32


@njit(cache=True)
def dec_bin(dec, data, probs, counts, ctx) -> int:
    """Decode one bin with context ``ctx`` and adapt the context."""
    p = probs[ctx]
    rng = dec[D_RANGE]
    code = dec[D_CODE]
    bound = (rng >> 16) * p
    if code < bound:
        rng = bound
        bit = 1
    else:
        code -= bound
        rng -= bound
        bit = 0
    _update(probs, counts, ctx, bit)
    while rng < TOP:
        rng <<= 8
        code = (code << 8) | _byte(dec, data)
    dec[D_RANGE] = rng
    dec[D_CODE] = code
    return bit


@njit(cache=True)
def dec_bypass(dec, data) -> int:
    """Decode one bypass bin."""
    rng = dec[D_RANGE]
    code = dec[D_CODE]
    bound = (rng >> 16) * HALF
    if code < bound:
        rng = bound
        bit = 1
    else:
        code -= bound
        rng -= bound
        bit = 0
    while rng < TOP:
        rng <<= 8
        code = (code << 8) | _byte(dec, data)
    dec[D_RANGE] = rng
    dec[D_CODE] = code
    return bit


@njit(cache=True)
def dec_bits(dec, data, nbits) -> int:
    """``nbits`` bypass bins as an integer, most significant first."""
    v = 0
    for _ in range(nbits):
        v = (v << 1) | dec_bypass(dec, data)
    return v


@njit(cache=True)
def dec_finish(dec, data) -> bool:
    """Whether the payload ended exactly as the encoder ends a stream: no byte left
    unread, no trailing zero byte, and the last four bytes read (zeros past the end) are
    the canonical final value of the decoder's final interval."""
    pos = dec[D_POS]
    end = dec[D_END]
    if end > pos:
        return False  # bytes the decoder never needed
    if end > dec[D_START] and data[end - 1] == 0:
        return False  # the encoder drops trailing zeros
    w = 0
    for i in range(pos - 4, pos):
        w = (w << 8) | (data[i] if i < end else 0)
    low = (w - dec[D_CODE]) & MASK32
    return (canonical(low, dec[D_RANGE]) & MASK32) == w


# ------------------------------------------------------------------------------- helpers
@njit(cache=True)
def _code_bins(bits, ctxs, bypass, init):
    """Encode a sequence of bins (bypass where ``bypass[i]``) into bytes, with the ideal
    bits. For tests."""
    n = len(bits)
    record = np.zeros(max(n, 1), np.int64)
    enc = np.zeros(E_SIZE, np.int64)
    probs = np.empty(len(init), np.int64)
    counts = np.empty(len(init), np.int64)
    reset_contexts(probs, counts, init)
    enc_init(enc)
    for i in range(n):
        if bypass[i]:
            enc_bypass(enc, record, bits[i])
        else:
            enc_bin(enc, record, probs, counts, ctxs[i], bits[i])
    buf = np.zeros((n * 11) // 8 + 16, np.uint8)
    m, ideal = enc_run(record, enc[E_NBINS], buf)
    return buf[:m].copy(), ideal


@njit(cache=True)
def _decode_bins(data, ctxs, bypass, init):
    n = len(ctxs)
    out = np.zeros(n, np.int64)
    dec = np.zeros(D_SIZE, np.int64)
    probs = np.empty(len(init), np.int64)
    counts = np.empty(len(init), np.int64)
    reset_contexts(probs, counts, init)
    if not dec_init(dec, data, 0, len(data)):
        return out, False
    for i in range(n):
        if bypass[i]:
            out[i] = dec_bypass(dec, data)
        else:
            out[i] = dec_bin(dec, data, probs, counts, ctxs[i])
    return out, dec_finish(dec, data)


def encode_bins(bits, ctxs, bypass=None, n_contexts: int | None = None, init=None):
    """Encode bins (0/1) with contexts ``ctxs`` (or bypass where ``bypass`` is True) into
    bytes; returns ``(payload, ideal_bits)``. Contexts start at ``init`` (default 1/2)."""
    bits = np.asarray(bits, np.int64)
    ctxs = np.asarray(ctxs, np.int64)
    bypass = np.zeros(len(bits), bool) if bypass is None else np.asarray(bypass, bool)
    if init is None:
        k = int(ctxs.max(initial=0)) + 1 if n_contexts is None else n_contexts
        init = np.full(k, HALF, np.int64)
    data, ideal = _code_bins(bits, ctxs, bypass, np.asarray(init, np.int64))
    return data.tobytes(), float(ideal)


def decode_bins(payload: bytes, ctxs, bypass=None, n_contexts: int | None = None, init=None):
    """Inverse of :func:`encode_bins`: ``(bins, ok)``; ``ok`` False when the payload's
    termination is not the encoder's."""
    ctxs = np.asarray(ctxs, np.int64)
    bypass = np.zeros(len(ctxs), bool) if bypass is None else np.asarray(bypass, bool)
    if init is None:
        k = int(ctxs.max(initial=0)) + 1 if n_contexts is None else n_contexts
        init = np.full(k, HALF, np.int64)
    data = np.frombuffer(payload, np.uint8)
    out, ok = _decode_bins(data, ctxs, bypass, np.asarray(init, np.int64))
    return out, bool(ok)
