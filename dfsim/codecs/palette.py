"""``palette``: the near-lossless deep-feature codec of Choi & Bajić (MMSP 2018, Sec. III),
coded with the CABAC-style binary arithmetic coder of :mod:`dfsim.codecs.cabac`.

The quantized tensor (uniform min/max quantizer, :mod:`dfsim.codecs.quantizer`) is coded
losslessly with:

* a **palette** ``p``: the 8 most frequent values of the whole tensor (side information,
  ``8 * bits`` bits per image), re-sorted from tile to tile by frequency, and per tile the
  entry ``p[j*]`` with the least mean absolute difference from the tile (eq. 3), ``j*``
  coded with the truncated unary code of Table II;
* per 4x4 block one of five **predictions**, Pal (``p[j*]``), Hor, Ver, Fil1, Fil2,
  signalled with a most-probable-mode flag or the flag and 2 bins;
* per block a **SKIP** flag (all-zero residual), else the residual in the mode's scan
  order as a significance map, greater-1 and greater-2 flags, signs and Exp-Golomb-Rice
  remainders, every bin coded by the adaptive binary arithmetic coder.

Two modes:

* **whole tensor** (:func:`encode_tensor` / :func:`decode_tensor`, the paper's setting):
  the tiles of eq. 2 (:func:`dfsim.codecs.tiling.tile`: channel c at tile
  ``(c // cols, c % cols)``) in raster order, i.e. channel after channel, as one stream
  (palette included) whose adaptive state (contexts, palette order, Rice statistics)
  runs across tiles;
* **per packet** (:func:`encode_packets` / :func:`decode_packets`, what the network
  sends): a packet (``rows`` rows of one channel) is coded like one tile, and each packet
  is independently decodable: the coder and every adaptive state start afresh and
  prediction uses only the packet's own values and the per-image palette
  (:func:`tensor_palette`).

Decisions where the paper is silent (or, for Table II, self-contradictory)
---------------------------------------------------------------------------

Tiles and blocks
    * The 4x4 block grid is anchored at each tile's top-left corner (per packet: at the
      packet's first row). When a tile's (packet's) height or width is not a multiple of
      4, the last block row/column has smaller blocks (1..4 x 1..4); their scan is the 4x4
      scan restricted to the positions inside the block.
    * No prediction crosses a tile boundary (nor a packet boundary): "at the left (top)
      boundary" means the tile's, since ``p[j*]`` is the tile's own. Neighbouring tiles
      are different channels, so in the whole-tensor mode the tiling (eq. 2) only fixes
      the tile order: raster order over the grid, which is channel order; the unused
      tiles of a non-power-of-two C are not coded (the decoder knows C).
    * The mpm's left, top and top-left blocks (and the SKIP context's left and top) are
      taken inside the same tile (packet) only.

Palette
    * :func:`tensor_palette`: all values ``0 .. 2^bits - 1`` ranked by (count descending,
      value ascending), the first 8; so missing entries are filled with the smallest
      unused values. When ``2^bits < 8`` (2-bit codes) the 4 values repeat cyclically
      (``p[4:] = p[:4]``); a repeated entry is never chosen, ties in eq. 3 going to the
      smaller index.
    * Whole tensor: the 8 values are sent, ``bits`` bypass bins each, at the start of the
      stream **in the order of their frequency in the first tile** (ties: tensor order),
      which is the paper's initial order at no cost. Before each later tile ``p`` is
      re-sorted by the number of exact occurrences of each ``p_i`` in all tiles coded so
      far, a *stable* sort (ties keep their current order).
    * Per packet: ``p`` is the per-image palette in tensor frequency order; a packet is
      (at most) one tile and no tile precedes it inside the packet, so the paper's re-sort
      leaves that order as it is. ``j*`` is chosen and coded once per packet.
    * Table II lists ``1`` for index 0, which is a prefix of ``10`` (index 1): read as the
      truncated unary code ``0, 10, 110, ..., 1111110, 1111111``; bin ``i`` has its own
      context (7 contexts).

Prediction
    * Pal: ``p[j*]``. Hor / Ver (Fig. 5): each row (column) of the block takes the value
      just left of (above) the block in that row (column); ``p[j*]`` where that is
      outside the tile.
    * Fil1 / Fil2 (ref. [13]: sample-wise 3-tap filters): each value is predicted from its
      own top-left, top and left neighbours (inside the block too: coding is lossless, so
      they are known), coefficients in the order the paper names the neighbours: Fil1
      ``(3 tl + 7 t + 22 l + 16) >> 5``, Fil2 ``(14 tl + 0 t + 18 l + 16) >> 5``; a
      neighbour outside the tile is ``p[j*]``.
    * Residual ``x - pred`` (no modular wrap), in ``[-(2^bits - 1), 2^bits - 1]``.
    * Mode decision: the mode with the fewest estimated bits for the whole block (mode
      bins + SKIP + residual), estimated with the contexts' current probabilities (not
      updated during the estimate; the Rice parameter held). Ties: the lower mode index
      (Pal, Hor, Ver, Fil1, Fil2). (The mpm is priced first and bounds the others'
      estimates, which stop once over it: a speed-up that never changes the choice.)
    * mpm: the most frequent mode among the available left, top and top-left blocks;
      ties go to the left block's mode, then the top's, then the top-left's; with no
      neighbour available, Pal. A mode other than the mpm is coded as its index among
      the other four (ascending) in 2 bins (contexts: first bin; second bin given the
      first). One context for the mpm flag.

Residual coding
    * Order in a block: mode, SKIP flag, significance map, greater-1 flags of every
      non-zero, greater-2 flags of every value > 1, signs of every non-zero, remainders
      ``|r| - 3`` of every value > 2, each pass in scan order (HEVC's grouping; no limit
      on the number of greater-1/2 flags). Scans: Hor -> horizontal (row by row), Ver ->
      vertical (column by column), Pal / Fil -> zig-zag (JPEG's).
    * SKIP: 3 contexts, by how many of the left and top blocks were skipped.
    * Significance map: a flag per position in scan order, except that the last position
      is inferred to be significant when no earlier one is (the block is not skipped);
      contexts by (scan type) x (number of significant left / top neighbours inside the
      block: both are always earlier in all three scans) = 9.
    * Greater-1: HEVC's 4 contexts (``ctx = 0`` once a greater-1 flag of the block was
      1, else 1, 2, 3 counting the preceding 0 flags). Greater-2: one context per scan
      type (3).
    * Signs are context coded, one context per prediction mode (5): after Pal with
      ``p[j*] = 0`` (ReLU features) residuals are almost all positive.
    * Remainders: Exp-Golomb-Rice with parameter ``k``: ``q = rem >> k``; ``q < 4``:
      ``q`` ones and a zero (context coded, a context per bin position, 4), then ``k``
      bypass bins; else 4 ones and ``rem - (4 << k)`` in Exp-Golomb of order ``k + 1``
      (bypass). ``k`` is JPEG-LS's adaptive Golomb parameter: the smallest ``k`` with
      ``N << k >= A``, ``A`` the sum and ``N`` the count of the remainders coded so far
      in the stream (packet), ``A`` starting at ``max(2, (2^bits + 32) >> 6)``, ``N`` at
      1, both halved when ``N`` reaches 32.

Coder and robustness
    * Initial probabilities (like CABAC's initialisation tables, the same for every
      packet): fitted once to quantized features (:data:`INIT_PROB`, :func:`_init_prob`);
      adaptation: :mod:`dfsim.codecs.cabac` (count-based start, then a 1/40 window).
    * Per packet the coder, the contexts, the Rice statistics and the mode/SKIP maps
      start afresh. The whole-tensor stream starts them once.
    * A payload is rejected (``ok`` False / :class:`PayloadError`) when its termination is
      not canonical (bytes left unread, a trailing zero byte, a final window that is not
      the canonical one: :mod:`dfsim.codecs.cabac`), when a decoded value falls outside
      ``[0, 2^bits - 1]`` or a remainder exceeds the largest possible, when an
      Exp-Golomb prefix is longer than any valid one, or when the first four bytes cannot
      start a stream. Decoding is bounded by the number of values, whatever the input.
    * The code has no redundancy by default, so a truncated or bit-flipped payload often
      still decodes (to wrong values; on the 8-bit default features in 1-, 4- and 8-row
      packets, ``benchmarks/decoder-robustness.md``: 97-99 % of payloads without their
      last byte, 3-7 % without their first, 19-24 % with one bit flipped, 1-5 % with a
      byte appended): integrity is the transport's CRC-32
      (:meth:`~dfsim.codecs.base.PacketBytes.intact`), which the codec base checks
      first. ``check_bits = k > 0`` appends a k-bit hash of the decoded values (FNV-1a +
      murmur3 finaliser; k bypass bins) to every stream, so the decoder itself rejects
      damage with probability ~1 - 2^-k (k = 8: 99.9-100 % of every kind rejected in the
      same benchmark).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from numba import njit

from dfsim.codecs.base import PacketBytes, PacketCodec, PayloadError, TensorCode
from dfsim.codecs.cabac import (
    D_SIZE,
    E_NBINS,
    E_SIZE,
    HALF,
    bin_cost,
    dec_bin,
    dec_bits,
    dec_bypass,
    dec_finish,
    dec_init,
    enc_bin,
    enc_bits,
    enc_bypass,
    enc_init,
    enc_run,
    reset_contexts,
)
from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS
from dfsim.registry import Range, register

PAL, HOR, VER, FIL1, FIL2 = 0, 1, 2, 3, 4
MODE_NAMES = ("Pal", "Hor", "Ver", "Fil1", "Fil2")
N_MODES = 5
PALETTE_SIZE = 8
# 3-tap filters: (top-left, top, left) / 32
FIL_TAPS = np.array([[3, 7, 22], [14, 0, 18]], np.int64)

# scans of a 4x4 block (positions r * 4 + c): horizontal, vertical, zig-zag
SCAN_HOR, SCAN_VER, SCAN_ZIG = 0, 1, 2
SCANS = np.array(
    [
        list(range(16)),
        [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15],
        [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15],
    ],
    np.int64,
)
MODE_SCAN = np.array([SCAN_ZIG, SCAN_HOR, SCAN_VER, SCAN_ZIG, SCAN_ZIG], np.int64)

# contexts
CTX_TU = 0  # 7: truncated unary j*
CTX_MPM = 7  # 1
CTX_MODE = 8  # 3: first bin, second bin given the first
CTX_SKIP = 11  # 3
CTX_SIG = 14  # 9: scan type x (significant left + top)
CTX_GT1 = 23  # 4
CTX_GT2 = 27  # 3: scan type
CTX_SIGN = 30  # 5: mode
CTX_PRE = 35  # 4: EGR prefix bin position
N_CTX = 39

RICE_RESET = 32
# bins per value at most: significance, greater-1/2, sign, 4 prefix bins, an Exp-Golomb
# prefix and suffix of at most 18 each (remainders < 2^16), plus per block / tile: mode 3,
# SKIP 1, j* 7
BINS_PER_VALUE = 48
BINS_EXTRA = 64
EG_MAX_PREFIX = 24  # longer Exp-Golomb prefixes are never valid (remainders < 2^16)


def _init_prob() -> np.ndarray:
    """Initial P(bin = 1) of every context (16-bit): 1/2, except where a prior fitted
    once helped (coordinate search on an 11-value grid, minimising the bits of 4-row
    packets of 8-bit features of the default model, the Fashion-MNIST ResNet, at all
    five split points, test images 200-211); the adaptation then takes over."""
    p = np.full(N_CTX, HALF, np.int64)
    p[CTX_TU : CTX_TU + 7] = [43000, 57000, 51000, 57000, 51000, 43000, 43000]
    p[CTX_MPM] = 43000
    p[CTX_MODE : CTX_MODE + 3] = [43000, 43000, 1500]
    p[CTX_SKIP : CTX_SKIP + 3] = [8000, 32768, 32768]
    p[CTX_SIG : CTX_SIG + 9] = [32768, 51000, 61500, 43000, 57000, 61500, 32768, 51000, 57000]
    p[CTX_GT1 : CTX_GT1 + 4] = [57000, 57000, 43000, 32768]
    p[CTX_GT2 : CTX_GT2 + 3] = [51000, 51000, 57000]
    p[CTX_SIGN : CTX_SIGN + 5] = [1500, 22000, 32768, 32768, 64000]
    return p


INIT_PROB = _init_prob()


# ------------------------------------------------------------------------------- shared
@njit(cache=True)
def _rice_k(rice) -> int:
    a, n = rice[0], rice[1]
    k = 0
    while (n << k) < a and k < 16:
        k += 1
    return k


@njit(cache=True)
def _rice_update(rice, rem) -> None:
    rice[0] += rem
    rice[1] += 1
    if rice[1] >= RICE_RESET:
        rice[0] >>= 1
        rice[1] >>= 1


@njit(cache=True)
def _rice_init(rice, bits) -> None:
    rice[0] = max(2, ((1 << bits) + 32) >> 6)
    rice[1] = 1


@njit(cache=True)
def _mpm(modes, by, bx, nbx) -> int:
    """Most probable mode: the most frequent among the left, top and top-left blocks
    (inside the tile), ties to the left's, then the top's; Pal when none exists."""
    left = modes[by * nbx + bx - 1] if bx > 0 else -1
    top = modes[(by - 1) * nbx + bx] if by > 0 else -1
    tl = modes[(by - 1) * nbx + bx - 1] if (bx > 0 and by > 0) else -1
    if top >= 0 and top == tl and top != left:
        return top  # two votes against at most one
    if left >= 0:
        return left
    if top >= 0:
        return top
    return PAL


@njit(cache=True, inline="always")
def _prediction(x, y, xx, y0, x0, mode, p):
    """The prediction of value (y, xx) of the block at (y0, x0) under ``mode``; outside the
    tile or packet, the chosen palette value ``p`` stands in."""
    if mode == PAL:
        return p
    if mode == HOR:
        return x[y, x0 - 1] if x0 > 0 else p
    if mode == VER:
        return x[y0 - 1, xx] if y0 > 0 else p
    f = mode - FIL1
    left = x[y, xx - 1] if xx > 0 else p
    top = x[y - 1, xx] if y > 0 else p
    tl = x[y - 1, xx - 1] if (xx > 0 and y > 0) else p
    return (FIL_TAPS[f, 0] * tl + FIL_TAPS[f, 1] * top + FIL_TAPS[f, 2] * left + 16) >> 5


@njit(cache=True)
def _residual(x, y0, x0, bh, bw, mode, p, res) -> int:
    """res[r * 4 + c] = x - prediction of ``mode`` for the block at (y0, x0) (0 outside
    a partial block); returns the sum of absolute residuals."""
    for i in range(16):
        res[i] = 0
    sad = 0
    for r in range(bh):
        y = y0 + r
        for c in range(bw):
            xx = x0 + c
            pred = _prediction(x, y, xx, y0, x0, mode, p)
            d = x[y, xx] - pred
            res[r * 4 + c] = d
            sad += d if d >= 0 else -d
    return sad


@njit(cache=True)
def _reconstruct(x, y0, x0, bh, bw, mode, p, res, maxv) -> bool:
    """x = prediction + res (raster order inside the block); False if out of range."""
    for r in range(bh):
        y = y0 + r
        for c in range(bw):
            xx = x0 + c
            pred = _prediction(x, y, xx, y0, x0, mode, p)
            v = pred + res[r * 4 + c]
            if v < 0 or v > maxv:
                return False
            x[y, xx] = v
    return True


@njit(cache=True)
def _scan_positions(scan_type, bh, bw, order) -> int:
    """The block's positions in scan order (``order``); returns how many."""
    m = 0
    for i in range(16):
        pos = SCANS[scan_type, i]
        if (pos >> 2) < bh and (pos & 3) < bw:
            order[m] = pos
            m += 1
    return m


