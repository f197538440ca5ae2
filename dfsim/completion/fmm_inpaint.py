"""Fast-marching inpainting of 16-bit single-channel images, compiled with numba.

A port of the 16-bit unsigned, single-channel path of OpenCV's ``cv2.inpaint``
(OpenCV's inpaint.cpp): ``INPAINT_TELEA`` (Telea 2004) and ``INPAINT_NS`` (in OpenCV a
fast-marching variant whose weights follow the isophote direction, after Bertalmio,
Bertozzi & Sapiro 2001). It reproduces OpenCV's results bit for bit: the same one-pixel
frame around the image, the same narrow band and fast marching (OpenCV's priority queue
pops the smallest arrival time first and, among equal times, the pixel queued first),
the same float32/float64 operations in the same order (no fastmath), the same rounding
and saturation, and OpenCV's index quirks at the image border.

The work is rearranged without changing any of those operations: the in-radius offsets
and their distance weights are computed once per radius; the image gradient of every
contributing pixel is kept up to date as pixels are filled (it depends only on its
3 x 3 neighbourhood) instead of being recomputed for every pixel that uses it; for
INPAINT_TELEA, whose weights depend only on which neighbours are known, their arrival
times and the time gradient, a pixel whose neighbourhood matches the previous one's
(the common case along the rows of a lost row band) reuses its weights; and the whole
per-channel loop of :mod:`dfsim.completion.inpainting` (row crop, mapping to 16 bits and
back) runs in one compiled call per batch of tensors, with work arrays allocated once.

Row bands (:func:`_inpaint_rows`, ``bands=True``): when every lost pixel of a crop lies in
a fully lost row, which is what a lost packet of whole rows leaves, the same algorithm is
run specialised to that geometry instead of bit for bit. Fast marching from a straight
front has a known answer: a lost row's arrival time is its distance from the nearest
received row (and a received row's, for INPAINT_TELEA's level weight, minus its distance
from the nearest lost row, plus one, as OpenCV's outer ring gives), the time gradient is
vertical, and the rows are filled in order of time, top first among equal times, as
OpenCV's raster-ordered queue fills them. A row's sums over the rows already known run one
offset at a time across the row, so they vectorise; OpenCV's weights and value formulas are
kept (16-bit values, gradients by OpenCV's difference rules, INPAINT_TELEA's
|r . grad T| / |r|^3 and level weight and its gradient term, INPAINT_NS's isophote
weight). INPAINT_NS then finishes the row left to right as OpenCV does, each pixel also
weighing the pixels of its own row filled before it and, with their gradients updated, the
pixels to its left in the rows above and below (:func:`_ns_row`); INPAINT_TELEA leaves those
out (their weight is its floor of 1e-6). What differs from OpenCV: that floor, the
neighbourhoods cut at the image's left and right edges instead of OpenCV's index quirks
there, and the order of the floating-point sums. On real features the error on lost
entries is lower than OpenCV's for INPAINT_TELEA and the same within 0.5 % for INPAINT_NS
(tests/test_inpaint_bands.py, benchmarks/inpainting_vs_opencv.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

KNOWN, BAND, INSIDE, CHANGE = 0, 1, 2, 3
_F32 = np.float32
_U = np.uint64  # flat indices are unsigned: no negative-index wraparound in the loops
_U0, _U1 = _U(0), _U(1)
_LO, _HI = 16384, 49151  # where the received range [lo, hi] is mapped in 16 bits
_NONE = _F32(-np.inf)  # time of a pixel that does not contribute (unknown, frame, spare)
# per-pixel record of 8 float32 in the work array P: the time (first; -inf for a pixel
# that does not contribute), the value, the gradient and its squared length
_NP = _U(8)
_PV, _PX, _PY, _PG = _U(1), _U(2), _U(3), _U(4)
_JIT = {"cache": True, "error_model": "numpy"}  # no fastmath: IEEE operations as written
# The row-band kernel's sums: still IEEE operations as written (no reassociation, no fused
# multiply-add); "no signed zeros" only lets LLVM vectorize the loops across a row.
_JITV = {**_JIT, "fastmath": {"nsz"}}


def cv_range(radius: float) -> int:
    """OpenCV's neighbourhood radius for ``inpaintRange``: cvRound (half to even; values
    outside the int range give INT_MIN), then clamped to [1, 100]."""
    r = float(radius)
    v = np.rint(r) if np.isfinite(r) else np.nan
    iv = int(v) if -(2.0**31) <= v <= 2.0**31 - 1 else -(2**31)
    return min(max(iv, 1), 100)


def offsets(rng: int, stride: int, telea: bool):
    """The in-radius offsets (k - i)^2 + (l - j)^2 <= rng^2 in OpenCV's scan order (row by
    row, left to right), without the centre: the flat offset (wrapped to uint64) and per
    offset (r.x, r.y, distance weight, |r|^2) as float32, r = (j - l, i - k); the weight
    is INPAINT_TELEA's 1 / |r|^3 or INPAINT_NS's 1 / (|r|^4 + 1), computed as OpenCV does."""
    lin, rec = [], []
    for dk in range(-rng, rng + 1):
        for dl in range(-rng, rng + 1):
            if dk * dk + dl * dl > rng * rng or (dk == 0 and dl == 0):
                continue
            x, y = _F32(-dl), _F32(-dk)
            v = _F32(x * x + y * y)
            if telea:  # float sqrt and product, double reciprocal, rounded to float
                dst = _F32(1.0 / float(_F32(v * np.sqrt(v))))
            else:  # float arithmetic
                dst = _F32(_F32(1.0) / _F32(v * v + _F32(1.0)))
            lin.append(dk * stride + dl)
            rec.append((x, y, dst, v))
    return np.array(lin, np.int64).view(np.uint64), np.array(rec, np.float32).ravel()


# --- priority queue ----------------------------------------------------------------------
# OpenCV's queue pops the smallest arrival time first and, among equal times, the pixel
# queued first. Here: buckets of equal times, sorted by time in qT[b0:b1], each a FIFO
# list of nodes (qh/qt: first and last node; qp: pixel of a node; qn: next node). The
# push is written out where it is used (arrays passed to helpers cost reference counts).


# --- fast marching ------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _pop(qp, qn, qh, b0):
    """Take the first pixel of the earliest bucket (see :func:`_push`). Returns the pixel and
    the new first bucket b0."""
    node = qh[b0]
    if qn[node] < 0:
        b0 += 1
    else:
        qh[b0] = qn[node]
    return _U(qp[node]), b0


@njit(inline="always", **_JIT)
def _push(qp, qn, qT, qh, qt, b0, b1, nn, c, dist):
    """Queue pixel ``c`` at time ``dist``: OpenCV's order, smallest time first and first in,
    first out among equal times (one FIFO bucket per distinct time, buckets b0..b1-1 sorted
    by time; entry nn). Returns the new (b1, nn)."""
    qp[nn] = np.int64(c)
    qn[nn] = -1
    k = b1 - 1
    while k >= b0 and qT[k] > dist:
        k -= 1
    if k >= b0 and qT[k] == dist:
        qn[qt[k]] = nn
        qt[k] = nn
    else:
        for m in range(b1, k + 1, -1):
            qT[m] = qT[m - 1]
            qh[m] = qh[m - 1]
            qt[m] = qt[m - 1]
        qT[k + 1] = dist
        qh[k + 1] = nn
        qt[k + 1] = nn
        b1 += 1
    return b1, nn + 1


@njit(**_JIT)
def _solve(ka, ta, kb, tb):
    """OpenCV's FastMarching_solve for neighbours a, b (k: not unknown; t: time)."""
    a11 = np.float64(ta)
    a22 = np.float64(tb)
    m12 = a22 if a11 > a22 else a11
    if ka:
        if kb:
            d = a11 - a22
            if abs(d) >= 1.0:
                sol = 1.0 + m12
            else:
                sol = (a11 + a22 + np.sqrt(2.0 - d * d)) * 0.5
        else:
            sol = 1.0 + a11
    elif kb:
        sol = 1.0 + a22
    else:
        sol = 1.0 + m12
    return _F32(sol)