# ------------------------------------------------------------------------------- encoder
@njit(cache=True)
def _enc_mode(es, rec, cp, cn, mode, mpm) -> None:
    if mode == mpm:
        enc_bin(es, rec, cp, cn, CTX_MPM, 1)
        return
    enc_bin(es, rec, cp, cn, CTX_MPM, 0)
    idx = mode - 1 if mode > mpm else mode
    b1 = idx >> 1
    enc_bin(es, rec, cp, cn, CTX_MODE, b1)
    enc_bin(es, rec, cp, cn, CTX_MODE + 1 + b1, idx & 1)


@njit(cache=True)
def _mode_cost(cp, mode, mpm) -> float:
    if mode == mpm:
        return bin_cost(cp[CTX_MPM], 1)
    idx = mode - 1 if mode > mpm else mode
    b1 = idx >> 1
    return (
        bin_cost(cp[CTX_MPM], 0)
        + bin_cost(cp[CTX_MODE], b1)
        + bin_cost(cp[CTX_MODE + 1 + b1], idx & 1)
    )


# the encoder's price list, refreshed before each block's mode decision
TAB_SIG = 0  # scan type * 6 + (significant left + top) * 2 + flag
TAB_GT1 = 18  # ctx * 2 + flag
TAB_GT2 = 26  # scan type * 2 + flag
TAB_SIGN = 32  # mode * 2 + sign
TAB_PRE = 42  # EGR prefix of q = 0 .. 3, then q >= 4 (its 4 context-coded ones)
TAB_SIZE = 47