@njit(**_JIT)
def _arrival(ku, tu, kd, td, kl, tl, kr, tr):
    """OpenCV's min4 of the four one-sided solutions from the up, down, left and right
    neighbours (k: not unknown; t: time)."""
    a = _solve(ku, tu, kl, tl)
    b = _solve(kd, td, kl, tl)
    e = _solve(ku, tu, kr, tr)
    d = _solve(kd, td, kr, tr)
    a = b if a > b else a
    e = d if e > d else e
    return e if a > e else a


@njit(**_JIT)
def _to_u16(v):
    """saturate_cast<ushort>(double): round half to even (out of the int range: INT_MIN),
    then clamp to [0, 65535]."""
    r = np.rint(v)
    if not (r >= -2147483648.0 and r <= 2147483647.0):
        return _F32(0.0)
    if r < 0.0:
        return _F32(0.0)
    if r > 65535.0:
        return _F32(65535.0)
    return _F32(r)


# --- image gradients of contributing pixels (OpenCV's gradI) -------------------------------
# qc[z] flags OpenCV's index quirks at the image border for padded pixel z: 1 first image
# row (km = k), 2 last image row (kp = k - 2), 4 first image column (lm = l), 8 last image
# column (lp = l - 2). A gradient reads the 3 x 3 neighbourhood of z; when qc[z] == 0 its
# horizontal part reads only z and z -+ 1, its vertical part only z and z -+ S.


@njit(**_JIT)
def _hpos(z, S, code):
    """Where (in P) the horizontal part at z reads: out(km, lp + 1), out(km, lm - 1),
    out(km, lm), out(km, lp)."""
    zkm = z + S if code & 1 else z
    zm = zkm + _U1 if code & 4 else zkm
    zp = zkm - _U1 if code & 8 else zkm
    return (zp + _U1) * _NP + _PV, (zm - _U1) * _NP + _PV, zm * _NP + _PV, zp * _NP + _PV


@njit(**_JIT)
def _vpos(z, S, code):
    """Where the vertical part at z reads: out(kp + 1, lm), out(km - 1, lm), out(km, lm),
    out(kp, lm)."""
    cm = _U1 if code & 4 else _U0
    zkm = (z + S if code & 1 else z) + cm
    zkp = (z - S if code & 2 else z) + cm
    return (zkp + S) * _NP + _PV, (zkm - S) * _NP + _PV, zkm * _NP + _PV, zkp * _NP + _PV


@njit(**_JIT)
def _gpart(k1, k2, a, b, c, d, mid, telea):
    """One part of OpenCV's gradI from the values at the positions above, k1/k2: the
    neighbour after/before z known (right/left, or down/up). INPAINT_TELEA: a - b doubled,
    a - c, d - b or 0; INPAINT_NS: |a - mid| + |mid - b|, either one doubled, or 0."""
    g = _F32(0.0)
    if telea:
        if k1:
            g = (a - b) * _F32(2.0) if k2 else a - c
        elif k2:
            g = d - b
    elif k1:
        g = abs(a - mid)
        g = g + abs(mid - b) if k2 else g * _F32(2.0)
    elif k2:
        g = abs(mid - b) * _F32(2.0)
    return g


# --- one image ---------------------------------------------------------------------------