@njit(cache=True)
def _cost_table(cp, tab) -> None:
    """Bits of every context-coded bin of a residual, at the contexts' current state."""
    for i in range(9):
        c = cp[CTX_SIG + i]
        tab[TAB_SIG + 2 * i] = bin_cost(c, 0)
        tab[TAB_SIG + 2 * i + 1] = bin_cost(c, 1)
    for i in range(4):
        tab[TAB_GT1 + 2 * i] = bin_cost(cp[CTX_GT1 + i], 0)
        tab[TAB_GT1 + 2 * i + 1] = bin_cost(cp[CTX_GT1 + i], 1)
    for i in range(3):
        tab[TAB_GT2 + 2 * i] = bin_cost(cp[CTX_GT2 + i], 0)
        tab[TAB_GT2 + 2 * i + 1] = bin_cost(cp[CTX_GT2 + i], 1)
    for i in range(5):
        tab[TAB_SIGN + 2 * i] = bin_cost(cp[CTX_SIGN + i], 0)
        tab[TAB_SIGN + 2 * i + 1] = bin_cost(cp[CTX_SIGN + i], 1)
    ones = 0.0
    for q in range(4):
        tab[TAB_PRE + q] = ones + bin_cost(cp[CTX_PRE + q], 0)
        ones += bin_cost(cp[CTX_PRE + q], 1)
    tab[TAB_PRE + 4] = ones


@njit(cache=True)
def _residual_cost(tab, k, res, bh, bw, mode, limit) -> float:
    """Estimated bits of a non-skipped block's residual: the bins
    :func:`_enc_residual` would code, priced by :func:`_cost_table` (no adaptation
    inside the block, Rice parameter ``k`` held). Stops early once over ``limit``."""
    st = MODE_SCAN[mode]
    n_valid = bh * bw
    sig0 = TAB_SIG + st * 6
    gt2 = TAB_GT2 + st * 2
    sign = TAB_SIGN + mode * 2
    cost = 0.0
    sigmask = 0
    idx = 0
    c1 = 1
    for i in range(16):
        pos = SCANS[st, i]
        r = pos >> 2
        c = pos & 3
        if r >= bh or c >= bw:
            continue
        idx += 1
        v = res[pos]
        if idx < n_valid or sigmask != 0:  # else: the last position, inferred significant
            nb = 0
            if c > 0:
                nb += (sigmask >> (pos - 1)) & 1
            if r > 0:
                nb += (sigmask >> (pos - 4)) & 1
            cost += tab[sig0 + nb * 2 + (1 if v != 0 else 0)]
        if v == 0:
            continue
        if cost > limit:
            return cost
        sigmask |= 1 << pos
        if v > 0:
            a = v
            cost += tab[sign]
        else:
            a = -v
            cost += tab[sign + 1]
        if a == 1:
            cost += tab[TAB_GT1 + 2 * c1]
            if 0 < c1 < 3:
                c1 += 1
            continue
        cost += tab[TAB_GT1 + 2 * c1 + 1]
        c1 = 0
        if a == 2:
            cost += tab[gt2]
            continue
        cost += tab[gt2 + 1]
        rem = a - 3
        q = rem >> k
        if q < 4:
            cost += tab[TAB_PRE + q] + k
        else:
            t = rem - (4 << k)
            e = k + 1
            while t >= (1 << e):
                t -= 1 << e
                e += 1
                cost += 1.0
            cost += tab[TAB_PRE + 4] + 1.0 + e
    return cost


@njit(cache=True)
def _enc_remainder(es, rec, cp, cn, rem, k) -> None:
    """Exp-Golomb-Rice: q = rem >> k; q < 4: q ones, a zero (contexts), k bypass bins;
    else 4 ones, then rem - (4 << k) in Exp-Golomb of order k + 1 (bypass)."""
    q = rem >> k
    if q < 4:
        for j in range(q):
            enc_bin(es, rec, cp, cn, CTX_PRE + j, 1)
        enc_bin(es, rec, cp, cn, CTX_PRE + q, 0)
        enc_bits(es, rec, rem, k)
    else:
        for j in range(4):
            enc_bin(es, rec, cp, cn, CTX_PRE + j, 1)
        t = rem - (4 << k)
        e = k + 1
        while t >= (1 << e):
            enc_bypass(es, rec, 1)
            t -= 1 << e
            e += 1
        enc_bypass(es, rec, 0)
        enc_bits(es, rec, t, e)


@njit(cache=True)
def _enc_residual(es, rec, cp, cn, rice, res, bh, bw, mode, order, sig) -> None:
    """Code a non-skipped block's residual."""
    st = MODE_SCAN[mode]
    m = _scan_positions(st, bh, bw, order)
    for i in range(16):
        sig[i] = 0
    seen = False
    for i in range(m):
        pos = order[i]
        s = 1 if res[pos] != 0 else 0
        if i == m - 1 and not seen:
            sig[pos] = 1  # inferred
            break
        r = pos >> 2
        c = pos & 3
        nb = 0
        if c > 0:
            nb += sig[pos - 1]
        if r > 0:
            nb += sig[pos - 4]
        enc_bin(es, rec, cp, cn, CTX_SIG + st * 3 + nb, s)
        sig[pos] = s
        if s:
            seen = True
    # greater-1
    c1 = 1
    for i in range(m):
        a = abs(res[order[i]])
        if a == 0:
            continue
        g = 1 if a > 1 else 0
        enc_bin(es, rec, cp, cn, CTX_GT1 + c1, g)
        if g:
            c1 = 0
        elif 0 < c1 < 3:
            c1 += 1
    # greater-2
    for i in range(m):
        a = abs(res[order[i]])
        if a > 1:
            enc_bin(es, rec, cp, cn, CTX_GT2 + st, 1 if a > 2 else 0)
    # signs
    for i in range(m):
        v = res[order[i]]
        if v != 0:
            enc_bin(es, rec, cp, cn, CTX_SIGN + mode, 1 if v < 0 else 0)
    # remainders
    k = _rice_k(rice)
    for i in range(m):
        a = abs(res[order[i]])
        if a <= 2:
            continue
        rem = a - 3
        _enc_remainder(es, rec, cp, cn, rem, k)
        _rice_update(rice, rem)
        k = _rice_k(rice)


@njit(cache=True)
def _choose_palette_index(x, h, w, pal) -> int:
    best = 0
    bsum = -1
    for j in range(8):
        pj = pal[j]
        s = 0
        for y in range(h):
            for c in range(w):
                d = x[y, c] - pj
                s += d if d >= 0 else -d
        if bsum < 0 or s < bsum:
            bsum = s
            best = j
    return best


@njit(cache=True)
def _enc_tu(es, rec, cp, cn, j) -> None:
    """Truncated unary code of j in 0..7 (Table II): j ones, then a zero if j < 7."""
    for i in range(7):
        if i < j:
            enc_bin(es, rec, cp, cn, CTX_TU + i, 1)
        else:
            enc_bin(es, rec, cp, cn, CTX_TU + i, 0)
            break


@njit(cache=True)
def _dec_tu(ds, data, cp, cn) -> int:
    j = 0
    while j < 7 and dec_bin(ds, data, cp, cn, CTX_TU + j):
        j += 1
    return j


@njit(cache=True)
def _enc_tile(es, rec, cp, cn, rice, x, h, w, pal, modes, skips, work):
    """Code one tile (or packet) ``x[:h, :w]`` with palette ``pal`` (current order)."""
    js = _choose_palette_index(x, h, w, pal)
    _enc_tu(es, rec, cp, cn, js)
    p = pal[js]
    nby = (h + 3) >> 2
    nbx = (w + 3) >> 2
    res = work[0:80]  # 5 modes x 16
    order = work[80:96]
    sig = work[96:112]
    tab = np.empty(TAB_SIZE, np.float64)
    for by in range(nby):
        y0 = by * 4
        bh = min(4, h - y0)
        for bx in range(nbx):
            x0 = bx * 4
            bw = min(4, w - x0)
            mpm = _mpm(modes, by, bx, nbx)
            sc = CTX_SKIP
            if bx > 0:
                sc += skips[by * nbx + bx - 1]
            if by > 0:
                sc += skips[(by - 1) * nbx + bx]
            best = 0
            bcost = 1e300
            bskip = 0
            k = _rice_k(rice)
            _cost_table(cp, tab)
            skip0 = bin_cost(cp[sc], 0)
            skip1 = bin_cost(cp[sc], 1)
            for i in range(N_MODES):
                # the mpm first: usually the cheapest, it bounds the others' estimates
                mode = mpm if i == 0 else (i - 1 if i - 1 < mpm else i)
                r = res[mode * 16 : mode * 16 + 16]
                if _residual(x, y0, x0, bh, bw, mode, p, r) == 0:
                    c = _mode_cost(cp, mode, mpm) + skip1
                    z = 1
                else:
                    c = _mode_cost(cp, mode, mpm) + skip0
                    c += _residual_cost(tab, k, r, bh, bw, mode, bcost - c)
                    z = 0
                if c < bcost or (c == bcost and mode < best):  # ties: the lower mode
                    bcost = c
                    best = mode
                    bskip = z
            _enc_mode(es, rec, cp, cn, best, mpm)
            enc_bin(es, rec, cp, cn, sc, bskip)
            if not bskip:
                r = res[best * 16 : best * 16 + 16]
                _enc_residual(es, rec, cp, cn, rice, r, bh, bw, best, order, sig)
            modes[by * nbx + bx] = best
            skips[by * nbx + bx] = bskip
    return js


# ------------------------------------------------------------------------------- decoder
@njit(cache=True)
def _dec_remainder(ds, data, cp, cn, k, maxrem) -> int:
    """Inverse of :func:`_enc_remainder`; -1 if the prefix is overlong or the remainder
    exceeds ``maxrem``."""
    q = 0
    while q < 4 and dec_bin(ds, data, cp, cn, CTX_PRE + q):
        q += 1
    if q < 4:
        rem = (q << k) | dec_bits(ds, data, k)
    else:
        rem = 4 << k
        e = k + 1
        n = 0
        while dec_bypass(ds, data):
            rem += 1 << e
            e += 1
            n += 1
            if n > EG_MAX_PREFIX:
                return -1
        rem += dec_bits(ds, data, e)
    if rem > maxrem:
        return -1
    return rem