@njit(**_JIT)
def _telea_ring(f, t, ring, rows, cols, rng, S, M, qT, qh, qt, qp, qn, nn):
    """Times outside the mask, up to ``rng`` pixels away, negated (OpenCV: icvCalcFMM on
    the square dilation of the mask minus mask and band). The queue arrives holding the
    ``nn`` band pixels (time 0, one bucket)."""
    lo = M * S
    hi = (rows + M) * S
    for z in range(lo, hi):
        ring[z] = 0
    # square dilation of the mask (separable: along rows, then along columns)
    for a in range(1, rows - 1):
        base = (a + M) * S + M
        last = -(1 << 30)
        for b in range(1, cols - 1):
            if f[base + b] == INSIDE:
                last = b
            if b - last <= rng:
                ring[base + b] = 1
        last = 1 << 30
        for b in range(cols - 2, 0, -1):
            if f[base + b] == INSIDE:
                last = b
            if last - b <= rng:
                ring[base + b] = 1
    for b in range(1, cols - 1):
        last = -(1 << 30)
        for a in range(1, rows - 1):
            p = (a + M) * S + M + b
            if ring[p] & 1:
                last = a
            if a - last <= rng:
                ring[p] |= 2
        last = 1 << 30
        for a in range(rows - 2, 0, -1):
            p = (a + M) * S + M + b
            if ring[p] & 1:
                last = a
            if last - a <= rng:
                ring[p] |= 2
    for a in range(1, rows - 1):
        base = (a + M) * S + M
        for b in range(1, cols - 1):
            p = base + b
            if ring[p] & 2 and f[p] != INSIDE and t[p] != _F32(0.0):
                ring[p] = INSIDE
            else:
                ring[p] = KNOWN
    uS = _U(S)
    b0 = 0
    b1 = 1 if nn else 0
    while b0 < b1:
        p, b0 = _pop(qp, qn, qh, b0)
        ring[p] = CHANGE
        for c in (p - uS, p - _U1, p + uS, p + _U1):
            if ring[c] != INSIDE:
                continue
            dist = _arrival(
                ring[c - uS] != INSIDE, t[c - uS], ring[c + uS] != INSIDE, t[c + uS],
                ring[c - _U1] != INSIDE, t[c - _U1], ring[c + _U1] != INSIDE, t[c + _U1],
            )  # fmt: skip
            t[c] = dist
            ring[c] = BAND
            b1, nn = _push(qp, qn, qT, qh, qt, b0, b1, nn, c, dist)
    for z in range(lo, hi):
        if ring[z] == CHANGE:
            t[z] = -t[z]


@njit(**_JIT)
def _inpaint_image(q, msk, h, w, rng, telea, S, M, offl, orec, ws):
    """Inpaint rows [0, h) of the uint16 image ``q`` (width w) where ``msk`` is set, in
    place, as cv2.inpaint does. Padded (OpenCV) pixel (a, b) lives at flat index
    (a + M) * S + b + M of the work arrays (M >= rng spare pixels on every side); its
    record in P is P[8 z: 8 z + 5] = (time if contributing else -inf, value, gradient,
    |gradient|^2); ``ws`` holds the work arrays (see :func:`_workspace`)."""
    P, t, f, ring, qc, nq, qT, qh, qt, qp, qn, rT, rh, rt, rp, rn, mt, mw, mz, wl, wm = ws
    rows = h + 2
    cols = w + 2
    nflat = (rows + 2 * M) * S
    uS = _U(S)
    for z in range(nflat):
        f[z] = KNOWN
        qc[z] = 0
        nq[z] = 0
        t[z] = _F32(1.0e6)
    for z in range(nflat * 8):
        P[z] = _F32(0.0)
    for z in range(nflat):
        P[z * 8] = _NONE
    amin = rows
    amax = 0
    for a in range(h):
        base = (a + 1 + M) * S + 1 + M
        for b in range(w):
            P[(base + b) * 8 + 1] = _F32(q[a, b])
            if msk[a, b]:
                f[base + b] = INSIDE
                amin = min(amin, a + 1)
                amax = max(amax, a + 1)
    for b in range(1, cols - 1):
        qc[(1 + M) * S + M + b] |= 1
        qc[(rows - 2 + M) * S + M + b] |= 2
    for a in range(1, rows - 1):
        qc[(a + M) * S + M + 1] |= 4
        qc[(a + M) * S + M + cols - 2] |= 8
    # nq: a quirk pixel in the 3 x 3 neighbourhood
    for b in range(cols):
        for a in (0, 1, 2, rows - 3, rows - 2, rows - 1):
            nq[(a + M) * S + M + b] = 1
    for a in range(rows):
        for b in (0, 1, 2, cols - 3, cols - 2, cols - 1):
            nq[(a + M) * S + M + b] = 1
    # narrow band (cross dilation of the mask minus the mask), queued in raster order at
    # time 0: one bucket
    nn = 0
    for a in range(1, rows - 1):
        base = (a + M) * S + M
        for b in range(1, cols - 1):
            p = base + b
            if f[p] != INSIDE and (
                f[p - S] == INSIDE or f[p + S] == INSIDE or f[p - 1] == INSIDE or f[p + 1] == INSIDE
            ):
                t[p] = _F32(0.0)
                qp[nn] = p
                qn[nn] = nn + 1
                nn += 1
    if nn == 0:
        return
    qn[nn - 1] = -1
    qT[0] = _F32(0.0)
    qh[0] = 0
    qt[0] = nn - 1
    b1 = 1
    if telea:
        for k in range(nn):
            rp[k] = qp[k]
            rn[k] = qn[k]
        rT[0] = _F32(0.0)
        rh[0] = 0
        rt[0] = nn - 1
        _telea_ring(f, t, ring, rows, cols, rng, S, M, rT, rh, rt, rp, rn, np.int64(nn))
    # contributing pixels: known, inside the frame; their gradients (those within rng rows
    # of the mask: the others never contribute)
    for a in range(1, rows - 1):
        base = (a + M) * S + M
        for b in range(1, cols - 1):
            p = base + b
            if f[p] != INSIDE:
                P[p * 8] = t[p]
    for a in range(max(1, amin - rng), min(rows - 1, amax + rng + 1)):
        base = (a + M) * S + M
        for b in range(1, cols - 1):
            z = _U(base + b)
            if f[z] == INSIDE:
                continue
            code = qc[z]
            ha, hb, hc, hd = _hpos(z, uS, code)
            gh = _gpart(
                f[z + _U1] != INSIDE, f[z - _U1] != INSIDE, P[ha], P[hb], P[hc], P[hd], P[hc], telea
            )
            va, vb, vc, vd = _vpos(z, uS, code)
            gv = _gpart(
                f[z + uS] != INSIDE, f[z - uS] != INSIDE, P[va], P[vb], P[vc], P[vd], P[vd], telea
            )
            zr = z * _NP
            if telea:
                P[zr + _PX] = gh
                P[zr + _PY] = gv
            else:
                P[zr + _PX] = -gv
                P[zr + _PY] = gh
                P[zr + _PG] = P[zr + _PX] * P[zr + _PX] + gh * gh
    nof = offl.shape[0]
    mvalid = False
    mtc = _F32(0.0)
    mgx = _F32(0.0)
    mgy = _F32(0.0)
    ms = _F32(0.0)
    mn = 0
    b0 = 0
    while b0 < b1:
        p, b0 = _pop(qp, qn, qh, b0)
        f[p] = KNOWN
        for c in (p - uS, p - _U1, p + uS, p + _U1):
            if f[c] != INSIDE:
                continue
            ku = f[c - uS] != INSIDE
            kd = f[c + uS] != INSIDE
            kl = f[c - _U1] != INSIDE
            kr = f[c + _U1] != INSIDE
            dist = _arrival(ku, t[c - uS], kd, t[c + uS], kl, t[c - _U1], kr, t[c + _U1])
            t[c] = dist
            if telea:
                # time gradient
                if kr:
                    gtx = (t[c + _U1] - t[c - _U1]) * _F32(0.5) if kl else t[c + _U1] - dist
                else:
                    gtx = dist - t[c - _U1] if kl else _F32(0.0)
                if kd:
                    gty = (t[c + uS] - t[c - uS]) * _F32(0.5) if ku else t[c + uS] - dist
                else:
                    gty = dist - t[c - uS] if ku else _F32(0.0)
                # the weights depend only on which neighbours contribute, their times, the
                # time here and its gradient: reuse the last computed ones if all match
                hit = mvalid and mtc == dist and mgx == gtx and mgy == gty
                if hit:
                    for o in range(nof):
                        if P[(c + offl[o]) * _NP] != mt[o]:
                            hit = False
                            break
                ia = _F32(0.0)
                jx = _F32(0.0)
                jy = _F32(0.0)
                if hit:
                    for u in range(mn):
                        z = (c + mz[u]) * _NP
                        wt = mw[3 * u]
                        ia += wt * P[z + _PV]
                        jx -= wt * (P[z + _PX] * mw[3 * u + 1])
                        jy -= wt * (P[z + _PY] * mw[3 * u + 2])
                    s = ms
                else:
                    s = _F32(1.0e-20)
                    mn = 0
                    for o in range(nof):
                        z = (c + offl[o]) * _NP
                        tz = P[z]
                        mt[o] = tz
                        if tz == _NONE:
                            continue
                        rx = orec[4 * o]
                        ry = orec[4 * o + 1]
                        lev = _F32(1.0 / (1.0 + abs(np.float64(tz - dist))))
                        d = rx * gtx + ry * gty
                        if abs(d) <= 0.01:
                            d = _F32(0.000001)
                        wt = abs(orec[4 * o + 2] * lev * d)
                        ia += wt * P[z + _PV]
                        jx -= wt * (P[z + _PX] * rx)
                        jy -= wt * (P[z + _PY] * ry)
                        s += wt
                        mz[mn] = offl[o]
                        mw[3 * mn] = wt
                        mw[3 * mn + 1] = rx
                        mw[3 * mn + 2] = ry
                        mn += 1
                    mvalid = True
                    mtc = dist
                    mgx = gtx
                    mgy = gty
                    ms = s
                sat = ia / s + (jx + jy) / (np.sqrt(jx * jx + jy * jy) + _F32(1.0e-20))
                v = _to_u16(np.float64(sat) + 0.5)
            else:
                ia = _F32(0.0)
                s = _F32(1.0e-20)
                for o in range(nof):
                    z = (c + offl[o]) * _NP
                    if P[z] == _NONE:
                        continue
                    d = orec[4 * o] * P[z + _PX] + orec[4 * o + 1] * P[z + _PY]
                    if abs(d) <= 0.01:
                        d = _F32(0.000001)
                    else:
                        d = abs(d / np.sqrt(orec[4 * o + 3] * P[z + _PG]))
                    wt = orec[4 * o + 2] * d
                    ia += wt * P[z + _PV]
                    s += wt
                v = _to_u16(np.float64(ia) / np.float64(s))
            P[c * _NP + _PV] = v
            P[c * _NP] = dist
            f[c] = BAND
            # the gradient parts that read pixel c (1: horizontal, 2: vertical)
            nw = 0
            if nq[c]:  # a border quirk nearby: all of the 3 x 3 neighbourhood
                for z in (c - uS - _U1, c - uS, c - uS + _U1, c - _U1, c, c + _U1,
                          c + uS - _U1, c + uS, c + uS + _U1):  # fmt: skip
                    if P[z * _NP] != _NONE:
                        wl[nw] = z
                        wm[nw] = 3
                        nw += 1
            else:
                wl[0] = c
                wm[0] = 3
                nw = 1
                for z in (c - _U1, c + _U1):
                    if P[z * _NP] != _NONE:
                        wl[nw] = z
                        wm[nw] = 1
                        nw += 1
                for z in (c - uS, c + uS):
                    if P[z * _NP] != _NONE:
                        wl[nw] = z
                        wm[nw] = 2
                        nw += 1
            for k in range(nw):
                z = wl[k]
                zr = z * _NP
                code = qc[z]
                if wm[k] & 1:
                    ha, hb, hc, hd = _hpos(z, uS, code)
                    gh = _gpart(
                        f[z + _U1] != INSIDE, f[z - _U1] != INSIDE, P[ha], P[hb], P[hc], P[hd],
                        P[hc], telea,
                    )  # fmt: skip
                    P[zr + (_PX if telea else _PY)] = gh
                if wm[k] & 2:
                    va, vb, vc, vd = _vpos(z, uS, code)
                    gv = _gpart(
                        f[z + uS] != INSIDE, f[z - uS] != INSIDE, P[va], P[vb], P[vc], P[vd],
                        P[vd], telea,
                    )  # fmt: skip
                    if telea:
                        P[zr + _PY] = gv
                    else:
                        P[zr + _PX] = -gv
                if not telea:
                    P[zr + _PG] = P[zr + _PX] * P[zr + _PX] + P[zr + _PY] * P[zr + _PY]
            b1, nn = _push(qp, qn, qT, qh, qt, b0, b1, nn, c, dist)
    for a in range(h):
        base = (a + 1 + M) * S + 1 + M
        for b in range(w):
            if msk[a, b]:
                q[a, b] = np.uint16(P[(base + b) * 8 + 1])