@njit(cache=True)
def _dec_residual(ds, data, cp, cn, rice, res, bh, bw, mode, order, sig, maxrem) -> bool:
    st = MODE_SCAN[mode]
    m = _scan_positions(st, bh, bw, order)
    for i in range(16):
        sig[i] = 0
        res[i] = 0
    seen = False
    for i in range(m):
        pos = order[i]
        if i == m - 1 and not seen:
            sig[pos] = 1
            break
        r = pos >> 2
        c = pos & 3
        nb = 0
        if c > 0:
            nb += sig[pos - 1]
        if r > 0:
            nb += sig[pos - 4]
        s = dec_bin(ds, data, cp, cn, CTX_SIG + st * 3 + nb)
        sig[pos] = s
        if s:
            seen = True
    c1 = 1
    for i in range(m):
        pos = order[i]
        if sig[pos]:
            g = dec_bin(ds, data, cp, cn, CTX_GT1 + c1)
            res[pos] = 1 + g
            if g:
                c1 = 0
            elif 0 < c1 < 3:
                c1 += 1
    for i in range(m):
        pos = order[i]
        if res[pos] > 1:
            res[pos] += dec_bin(ds, data, cp, cn, CTX_GT2 + st)
    for i in range(m):
        pos = order[i]
        if res[pos] != 0:
            if dec_bin(ds, data, cp, cn, CTX_SIGN + mode):
                res[pos] = -res[pos]
    k = _rice_k(rice)
    for i in range(m):
        pos = order[i]
        a = res[pos]
        if a != 3 and a != -3:
            continue
        rem = _dec_remainder(ds, data, cp, cn, k, maxrem)
        if rem < 0:
            return False
        res[pos] = a + rem if a > 0 else a - rem
        _rice_update(rice, rem)
        k = _rice_k(rice)
    return True


@njit(cache=True)
def _dec_tile(ds, data, cp, cn, rice, x, h, w, pal, modes, skips, work, maxv) -> bool:
    js = _dec_tu(ds, data, cp, cn)
    p = pal[js]
    nby = (h + 3) >> 2
    nbx = (w + 3) >> 2
    res = work[0:16]
    order = work[80:96]
    sig = work[96:112]
    maxrem = maxv - 3
    for by in range(nby):
        y0 = by * 4
        bh = min(4, h - y0)
        for bx in range(nbx):
            x0 = bx * 4
            bw = min(4, w - x0)
            mpm = _mpm(modes, by, bx, nbx)
            if dec_bin(ds, data, cp, cn, CTX_MPM):
                mode = mpm
            else:
                b1 = dec_bin(ds, data, cp, cn, CTX_MODE)
                idx = b1 * 2 + dec_bin(ds, data, cp, cn, CTX_MODE + 1 + b1)
                mode = idx + 1 if idx >= mpm else idx
            sc = CTX_SKIP
            if bx > 0:
                sc += skips[by * nbx + bx - 1]
            if by > 0:
                sc += skips[(by - 1) * nbx + bx]
            skip = dec_bin(ds, data, cp, cn, sc)
            if skip:
                for i in range(16):
                    res[i] = 0
            elif not _dec_residual(ds, data, cp, cn, rice, res, bh, bw, mode, order, sig, maxrem):
                return False
            if not _reconstruct(x, y0, x0, bh, bw, mode, p, res, maxv):
                return False
            modes[by * nbx + bx] = mode
            skips[by * nbx + bx] = skip
    return True


# ------------------------------------------------------------------------------- packets
@njit(cache=True)
def _hash(x, h, w, seed) -> int:
    """32-bit hash of the values x[:h, :w] (FNV-1a steps, then murmur3's finaliser)."""
    v = (seed ^ 0x811C9DC5) & 0xFFFFFFFF
    for y in range(h):
        for c in range(w):
            v = ((v ^ x[y, c]) * 0x01000193) & 0xFFFFFFFF
    v ^= v >> 16
    v = (v * 0x85EBCA6B) & 0xFFFFFFFF
    v ^= v >> 13
    v = (v * 0xC2B2AE35) & 0xFFFFFFFF
    v ^= v >> 16
    return v