# --- row bands ---------------------------------------------------------------------------
# When every lost pixel of a crop lies in a fully lost row (a lost packet is a band of whole
# rows), fast marching needs no queue: a lost row's arrival time is its distance from the
# nearest received row, the same for all its pixels, and rows are filled in order of that
# time (top first among equal times, as OpenCV's raster-ordered queue does). Each row is
# filled from the rows already known, all its pixels together, with OpenCV's weights.


@njit(inline="always", **_JIT)
def _inv_length(a, b):
    """1 / |(a, b)| in float32, 0 for the zero vector."""
    g2 = a * a + b * b
    return _F32(1.0) / np.sqrt(g2) if g2 > _F32(0.0) else _F32(0.0)


@njit(**_JITV)
def _row_gradients(V, avail, y, h, w, GX, GY, IG, telea, horizontal):
    """OpenCV's gradI of the pixels of available row ``y`` (flat arrays, row stride w),
    from the available rows around it: a missing neighbour, or one outside the crop, gives
    the one-sided or zero rule. INPAINT_TELEA keeps (gh, gv) in (GX, GY); INPAINT_NS the
    isophote (-gv, gh) and the reciprocal of its length in ``IG`` (0 where it is 0). The
    horizontal part depends on the row alone: recomputed only with ``horizontal``."""
    up = y > 0 and avail[y - 1]
    dn = y < h - 1 and avail[y + 1]
    r = _U(y * w)
    uw = _U(w)
    two = _F32(2.0)
    H = GX if telea else GY  # where the horizontal part goes
    if horizontal:
        e = r + uw - _U1
        if telea:
            H[r] = V[r + _U1] - V[r]
            H[e] = V[e] - V[e - _U1]
            for z in range(r + _U1, e):
                H[z] = (V[z + _U1] - V[z - _U1]) * two
        else:
            H[r] = abs(V[r + _U1] - V[r]) * two
            H[e] = abs(V[e] - V[e - _U1]) * two
            for z in range(r + _U1, e):
                H[z] = abs(V[z + _U1] - V[z]) + abs(V[z] - V[z - _U1])
    # the vertical part (negated for INPAINT_NS, whose isophote is (-gv, gh))
    sg = _F32(1.0) if telea else _F32(-1.0)
    Vv = GY if telea else GX
    if dn and up:
        for z in range(r, r + uw):
            if telea:
                Vv[z] = (V[z + uw] - V[z - uw]) * two
            else:
                Vv[z] = -(abs(V[z + uw] - V[z]) + abs(V[z] - V[z - uw]))
    elif dn:
        for z in range(r, r + uw):
            Vv[z] = sg * (V[z + uw] - V[z] if telea else abs(V[z + uw] - V[z]) * two)
    elif up:
        for z in range(r, r + uw):
            Vv[z] = sg * (V[z] - V[z - uw] if telea else abs(V[z] - V[z - uw]) * two)
    else:
        for z in range(r, r + uw):
            Vv[z] = _F32(0.0)
    if not telea:
        for z in range(r, r + uw):
            IG[z] = _inv_length(GX[z], GY[z])


@njit(**_JITV)
def _row_sums(V, GX, GY, IG, ir, acc, y, w, m, lz, lx, lw, la, lb, telea):
    """The weighted sums of every pixel of row ``y`` over the row's offset list (see
    :func:`_inpaint_rows`): one offset at a time across the row, so the additions of
    neighbouring pixels are independent and run as vector instructions."""
    ia, jx, jy, s = acc[0], acc[1], acc[2], acc[3]
    for x in range(w):
        ia[x] = _F32(0.0)
        jx[x] = _F32(0.0)
        jy[x] = _F32(0.0)
        s[x] = _F32(1.0e-20)
    for k in range(m):
        dx = lx[k]
        x0 = _U(max(0, -dx))
        n = _U(min(w, w - dx)) - x0
        zq = _U(y * w) + x0 + lz[k]  # first source pixel (unsigned: no wraparound test)
        if telea:
            wt = lw[k]
            a = la[k]
            b = lb[k]
            for i in range(n):  # one loop per source array: each one vectorises
                ia[x0 + i] += wt * V[zq + i]
                s[x0 + i] += wt
            for i in range(n):
                jx[x0 + i] -= a * GX[zq + i]
            for i in range(n):
                jy[x0 + i] -= b * GY[zq + i]
        else:
            dw = lw[k]
            a = la[k]
            b = lb[k]
            c = ir[k]
            for i in range(n):
                d = a * GX[zq + i] + b * GY[zq + i]
                if abs(d) <= 0.01:
                    d = _F32(0.000001)
                else:  # |r . isophote| / (|r| |gradient|)
                    d = abs(d) * c * IG[zq + i]
                wt = dw * d
                ia[x0 + i] += wt * V[zq + i]
                s[x0 + i] += wt