@njit(cache=True)
def _encode_packets(packets, nrows, palettes, bits, check_bits, init):
    n_pk, rmax, w = packets.shape
    offsets = np.zeros(n_pk + 1, np.int64)
    ideal = np.zeros(n_pk, np.float64)
    n_bins = BINS_PER_VALUE * rmax * w + BINS_EXTRA
    rec = np.zeros(n_bins, np.int64)
    scratch = np.zeros((n_bins * 11) // 8 + 16, np.uint8)
    out = np.zeros(max(1024, n_pk * rmax * w // 2), np.uint8)
    x = np.zeros((max(rmax, 1), max(w, 1)), np.int64)
    es = np.zeros(E_SIZE, np.int64)
    cp = np.zeros(N_CTX, np.int64)
    cn = np.zeros(N_CTX, np.int64)
    rice = np.zeros(2, np.int64)
    nb = ((rmax + 3) >> 2) * ((w + 3) >> 2)
    modes = np.zeros(max(nb, 1), np.int64)
    skips = np.zeros(max(nb, 1), np.int64)
    work = np.zeros(112, np.int64)
    total = 0
    for j in range(n_pk):
        h = nrows[j]
        for y in range(h):
            for c in range(w):
                x[y, c] = packets[j, y, c]
        enc_init(es)
        reset_contexts(cp, cn, init)
        _rice_init(rice, bits)
        if h > 0 and w > 0:
            _enc_tile(es, rec, cp, cn, rice, x, h, w, palettes[j], modes, skips, work)
        if check_bits > 0:
            enc_bits(es, rec, _hash(x, h, w, 0), check_bits)
        n, ideal[j] = enc_run(rec, es[E_NBINS], scratch)
        if total + n > len(out):
            bigger = np.zeros(max(2 * len(out), total + n), np.uint8)
            bigger[:total] = out[:total]
            out = bigger
        out[total : total + n] = scratch[:n]
        total += n
        offsets[j + 1] = total
    return out[:total].copy(), offsets, ideal


@njit(cache=True)
def _decode_packets(data, starts, ends, nrows, w, palettes, bits, check_bits, init):
    n_pk = len(starts)
    rmax = 0
    for j in range(n_pk):
        rmax = max(rmax, nrows[j])
    out = np.zeros((n_pk, rmax, w), np.uint16)
    ok = np.ones(n_pk, np.bool_)
    x = np.zeros((max(rmax, 1), max(w, 1)), np.int64)
    ds = np.zeros(D_SIZE, np.int64)
    cp = np.zeros(N_CTX, np.int64)
    cn = np.zeros(N_CTX, np.int64)
    rice = np.zeros(2, np.int64)
    nb = ((rmax + 3) >> 2) * ((w + 3) >> 2)
    modes = np.zeros(max(nb, 1), np.int64)
    skips = np.zeros(max(nb, 1), np.int64)
    work = np.zeros(112, np.int64)
    maxv = (1 << bits) - 1
    for j in range(n_pk):
        h = nrows[j]
        reset_contexts(cp, cn, init)
        _rice_init(rice, bits)
        good = dec_init(ds, data, starts[j], ends[j])
        if good and h > 0 and w > 0:
            good = _dec_tile(ds, data, cp, cn, rice, x, h, w, palettes[j], modes, skips, work, maxv)
        if good and check_bits > 0:
            mask = (1 << check_bits) - 1
            good = dec_bits(ds, data, check_bits) == (_hash(x, h, w, 0) & mask)
        if good:
            good = dec_finish(ds, data)
        if good:
            for y in range(h):
                for c in range(w):
                    out[j, y, c] = x[y, c]
        else:
            ok[j] = False
    return out, ok


# ------------------------------------------------------------------------------- tensor
@njit(cache=True)
def _stable_sort_by_count(pal, counts) -> None:
    """Insertion sort of ``pal`` by ``counts`` descending, ties keeping their order."""
    for i in range(1, 8):
        v = pal[i]
        c = counts[i]
        j = i - 1
        while j >= 0 and counts[j] < c:
            pal[j + 1] = pal[j]
            counts[j + 1] = counts[j]
            j -= 1
        pal[j + 1] = v
        counts[j + 1] = c


@njit(cache=True)
def _count_into(x, h, w, pal, counts) -> None:
    for y in range(h):
        for c in range(w):
            v = x[y, c]
            for j in range(8):
                if pal[j] == v:
                    counts[j] += 1


@njit(cache=True)
def _encode_tensor(codes, pal0, bits, check_bits, init):
    n_ch, h, w = codes.shape
    n_bins = BINS_PER_VALUE * n_ch * h * w + BINS_EXTRA * n_ch + PALETTE_SIZE * bits + 16
    rec = np.zeros(n_bins, np.int64)
    es = np.zeros(E_SIZE, np.int64)
    cp = np.zeros(N_CTX, np.int64)
    cn = np.zeros(N_CTX, np.int64)
    rice = np.zeros(2, np.int64)
    nb = ((h + 3) >> 2) * ((w + 3) >> 2)
    modes = np.zeros(max(nb, 1), np.int64)
    skips = np.zeros(max(nb, 1), np.int64)
    work = np.zeros(112, np.int64)
    x = np.zeros((h, w), np.int64)
    enc_init(es)
    reset_contexts(cp, cn, init)
    _rice_init(rice, bits)
    pal = pal0.copy()
    for i in range(PALETTE_SIZE):
        enc_bits(es, rec, pal[i], bits)
    counts = np.zeros(PALETTE_SIZE, np.int64)
    check = 0
    for t in range(n_ch):
        if t > 0:
            _stable_sort_by_count(pal, counts)
        for y in range(h):
            for c in range(w):
                x[y, c] = codes[t, y, c]
        _enc_tile(es, rec, cp, cn, rice, x, h, w, pal, modes, skips, work)
        _count_into(x, h, w, pal, counts)
        check = _hash(x, h, w, check)
    if check_bits > 0:
        enc_bits(es, rec, check, check_bits)
    buf = np.zeros((es[E_NBINS] * 11) // 8 + 16, np.uint8)
    n, ideal = enc_run(rec, es[E_NBINS], buf)
    return buf[:n].copy(), ideal


@njit(cache=True)
def _decode_tensor(data, n_ch, h, w, bits, check_bits, init):
    out = np.zeros((n_ch, h, w), np.uint16)
    ds = np.zeros(D_SIZE, np.int64)
    cp = np.zeros(N_CTX, np.int64)
    cn = np.zeros(N_CTX, np.int64)
    rice = np.zeros(2, np.int64)
    nb = ((h + 3) >> 2) * ((w + 3) >> 2)
    modes = np.zeros(max(nb, 1), np.int64)
    skips = np.zeros(max(nb, 1), np.int64)
    work = np.zeros(112, np.int64)
    x = np.zeros((h, w), np.int64)
    maxv = (1 << bits) - 1
    if not dec_init(ds, data, 0, len(data)):
        return out, False
    reset_contexts(cp, cn, init)
    _rice_init(rice, bits)
    pal = np.zeros(PALETTE_SIZE, np.int64)
    for i in range(PALETTE_SIZE):
        pal[i] = dec_bits(ds, data, bits)
    counts = np.zeros(PALETTE_SIZE, np.int64)
    check = 0
    for t in range(n_ch):
        if t > 0:
            _stable_sort_by_count(pal, counts)
        if not _dec_tile(ds, data, cp, cn, rice, x, h, w, pal, modes, skips, work, maxv):
            return out, False
        _count_into(x, h, w, pal, counts)
        check = _hash(x, h, w, check)
        for y in range(h):
            for c in range(w):
                out[t, y, c] = x[y, c]
    if check_bits > 0 and dec_bits(ds, data, check_bits) != (check & ((1 << check_bits) - 1)):
        return out, False
    return out, dec_finish(ds, data)


# ------------------------------------------------------------------------------- for tests
@njit(cache=True)
def _trace_packet(codes, pal, bits, init):
    """Encode one packet (h x w) and return its bins (0/1, in coding order), each
    block's mode and SKIP flag (nby x nbx) and j*."""
    h, w = codes.shape
    x = np.zeros((h, w), np.int64)
    for y in range(h):
        for c in range(w):
            x[y, c] = codes[y, c]
    rec = np.zeros(BINS_PER_VALUE * h * w + BINS_EXTRA, np.int64)
    es = np.zeros(E_SIZE, np.int64)
    cp = np.zeros(N_CTX, np.int64)
    cn = np.zeros(N_CTX, np.int64)
    rice = np.zeros(2, np.int64)
    reset_contexts(cp, cn, init)
    _rice_init(rice, bits)
    enc_init(es)
    nby = (h + 3) >> 2
    nbx = (w + 3) >> 2
    modes = np.zeros(nby * nbx, np.int64)
    skips = np.zeros(nby * nbx, np.int64)
    work = np.zeros(112, np.int64)
    js = _enc_tile(es, rec, cp, cn, rice, x, h, w, pal, modes, skips, work)
    bins = rec[: es[E_NBINS]] & 1
    return bins, modes.reshape(nby, nbx), skips.reshape(nby, nbx), js


@njit(cache=True)
def _remainder_bins(rem, k):
    """The bins of one Exp-Golomb-Rice remainder."""
    rec = np.zeros(64, np.int64)
    es = np.zeros(E_SIZE, np.int64)
    cp = np.full(N_CTX, HALF, np.int64)
    cn = np.zeros(N_CTX, np.int64)
    _enc_remainder(es, rec, cp, cn, rem, k)
    return rec[: es[E_NBINS]] & 1


@njit(cache=True)
def _residual_round_trip(blocks, bh, bw, modes, bits, init):
    """Code residual blocks (n x 16, raster positions) of size bh x bw with ``modes``,
    SKIP-less, one stream, then decode them: (decoded n x 16, ok, ideal bits, bytes)."""
    n = len(blocks)
    rec = np.zeros(BINS_PER_VALUE * 16 * n + BINS_EXTRA, np.int64)
    es = np.zeros(E_SIZE, np.int64)
    cp = np.zeros(N_CTX, np.int64)
    cn = np.zeros(N_CTX, np.int64)
    rice = np.zeros(2, np.int64)
    work = np.zeros(112, np.int64)
    reset_contexts(cp, cn, init)
    _rice_init(rice, bits)
    enc_init(es)
    for i in range(n):
        _enc_residual(es, rec, cp, cn, rice, blocks[i], bh, bw, modes[i], work[80:96], work[96:112])
    buf = np.zeros((es[E_NBINS] * 11) // 8 + 16, np.uint8)
    m, ideal = enc_run(rec, es[E_NBINS], buf)
    data = buf[:m].copy()
    out = np.zeros((n, 16), np.int64)
    ds = np.zeros(D_SIZE, np.int64)
    reset_contexts(cp, cn, init)
    _rice_init(rice, bits)
    ok = dec_init(ds, data, 0, m)
    for i in range(n):
        if ok:
            ok = _dec_residual(
                ds,
                data,
                cp,
                cn,
                rice,
                out[i],
                bh,
                bw,
                modes[i],
                work[80:96],
                work[96:112],
                (1 << bits) - 4,
            )
    if ok:
        ok = dec_finish(ds, data)
    return out, ok, ideal, m


# ------------------------------------------------------------------------------- public API
MAX_CHECK_BITS = 16


def _valid_bits(bits) -> int:
    if not (isinstance(bits, (int, np.integer)) and MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return int(bits)


def _valid_check(check_bits) -> int:
    if not (isinstance(check_bits, (int, np.integer)) and 0 <= check_bits <= MAX_CHECK_BITS):
        raise ValueError(
            f"check_bits must be an integer in [0, {MAX_CHECK_BITS}], got {check_bits!r}"
        )
    return int(check_bits)


def _code_dtype(bits: int):
    return np.uint8 if bits <= 8 else np.uint16


def _as_codes(codes, bits: int, what: str) -> np.ndarray:
    a = np.asarray(codes)
    if a.dtype.kind not in "ui":
        raise ValueError(f"{what} must be integer codes, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > (1 << bits) - 1):
        raise ValueError(f"{what} hold values outside [0, {(1 << bits) - 1}] ({bits} bits)")
    return np.ascontiguousarray(a, dtype=np.uint16)


def _as_palettes(palettes, n: int, bits: int) -> np.ndarray:
    pal = np.ascontiguousarray(palettes, dtype=np.int64)
    if pal.shape != (n, PALETTE_SIZE):
        raise ValueError(f"palettes must be {n} x {PALETTE_SIZE}, got {pal.shape}")
    if pal.size and (pal.min() < 0 or pal.max() > (1 << bits) - 1):
        raise ValueError(f"palette values outside [0, {(1 << bits) - 1}] ({bits} bits)")
    return pal


def tensor_palette(codes: np.ndarray, bits: int | None = None) -> np.ndarray:
    """The palette of each tensor of ``codes`` (N x ...): its 8 most frequent values,
    most frequent first, ties to the smaller value; missing entries filled with the
    smallest absent values of ``[0, 2^bits)`` (``bits`` default: the largest code's bit
    length, at least 2); with ``2^bits < 8`` the values repeat cyclically. N x 8 int64."""
    a = np.asarray(codes)
    n = len(a)
    flat = a.reshape(n, -1)
    if bits is None:
        top = int(flat.max()) if flat.size else 0
        bits = max(MIN_BITS, top.bit_length())
    levels = 1 << int(bits)
    if flat.size and int(flat.max()) >= levels:
        raise ValueError(f"codes hold values outside [0, {levels - 1}] ({bits} bits)")
    out = np.zeros((n, PALETTE_SIZE), np.int64)
    k = min(PALETTE_SIZE, levels)
    for i in range(n):
        counts = np.bincount(flat[i], minlength=levels)
        out[i, :k] = np.argsort(-counts, kind="stable")[:k]  # ties: the smaller value
        for j in range(k, PALETTE_SIZE):
            out[i, j] = out[i, j - k]
    return out


def palette_side_bits(bits: int) -> int:
    """Side information per image: the 8 palette values, ``bits`` bits each."""
    return PALETTE_SIZE * bits


def encode_packets(
    packets: np.ndarray,
    nrows: np.ndarray,
    palettes: np.ndarray,
    bits: int,
    check_bits: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code P packets independently. ``packets``: P x r x w codes (rows past ``nrows[j]``
    ignored), ``palettes``: P x 8, each packet's image palette (:func:`tensor_palette`);
    ``check_bits``: a k-bit hash of the packet's values appended to each stream (k bypass
    bins; 0: none). Returns (data uint8: the payloads concatenated, offsets int64 P + 1,
    ideal bits float64 P: -sum log2 p of every bin under the adaptive model)."""
    bits = _valid_bits(bits)
    check_bits = _valid_check(check_bits)
    pk = _as_codes(packets, bits, "packets")
    if pk.ndim != 3:
        raise ValueError(f"packets must be P x rows x width, got shape {pk.shape}")
    nr = np.ascontiguousarray(nrows, dtype=np.int64).reshape(-1)
    if len(nr) != len(pk) or (len(nr) and (nr.min() < 0 or nr.max() > pk.shape[1])):
        raise ValueError("nrows must give each packet's valid rows (0 .. packets.shape[1])")
    pal = _as_palettes(palettes, len(pk), bits)
    return _encode_packets(pk, nr, pal, bits, check_bits, INIT_PROB)


def _decode_ranges(data, starts, ends, nrows, width, palettes, bits, check_bits=0):
    """Decode the payloads ``data[starts[j]:ends[j]]`` (see :func:`decode_packets`)."""
    bits = _valid_bits(bits)
    check_bits = _valid_check(check_bits)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    starts = np.ascontiguousarray(starts, dtype=np.int64).reshape(-1)
    ends = np.ascontiguousarray(ends, dtype=np.int64).reshape(-1)
    nr = np.ascontiguousarray(nrows, dtype=np.int64).reshape(-1)
    if not (len(starts) == len(ends) == len(nr)):
        raise ValueError("one (start, end, nrows) per packet")
    if len(nr) and (
        nr.min() < 0 or starts.min() < 0 or ends.max() > len(data) or (ends < starts).any()
    ):
        raise ValueError("offsets outside the data, or negative nrows")
    if width < 0:
        raise ValueError(f"width must be >= 0, got {width}")
    pal = _as_palettes(palettes, len(nr), bits)
    codes, ok = _decode_packets(
        data, starts, ends, nr, int(width), pal, bits, check_bits, INIT_PROB
    )
    return codes.astype(_code_dtype(bits), copy=False), ok


def decode_packets(
    data: np.ndarray,
    offsets: np.ndarray,
    nrows: np.ndarray,
    width: int,
    palettes: np.ndarray,
    bits: int,
    check_bits: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode P packets (payload j: ``data[offsets[j]:offsets[j + 1]]``) -> (codes
    P x max(nrows) x width, uint8 for bits <= 8 else uint16; ok P bool: False where a
    payload is detectably truncated or corrupted, its codes then zero). ``check_bits``
    as the packets were encoded with."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    return _decode_ranges(data, offsets[:-1], offsets[1:], nrows, width, palettes, bits, check_bits)


def encode_packet(codes: np.ndarray, palette: np.ndarray, bits: int, check_bits: int = 0) -> bytes:
    """One packet (rows x width codes) -> its payload."""
    c = np.asarray(codes)
    pal = np.asarray(palette)[None]
    return encode_packets(c[None], [c.shape[0]], pal, bits, check_bits)[0].tobytes()


def decode_packet(
    payload: bytes, rows: int, width: int, palette: np.ndarray, bits: int, check_bits: int = 0
) -> np.ndarray:
    """One payload -> its codes (rows x width); :class:`PayloadError` if it cannot be."""
    data = np.frombuffer(bytes(payload), np.uint8)
    pal = np.asarray(palette)[None]
    codes, ok = _decode_ranges(data, [0], [len(data)], [rows], width, pal, bits, check_bits)
    if not ok[0]:
        raise PayloadError("palette: the packet's payload cannot be decoded")
    return codes[0, :rows]


def first_tile_order(codes: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``palette`` stably sorted by the frequency of its values in the first tile
    (channel 0): the order the whole-tensor stream sends it in."""
    first = np.asarray(codes[0]).ravel()
    counts = np.array([(first == v).sum() for v in palette], np.int64)
    return np.asarray(palette, np.int64)[np.argsort(-counts, kind="stable")]


def tile_palette_orders(codes: np.ndarray, bits: int) -> np.ndarray:
    """The palette order each tile (channel) of the whole-tensor stream is coded with
    (C x 8): the first tile's frequency order, then the update rule."""
    bits = _valid_bits(bits)
    c = _as_codes(codes, bits, "codes")
    pal = first_tile_order(c, tensor_palette(c[None], bits)[0]).copy()
    out = np.zeros((len(c), PALETTE_SIZE), np.int64)
    counts = np.zeros(PALETTE_SIZE, np.int64)
    for t in range(len(c)):
        if t > 0:
            _stable_sort_by_count(pal, counts)
        out[t] = pal
        _count_into(c[t].astype(np.int64), c.shape[1], c.shape[2], pal, counts)
    return out


def encode_tensor(codes: np.ndarray, bits: int, check_bits: int = 0, return_ideal: bool = False):
    """Whole-tensor mode: one C x H x W tensor of codes -> one stream (palette included;
    ``check_bits`` hash bits of all the values at its end). With ``return_ideal``:
    (stream, ideal bits)."""
    bits = _valid_bits(bits)
    check_bits = _valid_check(check_bits)
    c = _as_codes(codes, bits, "codes")
    if c.ndim != 3 or min(c.shape) < 1:
        raise ValueError(f"codes must be a non-empty C x H x W tensor, got shape {c.shape}")
    pal = first_tile_order(c, tensor_palette(c[None], bits)[0])
    data, ideal = _encode_tensor(c, pal, bits, check_bits, INIT_PROB)
    return (data.tobytes(), float(ideal)) if return_ideal else data.tobytes()


def decode_tensor(
    payload: bytes, shape: tuple[int, int, int], bits: int, check_bits: int = 0
) -> np.ndarray:
    """Inverse of :func:`encode_tensor`; :class:`PayloadError` if it cannot be decoded."""
    bits = _valid_bits(bits)
    check_bits = _valid_check(check_bits)
    c, h, w = (int(s) for s in shape)
    if min(c, h, w) < 1:
        raise ValueError(f"shape must be a positive C x H x W, got {shape}")
    data = np.frombuffer(bytes(payload), np.uint8)
    out, ok = _decode_tensor(data, c, h, w, bits, check_bits, INIT_PROB)
    if not ok:
        raise PayloadError("palette: the tensor's stream cannot be decoded")
    return out.astype(_code_dtype(bits), copy=False)


# ------------------------------------------------------------------------------- the codec
@register("codec", "palette")
class PaletteCodec(PacketCodec):
    """Choi & Bajić's palette / 4x4-prediction / CABAC codec, each packet coded
    independently. Per image side information: the quantizer's min/max and the 8-value
    palette (``8 * bits`` bits). ``check_bits``: a hash of each packet's values at the
    end of its stream (0: none; the transport's CRC-32 already rejects damaged packets,
    the hash makes the decoder itself reject them with probability 1 - 2^-check_bits)."""

    def __init__(
        self,
        bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8,
        check_bits: Annotated[int, Range(0, MAX_CHECK_BITS)] = 0,
    ):
        super().__init__(bits)
        self.check_bits = _valid_check(check_bits)
        self.model_side_info_bits = palette_side_bits(self.bits)

    def tensor_side_info(self, codes: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The palette of each image (N x 8) and its bits (8 * bits each)."""
        pal = tensor_palette(codes, self.bits)
        return {"palette": pal}, np.full(len(pal), palette_side_bits(self.bits), np.int64)

    def encode_packets(self, packets, nrows, image, side):
        """Code every packet (numba, batched) -> (payloads, ideal bits per packet)."""
        pal = np.asarray(side["palette"])[np.asarray(image, np.int64)]
        data, offsets, ideal = encode_packets(packets, nrows, pal, self.bits, self.check_bits)
        return PacketBytes(data, offsets), ideal

    def decode_packets(self, payloads, which, nrows, width, image, side):
        """Decode packets ``which`` -> (codes len(which) x max(nrows) x width, ok)."""
        which = np.asarray(which, np.int64)
        pal = np.asarray(side["palette"])[np.asarray(image, np.int64)]
        return _decode_ranges(
            payloads.data,
            payloads.offsets[which],
            payloads.offsets[which + 1],
            nrows,
            width,
            pal,
            self.bits,
            self.check_bits,
        )

    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One packet (rows x width) with this image's side information -> payload."""
        return encode_packet(codes, side["palette"], self.bits, self.check_bits)

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """One payload -> codes (rows x width); :class:`PayloadError` if it cannot be."""
        return decode_packet(payload, rows, width, side["palette"], self.bits, self.check_bits)

    def ideal_packet_bits(self, codes: np.ndarray, side: dict) -> float:
        """-sum log2 p of the packet's bins under the adaptive model."""
        c = np.asarray(codes)
        pal = np.asarray(side["palette"])[None]
        return float(encode_packets(c[None], [c.shape[0]], pal, self.bits, self.check_bits)[2][0])

    def encode_tensor(self, codes: np.ndarray) -> TensorCode:
        """The paper's whole-tensor mode: tiles in raster order, one stream (the palette
        is inside the stream, so no side information beyond the quantizer's)."""
        return TensorCode(encode_tensor(codes, self.bits, self.check_bits), {}, 0)

    def decode_tensor(self, code: TensorCode, shape: tuple[int, int, int]) -> np.ndarray:
        """Inverse of :meth:`encode_tensor`; :class:`PayloadError` if it cannot be."""
        return decode_tensor(code.payload, shape, self.bits, self.check_bits)

    def __repr__(self) -> str:
        return f"PaletteCodec(bits={self.bits}, check_bits={self.check_bits})"