@njit(**_JIT)
def _ns_row(V, GY, q, avail, y, h, w, rng, ia, s, nb, c0, ok, kf):
    """Finish INPAINT_NS's row ``y`` left to right, as OpenCV's queue fills it: each pixel
    adds to its sums over the other rows (``ia``, ``s``) the neighbours whose gradient
    changes as the row fills, with their gradients at that moment: the pixels of its own
    row filled before it (up to ``rng`` to its left), and those left of it in the rows just
    above and below (their vertical gradient part now reads a filled pixel); then it is
    filled. ``GY``: the other rows' horizontal gradient parts; ``nb``: work rows, per
    column, for this row (0) and the rows above (1) and below (2), the vertical gradient
    part and the reciprocal gradient length of that neighbour once (y, column) is filled;
    ``c0``: the distance weights per column step (:func:`_band_workspace`); ``ok``/``kf``:
    work flags (rows above and below known, and their other vertical neighbours)."""
    r = y * w
    reach = 0  # columns within the radius one row away
    while (reach + 1) * (reach + 1) + 1 <= rng * rng:
        reach += 1
    for i in (1, 2):
        yq = y + (-1 if i == 1 else 1)
        far = yq + (-1 if i == 1 else 1)
        ok[i] = 0 <= yq < h and avail[yq]
        kf[i] = ok[i] and 0 <= far < h and avail[far]
    for x in range(w):
        a = ia[x]
        sx = s[x]
        for i in (1, 2):
            if not ok[i]:
                continue
            ry = _F32(1.0) if i == 1 else _F32(-1.0)  # r = p - q = (dl, ry)
            yq = y + (-1 if i == 1 else 1)
            for dl in range(1, min(reach, x) + 1):
                xq = x - dl
                d = _F32(dl) * -nb[2 * i, xq] + ry * GY[yq * w + xq]
                if abs(d) <= 0.01:
                    d = _F32(0.000001)
                else:
                    d = abs(d) * c0[3, dl] * nb[2 * i + 1, xq]
                wt = c0[2, dl] * d
                a += wt * V[yq * w + xq]
                sx += wt
        for dl in range(1, min(rng, x) + 1):
            xq = x - dl
            d = _F32(dl) * -nb[0, xq]  # r = (dl, 0)
            if abs(d) <= 0.01:
                d = _F32(0.000001)
            else:
                d = abs(d) * c0[1, dl] * nb[1, xq]
            wt = c0[0, dl] * d
            a += wt * V[r + xq]
            sx += wt
        val = _to_u16(np.float64(a) / np.float64(sx))
        V[r + x] = val
        q[y, x] = np.uint16(val)
        # the row's gradients: pixel x (its right neighbour not yet filled) and x - 1 (whose
        # right neighbour is now x); the rows above and below at column x (their vertical
        # part now reads pixel x)
        for xq in range(max(0, x - 1), x + 1):
            zq = r + xq
            mid = V[zq]
            up, dn = ok[1], ok[2]
            gvq = _gpart(dn, up, V[zq + w if dn else zq], V[zq - w if up else zq], mid, mid,
                         mid, False)  # fmt: skip
            right = xq < x and xq < w - 1
            left = xq > 0
            gh = _gpart(right, left, V[zq + 1 if right else zq], V[zq - 1 if left else zq], mid,
                        mid, mid, False)  # fmt: skip
            nb[0, xq] = gvq
            nb[1, xq] = _inv_length(gvq, gh)
        for i in (1, 2):
            if ok[i]:
                yq = y + (-1 if i == 1 else 1)
                far = yq + (-1 if i == 1 else 1)
                zq = yq * w + x
                mid = V[zq]
                # row y (filled) on one side, ``far`` on the other
                gvq = _gpart(True, kf[i], V[r + x], V[far * w + x if kf[i] else zq], mid, mid,
                             mid, False)  # fmt: skip
                nb[2 * i, x] = gvq
                nb[2 * i + 1, x] = _inv_length(gvq, GY[zq])


@njit(**_JIT)
def _inpaint_rows(q, rowlost, h, w, rng, telea, odx, ody, orec, bw):
    """Fill the lost rows (``rowlost``) of rows [0, h) of the uint16 image ``q`` (width w)
    in place: Telea's or OpenCV's Navier-Stokes weights, rows in fast-marching order (see
    above). ``odx``/``ody``/``orec``: the in-radius offsets (:func:`_steps`, :func:`offsets`);
    ``bw``: work arrays (:func:`_band_workspace`)."""
    V, GX, GY, IG, T, avail, ir, lz, lx, lw, la, lb, acc, nb, c0, ok, kf = bw
    # times: a lost row's distance from the nearest received row; a received row's
    # distance from the nearest lost row, minus one, negated (OpenCV's ring outside the mask)
    received = lost = -1  # the nearest row of each kind seen so far
    for y in range(h):  # distance from the nearest row of the other kind above ...
        other = received if rowlost[y] else lost
        T[y] = _F32(y - other) if other >= 0 else _F32(1.0e6)
        if rowlost[y]:
            lost = y
        else:
            received = y
    received = lost = -1
    for y in range(h - 1, -1, -1):  # ... or below
        other = received if rowlost[y] else lost
        if other >= 0 and _F32(other - y) < T[y]:
            T[y] = _F32(other - y)
        if rowlost[y]:
            lost = y
        else:
            received = y
    for y in range(h):
        if not rowlost[y] and T[y] < _F32(1.0e6):
            T[y] -= _F32(1.0)
    for y in range(h):
        avail[y] = not rowlost[y]
        if avail[y]:
            T[y] = -T[y]
        for x in range(w):
            V[y * w + x] = _F32(q[y, x])
    for y in range(h):
        if avail[y]:
            _row_gradients(V, avail, y, h, w, GX, GY, IG, telea, True)
    nof = odx.shape[0]
    tmax = _F32(0.0)
    for y in range(h):
        if not avail[y] and T[y] < _F32(1.0e6):
            tmax = max(tmax, T[y])
    for step in range(h * int(tmax)):  # rows by time, then top to bottom
        y = step % h
        if avail[y] or T[y] != _F32(step // h + 1):
            continue
        dist = T[y]
        up = y > 0 and avail[y - 1]
        dn = y < h - 1 and avail[y + 1]
        if dn:  # the time gradient (vertical only: a row's pixels share their time)
            gty = (T[y + 1] - T[y - 1]) * _F32(0.5) if up else T[y + 1] - dist
        else:
            gty = dist - T[y - 1] if up else _F32(0.0)
        # the offsets that reach a known row, with their weights (INPAINT_TELEA: weight,
        # weight * r.x, weight * r.y) or their r and distance weight (INPAINT_NS)
        m = 0
        for o in range(nof):
            yy = y + ody[o]
            if yy < 0 or yy >= h or not avail[yy]:
                continue  # rows not yet known, and this row itself
            if not telea and abs(ody[o]) == 1 and odx[o] < 0:
                continue  # INPAINT_NS: gradient changes as the row fills (see _ns_row)
            rx = orec[4 * o]
            ry = orec[4 * o + 1]
            lz[m] = _U((yy - y) * w + odx[o])  # wraps: unsigned, as flat indices
            lx[m] = odx[o]
            if telea:
                lev = _F32(1.0 / (1.0 + abs(np.float64(T[yy] - dist))))
                d = ry * gty
                if abs(d) <= 0.01:
                    d = _F32(0.000001)
                wt = abs(orec[4 * o + 2] * lev * d)
                lw[m] = wt
                la[m] = wt * rx
                lb[m] = wt * ry
            else:
                lw[m] = orec[4 * o + 2]
                la[m] = rx
                lb[m] = ry
                ir[m] = _F32(1.0 / np.sqrt(np.float64(orec[4 * o + 3])))
            m += 1
        _row_sums(V, GX, GY, IG, ir, acc, y, w, m, lz, lx, lw, la, lb, telea)
        ia, jx, jy, sw = acc[0], acc[1], acc[2], acc[3]
        if telea:
            for x in range(w):
                a, b = jx[x], jy[x]
                sat = ia[x] / sw[x] + (a + b) / (np.sqrt(a * a + b * b) + _F32(1.0e-20))
                v = _to_u16(np.float64(sat) + 0.5)
                V[y * w + x] = v
                q[y, x] = np.uint16(v)
        else:
            _ns_row(V, GY, q, avail, y, h, w, rng, ia, sw, nb, c0, ok, kf)
        avail[y] = True
        for yy in range(max(0, y - 1), min(h, y + 2)):
            if avail[yy]:
                _row_gradients(V, avail, yy, h, w, GX, GY, IG, telea, yy == y)


@njit(**_JIT)
def _band_workspace(h, w, nof, rng):
    """Work arrays of :func:`_inpaint_rows` for crops of up to h x w pixels and ``nof``
    offsets: values, gradients, reciprocal gradient lengths (flat), row times, known rows;
    the row's offset list (INPAINT_NS's 1 / |r|, flat offset, column step, weights), the
    row's sums, INPAINT_NS's work rows, distance weights and flags (:func:`_ns_row`: per
    column step dl, 1 / (|r|^4 + 1) and 1 / |r| for r = (dl, 0) and r = (dl, +-1))."""
    f32 = np.float32
    c0 = np.zeros((4, rng + 1), f32)
    for dl in range(1, rng + 1):
        v0 = _F32(dl * dl)
        v1 = _F32(dl * dl + 1)
        c0[0, dl] = _F32(1.0) / (v0 * v0 + _F32(1.0))
        c0[1, dl] = _F32(1.0) / _F32(dl)
        c0[2, dl] = _F32(1.0) / (v1 * v1 + _F32(1.0))
        c0[3, dl] = _F32(1.0 / np.sqrt(dl * dl + 1.0))
    return (
        np.empty(h * w, f32),
        np.empty(h * w, f32),
        np.empty(h * w, f32),
        np.empty(h * w, f32),
        np.empty(h, f32),
        np.empty(h, np.bool_),
        np.empty(nof, f32),
        np.empty(nof, np.uint64),
        np.empty(nof, np.int64),
        np.empty(nof, f32),
        np.empty(nof, f32),
        np.empty(nof, f32),
        np.empty((4, w), f32),
        np.empty((6, w), f32),
        c0,
        np.zeros(3, np.bool_),
        np.zeros(3, np.bool_),
    )


def _steps(rng: int):
    """The in-radius offsets of :func:`offsets`, in the same order, as (column, row) steps."""
    steps = [
        (dl, dk)
        for dk in range(-rng, rng + 1)
        for dl in range(-rng, rng + 1)
        if dk * dk + dl * dl <= rng * rng and (dk or dl)
    ]
    return np.array([d for d, _ in steps], np.int64), np.array([k for _, k in steps], np.int64)


# --- tensors -----------------------------------------------------------------------------


@njit(**_JIT)
def _workspace(nflat, nof):
    """Work arrays for images of up to ``nflat`` padded pixels and ``nof`` offsets: pixel
    records, times, mask states, ring states, border quirk flags (own, nearby), the main
    and the ring queue (bucket times, first and last nodes, node pixels, next nodes), the
    last weights of INPAINT_TELEA (times, weights and r, offsets), the gradient work list."""
    i64, f32, u8 = np.int64, np.float32, np.uint8
    return (
        np.empty(8 * nflat, f32),
        np.empty(nflat, f32),
        np.empty(nflat, u8),
        np.empty(nflat, u8),
        np.empty(nflat, u8),
        np.empty(nflat, u8),
        np.empty(nflat, f32),
        np.empty(nflat, i64),
        np.empty(nflat, i64),
        np.empty(nflat, i64),
        np.empty(nflat, i64),
        np.empty(nflat, f32),
        np.empty(nflat, i64),
        np.empty(nflat, i64),
        np.empty(nflat, i64),
        np.empty(nflat, i64),
        np.empty(nof, f32),
        np.empty(3 * nof, f32),
        np.empty(nof, np.uint64),
        np.empty(9, np.uint64),
        np.empty(9, u8),
    )


@njit(**_JIT)
def _inpaint_tensors(x, lost, out, rng, pad, telea, offl, orec, bands, odx, ody):
    """For each channel of the N x C x H x W ``x`` with lost entries, fill ``out``'s lost
    entries as :mod:`dfsim.completion.inpainting` specifies: rows [first lost - pad, last
    lost + pad], received range [lo, hi] mapped to [16384, 49151] (float32 arithmetic, as
    numpy evaluates it), inpainted, mapped back (float64). With ``bands``, a crop whose
    lost pixels fill whole rows goes to :func:`_inpaint_rows`, any other to the port."""
    N, C, H, W = x.shape
    M = rng
    S = W + 2 + 2 * M
    ws = _workspace((H + 2 + 2 * M) * S, offl.shape[0])
    bw = _band_workspace(H, W, odx.shape[0], rng)
    rowlost = np.empty(H, np.bool_)
    rowcount = np.empty(H, np.int64)
    q = np.empty((H, W), np.uint16)
    flo = _F32(_LO)
    for i in range(N):
        for c in range(C):
            xc = x[i, c]
            mc = lost[i, c]
            oc = out[i, c]
            first = -1
            last = -1
            nlost = 0
            for y in range(H):
                k = 0
                for col in range(W):
                    if mc[y, col]:
                        k += 1
                rowcount[y] = k
                if k:
                    if first < 0:
                        first = y
                    last = y
                    nlost += k
            if first < 0:
                continue
            if nlost == H * W:  # nothing to propagate from
                for y in range(H):
                    for col in range(W):
                        oc[y, col] = _F32(0.0)
                continue
            r0 = max(0, first - pad)
            r1 = min(H, last + pad + 1)
            lo = np.inf
            hi = -np.inf
            for y in range(r0, r1):
                for col in range(W):
                    if not mc[y, col]:
                        v = np.float64(xc[y, col])
                        if v < lo:
                            lo = v
                        if v > hi:
                            hi = v
            if hi <= lo:
                for y in range(r0, r1):
                    for col in range(W):
                        if mc[y, col]:
                            oc[y, col] = _F32(lo)
                continue
            step = (hi - lo) / (_HI - _LO)
            lo32 = _F32(lo)
            step32 = _F32(step)
            for y in range(r0, r1):
                for col in range(W):
                    v32 = np.rint((xc[y, col] - lo32) / step32 + flo)
                    if v32 > _F32(65535.0):
                        v32 = _F32(65535.0)
                    if not (v32 >= _F32(0.0)):  # negative or NaN
                        v32 = _F32(0.0)
                    q[y - r0, col] = np.uint16(v32)
            whole = bands
            for y in range(r0, r1):
                k = rowcount[y]
                rowlost[y - r0] = k == W
                if k != 0 and k != W:
                    whole = False
            if whole:
                _inpaint_rows(q, rowlost, r1 - r0, W, rng, telea, odx, ody, orec, bw)
            else:
                _inpaint_image(q, mc[r0:r1], r1 - r0, W, rng, telea, S, M, offl, orec, ws)
            for y in range(r0, r1):
                for col in range(W):
                    if mc[y, col]:
                        oc[y, col] = _F32((np.float64(q[y - r0, col]) - _LO) * step + lo)


_OFFSETS: dict = {}


def _offsets(rng: int, stride: int, telea: bool):
    """:func:`offsets` and :func:`_steps`, computed once per (radius, stride, method)."""
    key = (rng, stride, telea)
    if key not in _OFFSETS:
        _OFFSETS[key] = (*offsets(*key), *_steps(rng))
    return _OFFSETS[key]


def inpaint_tensors(
    x, lost, radius: float, telea: bool, pad: int, bands: bool = False
) -> np.ndarray:
    """Copy of the N x C x H x W float32 ``x`` whose ``lost`` entries are inpainted channel
    by channel (see :func:`_inpaint_tensors`; ``bands``: whole lost rows filled row by row,
    else always OpenCV's algorithm, bit for bit). Needs H, W >= 2."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    lost = np.ascontiguousarray(lost, dtype=np.bool_)
    out = x.copy()
    rng = cv_range(radius)
    offl, orec, odx, ody = _offsets(rng, x.shape[3] + 2 + 2 * rng, bool(telea))
    _inpaint_tensors(x, lost, out, rng, int(pad), bool(telea), offl, orec, bool(bands), odx, ody)
    return out


@njit(**_JIT)
def _inpaint_one(q, msk, rng, telea, offl, orec):
    h, w = q.shape
    S = w + 2 + 2 * rng
    ws = _workspace((h + 2 + 2 * rng) * S, offl.shape[0])
    _inpaint_image(q, msk, h, w, rng, telea, S, rng, offl, orec, ws)


def inpaint_u16(img: np.ndarray, mask: np.ndarray, radius: float, telea: bool) -> np.ndarray:
    """``cv2.inpaint(img, mask, radius, cv2.INPAINT_TELEA if telea else cv2.INPAINT_NS)``
    for a 16-bit single-channel image of at least 2 x 2 pixels."""
    q = np.array(img, dtype=np.uint16, order="C", copy=True)
    msk = np.ascontiguousarray(mask, dtype=np.bool_)
    if q.ndim != 2 or q.shape != msk.shape or min(q.shape) < 2:
        raise ValueError("expected a 2-D image of at least 2 x 2 pixels and a mask of its shape")
    rng = cv_range(radius)
    offl, orec, _, _ = _offsets(rng, q.shape[1] + 2 + 2 * rng, bool(telea))
    _inpaint_one(q, msk, rng, bool(telea), offl, orec)
    return q
