"""OpenCV's fast-marching inpainting of one 16-bit single-channel image, bit for bit.

A port of the 16-bit unsigned, single-channel path of OpenCV's ``cv2.inpaint``
(OpenCV's inpaint.cpp): ``INPAINT_TELEA`` (Telea 2004) and ``INPAINT_NS`` (in OpenCV a
fast-marching variant whose weights follow the isophote direction, after Bertalmio,
Bertozzi & Sapiro 2001). It reproduces OpenCV's results bit for bit: the same one-pixel
frame around the image, the same narrow band and fast marching
(:mod:`dfsim.completion.fmm_march`), the same float32/float64 operations in the same order
(no fastmath), the same rounding and saturation, and OpenCV's index quirks at the image
border.

The work is rearranged without changing any of those operations: the in-radius offsets
and their distance weights are computed once per radius; the image gradient of every
contributing pixel is kept up to date as pixels are filled (it depends only on its
3 x 3 neighbourhood) instead of being recomputed for every pixel that uses it; and for
INPAINT_TELEA, whose weights depend only on which neighbours are known, their arrival
times and the time gradient, a pixel whose neighbourhood matches the previous one's
(the common case along the rows of a lost row band) reuses its weights.

Layout: padded (OpenCV) pixel (a, b), the image with its one-pixel frame, lives at flat
index (a + margin) * stride + b + margin of the work arrays (:class:`PortWork`), with
margin >= radius spare pixels on every side so that no neighbourhood leaves them. Its
record in ``rec`` is 8 float32 from 8 z on: the time (-inf for a pixel that does not
contribute: unknown, frame or spare), the value, the gradient (x, y) and its squared
length.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from dfsim.completion.fmm_common import F32, U0, U1, U64, gradient_part, kernel, to_u16
from dfsim.completion.fmm_march import arrival, new_queue, one_bucket, pop, push

KNOWN, BAND, INSIDE, CHANGE = 0, 1, 2, 3  # pixel states of fast marching
_NONE = F32(-np.inf)  # time of a pixel that does not contribute (unknown, frame, spare)
# a pixel's record in ``rec``: 8 float32, the time first
_REC = U64(8)
_VALUE, _GX, _GY, _GG = U64(1), U64(2), U64(3), U64(4)

PortWork = namedtuple(
    "PortWork",
    [
        "rec",  # per pixel: time, value, gradient, squared gradient length (see above)
        "time",  # arrival times
        "state",  # KNOWN, BAND or INSIDE (the mask)
        "ring",  # INPAINT_TELEA's states outside the mask (see _telea_ring)
        "quirk",  # OpenCV's border index quirks of a pixel (see _hpos)
        "near_quirk",  # a quirk pixel in the 3 x 3 neighbourhood
        "queue",  # the fast-marching queue (fmm_march.Queue)
        "ring_queue",  # INPAINT_TELEA's queue outside the mask
        "last_time",  # INPAINT_TELEA's last weights (see _telea_value): each offset's time,
        "last_weight",  # the weights and r of the offsets that contributed,
        "last_offset",  # and their flat offsets
        "grad_pixel",  # the pixels whose gradient changes when one is filled
        "grad_parts",  # and which parts (1: horizontal, 2: vertical)
    ],
)


@kernel
def new_work(npixels, noffsets):
    """Work arrays for images of up to ``npixels`` padded pixels and ``noffsets`` offsets."""
    f32, u8 = np.float32, np.uint8
    return PortWork(
        np.empty(8 * npixels, f32),
        np.empty(npixels, f32),
        np.empty(npixels, u8),
        np.empty(npixels, u8),
        np.empty(npixels, u8),
        np.empty(npixels, u8),
        new_queue(npixels),
        new_queue(npixels),
        np.empty(noffsets, f32),
        np.empty(3 * noffsets, f32),
        np.empty(noffsets, np.uint64),
        np.empty(9, np.uint64),
        np.empty(9, u8),
    )


# --- image gradients of contributing pixels (OpenCV's gradI) -------------------------------
# quirk[z] flags OpenCV's index quirks at the image border for padded pixel z: 1 first image
# row (km = k), 2 last image row (kp = k - 2), 4 first image column (lm = l), 8 last image
# column (lp = l - 2). A gradient reads the 3 x 3 neighbourhood of z; when quirk[z] == 0 its
# horizontal part reads only z and z -+ 1, its vertical part only z and z -+ stride.


@kernel
def _hpos(z, row_step, code):
    """Where (in ``rec``) the horizontal part at z reads: out(km, lp + 1), out(km, lm - 1),
    out(km, lm), out(km, lp)."""
    zkm = z + row_step if code & 1 else z
    zm = zkm + U1 if code & 4 else zkm
    zp = zkm - U1 if code & 8 else zkm
    return (
        (zp + U1) * _REC + _VALUE,
        (zm - U1) * _REC + _VALUE,
        zm * _REC + _VALUE,
        zp * _REC + _VALUE,
    )


@kernel
def _vpos(z, row_step, code):
    """Where the vertical part at z reads: out(kp + 1, lm), out(km - 1, lm), out(km, lm),
    out(kp, lm)."""
    cm = U1 if code & 4 else U0
    zkm = (z + row_step if code & 1 else z) + cm
    zkp = (z - row_step if code & 2 else z) + cm
    return (
        (zkp + row_step) * _REC + _VALUE,
        (zkm - row_step) * _REC + _VALUE,
        zkm * _REC + _VALUE,
        zkp * _REC + _VALUE,
    )


@kernel(inline="always")
def _update_gradients(rec, state, quirk, pixels, parts, n, row_step, telea):
    """Recompute the listed gradient parts of the first ``n`` pixels of ``pixels``
    (``parts``: 1 horizontal, 2 vertical). INPAINT_TELEA keeps (horizontal, vertical);
    INPAINT_NS the isophote (-vertical, horizontal) and its squared length."""
    for k in range(n):  # written out: an inlined helper called in this loop slows the march
        z = pixels[k]
        zr = z * _REC
        code = quirk[z]
        if parts[k] & 1:
            ha, hb, hc, hd = _hpos(z, row_step, code)
            gh = gradient_part(
                state[z + U1] != INSIDE, state[z - U1] != INSIDE, rec[ha], rec[hb], rec[hc],
                rec[hd], rec[hc], telea,
            )  # fmt: skip
            rec[zr + (_GX if telea else _GY)] = gh
        if parts[k] & 2:
            va, vb, vc, vd = _vpos(z, row_step, code)
            gv = gradient_part(
                state[z + row_step] != INSIDE, state[z - row_step] != INSIDE, rec[va], rec[vb],
                rec[vc], rec[vd], rec[vd], telea,
            )  # fmt: skip
            if telea:
                rec[zr + _GY] = gv
            else:
                rec[zr + _GX] = -gv
        if not telea:
            rec[zr + _GG] = rec[zr + _GX] * rec[zr + _GX] + rec[zr + _GY] * rec[zr + _GY]


# --- the image and its mask ----------------------------------------------------------------


@kernel
def _load(work, image, mask, h, w, stride, margin):
    """Reset the work arrays of the padded image and load ``image`` and ``mask`` into them.
    Returns the first and last padded row that holds a masked pixel."""
    rows = h + 2
    npixels = (rows + 2 * margin) * stride
    for z in range(npixels):
        work.state[z] = KNOWN
        work.quirk[z] = 0
        work.near_quirk[z] = 0
        work.time[z] = F32(1.0e6)
    rec = work.rec
    for z in range(npixels * 8):
        rec[z] = F32(0.0)
    for z in range(npixels):
        rec[z * 8] = _NONE
    first = rows
    last = 0
    for a in range(h):
        base = (a + 1 + margin) * stride + 1 + margin
        for b in range(w):
            rec[(base + b) * 8 + 1] = F32(image[a, b])
            if mask[a, b]:
                work.state[base + b] = INSIDE
                first = min(first, a + 1)
                last = max(last, a + 1)
    return first, last


@kernel
def _mark_quirks(work, rows, cols, stride, margin):
    """Flag OpenCV's border index quirks (see :func:`_hpos`) and the pixels near them."""
    for b in range(1, cols - 1):
        work.quirk[(1 + margin) * stride + margin + b] |= 1
        work.quirk[(rows - 2 + margin) * stride + margin + b] |= 2
    for a in range(1, rows - 1):
        work.quirk[(a + margin) * stride + margin + 1] |= 4
        work.quirk[(a + margin) * stride + margin + cols - 2] |= 8
    for b in range(cols):
        for a in (0, 1, 2, rows - 3, rows - 2, rows - 1):
            work.near_quirk[(a + margin) * stride + margin + b] = 1
    for a in range(rows):
        for b in (0, 1, 2, cols - 3, cols - 2, cols - 1):
            work.near_quirk[(a + margin) * stride + margin + b] = 1


@kernel
def _narrow_band(work, rows, cols, stride, margin):
    """The narrow band (cross dilation of the mask minus the mask) at time 0, its pixels
    made the queue's nodes in raster order. Returns how many."""
    state = work.state
    n = 0
    for a in range(1, rows - 1):
        base = (a + margin) * stride + margin
        for b in range(1, cols - 1):
            p = base + b
            if state[p] != INSIDE and (
                state[p - stride] == INSIDE
                or state[p + stride] == INSIDE
                or state[p - 1] == INSIDE
                or state[p + 1] == INSIDE
            ):
                work.time[p] = F32(0.0)
                work.queue.pixel[n] = p
                n += 1
    return n


# --- INPAINT_TELEA's times outside the mask -------------------------------------------------


@kernel
def _ring_region(state, ring, time, rows, cols, radius, stride, margin):
    """Mark INSIDE in ``ring`` the pixels outside the mask and the band, up to ``radius``
    pixels from the mask (its square dilation, separable: along rows, then columns)."""
    lo = margin * stride
    hi = (rows + margin) * stride
    for z in range(lo, hi):
        ring[z] = 0
    for a in range(1, rows - 1):
        base = (a + margin) * stride + margin
        last = -(1 << 30)
        for b in range(1, cols - 1):
            if state[base + b] == INSIDE:
                last = b
            if b - last <= radius:
                ring[base + b] = 1
        last = 1 << 30
        for b in range(cols - 2, 0, -1):
            if state[base + b] == INSIDE:
                last = b
            if last - b <= radius:
                ring[base + b] = 1
    for b in range(1, cols - 1):
        last = -(1 << 30)
        for a in range(1, rows - 1):
            p = (a + margin) * stride + margin + b
            if ring[p] & 1:
                last = a
            if a - last <= radius:
                ring[p] |= 2
        last = 1 << 30
        for a in range(rows - 2, 0, -1):
            p = (a + margin) * stride + margin + b
            if ring[p] & 1:
                last = a
            if last - a <= radius:
                ring[p] |= 2
    for a in range(1, rows - 1):
        base = (a + margin) * stride + margin
        for b in range(1, cols - 1):
            p = base + b
            if ring[p] & 2 and state[p] != INSIDE and time[p] != F32(0.0):
                ring[p] = INSIDE
            else:
                ring[p] = KNOWN


@kernel
def _telea_ring(work, rows, cols, radius, stride, margin, n):
    """Times outside the mask, up to ``radius`` pixels away, negated (OpenCV: icvCalcFMM on
    the square dilation of the mask minus mask and band). The band's ``n`` pixels are the
    first nodes of the ring's queue."""
    ring, time, queue = work.ring, work.time, work.ring_queue
    for k in range(n):
        queue.pixel[k] = work.queue.pixel[k]
    b1 = one_bucket(queue, n, F32(0.0))
    _ring_region(work.state, ring, time, rows, cols, radius, stride, margin)
    row_step = U64(stride)
    b0 = 0
    while b0 < b1:
        p, b0 = pop(queue, b0)
        ring[p] = CHANGE
        for c in (p - row_step, p - U1, p + row_step, p + U1):
            if ring[c] != INSIDE:
                continue
            t = arrival(
                ring[c - row_step] != INSIDE, time[c - row_step],
                ring[c + row_step] != INSIDE, time[c + row_step],
                ring[c - U1] != INSIDE, time[c - U1], ring[c + U1] != INSIDE, time[c + U1],
            )  # fmt: skip
            time[c] = t
            ring[c] = BAND
            b1, n = push(queue, b0, b1, n, c, t)
    for z in range(margin * stride, (rows + margin) * stride):
        if ring[z] == CHANGE:
            time[z] = -time[z]


@kernel
def _contributing(work, rows, cols, stride, margin, first, last, radius, telea):
    """Give the known pixels inside the frame their time in ``rec`` (they contribute), and
    a gradient to those within ``radius`` rows of the mask rows [first, last] (no other
    ever contributes)."""
    for a in range(1, rows - 1):
        base = (a + margin) * stride + margin
        for b in range(1, cols - 1):
            p = base + b
            if work.state[p] != INSIDE:
                work.rec[p * 8] = work.time[p]
    row_step = U64(stride)
    pixels, parts = work.grad_pixel, work.grad_parts
    parts[0] = 3
    for a in range(max(1, first - radius), min(rows - 1, last + radius + 1)):
        base = (a + margin) * stride + margin
        for b in range(1, cols - 1):
            z = U64(base + b)
            if work.state[z] != INSIDE:
                pixels[0] = z
                _update_gradients(work.rec, work.state, work.quirk, pixels, parts, 1, row_step,
                                  telea)  # fmt: skip


# --- filling -------------------------------------------------------------------------------


@kernel(inline="always")
def _time_gradient(time, c, t, row_step, up, down, left, right):
    """The gradient of the arrival time at c (time ``t``) by OpenCV's one-sided rules;
    ``up``... ``right``: whether each neighbour is known."""
    if right:
        gx = (time[c + U1] - time[c - U1]) * F32(0.5) if left else time[c + U1] - t
    else:
        gx = t - time[c - U1] if left else F32(0.0)
    if down:
        gy = (time[c + row_step] - time[c - row_step]) * F32(0.5) if up else time[c + row_step] - t
    else:
        gy = t - time[c - row_step] if up else F32(0.0)
    return gx, gy


@kernel(inline="always")
def _telea_value(rec, c, t, gx, gy, flat, offsets, memo, times, weights, used):
    """INPAINT_TELEA's value at c (time ``t``, time gradient (gx, gy)) from the contributing
    pixels at the in-radius offsets (``flat``; ``offsets``: r.x, r.y, distance weight,
    |r|^2 each). The weights depend only on which neighbours contribute, their times, the
    time here and its gradient: the last computed ones are reused if all of those match.
    ``memo`` holds what they were computed for: (valid, time, gx, gy, weight sum, count),
    ``times`` each offset's time then, ``weights``/``used`` the weights and r and the flat
    offsets of those that contributed. Returns the value and the new ``memo``."""
    valid, mt, mgx, mgy, ms, mn = memo
    hit = valid and mt == t and mgx == gx and mgy == gy
    if hit:
        for o in range(flat.shape[0]):
            if rec[(c + flat[o]) * _REC] != times[o]:
                hit = False
                break
    ia = F32(0.0)
    jx = F32(0.0)
    jy = F32(0.0)
    if hit:
        for u in range(mn):
            z = (c + used[u]) * _REC
            wt = weights[3 * u]
            ia += wt * rec[z + _VALUE]
            jx -= wt * (rec[z + _GX] * weights[3 * u + 1])
            jy -= wt * (rec[z + _GY] * weights[3 * u + 2])
        s = ms
    else:
        s = F32(1.0e-20)
        mn = 0
        for o in range(flat.shape[0]):
            z = (c + flat[o]) * _REC
            tz = rec[z]
            times[o] = tz
            if tz == _NONE:
                continue
            rx = offsets[4 * o]
            ry = offsets[4 * o + 1]
            lev = F32(1.0 / (1.0 + abs(np.float64(tz - t))))
            d = rx * gx + ry * gy
            if abs(d) <= 0.01:
                d = F32(0.000001)
            wt = abs(offsets[4 * o + 2] * lev * d)
            ia += wt * rec[z + _VALUE]
            jx -= wt * (rec[z + _GX] * rx)
            jy -= wt * (rec[z + _GY] * ry)
            s += wt
            used[mn] = flat[o]
            weights[3 * mn] = wt
            weights[3 * mn + 1] = rx
            weights[3 * mn + 2] = ry
            mn += 1
        memo = (True, t, gx, gy, s, mn)
    sat = ia / s + (jx + jy) / (np.sqrt(jx * jx + jy * jy) + F32(1.0e-20))
    return to_u16(np.float64(sat) + 0.5), memo


@kernel(inline="always")
def _ns_value(rec, c, flat, offsets):
    """INPAINT_NS's value at c from the contributing pixels at the in-radius offsets, each
    weighted by its distance weight and |r . isophote| / (|r| |isophote|)."""
    ia = F32(0.0)
    s = F32(1.0e-20)
    for o in range(flat.shape[0]):
        z = (c + flat[o]) * _REC
        if rec[z] == _NONE:
            continue
        d = offsets[4 * o] * rec[z + _GX] + offsets[4 * o + 1] * rec[z + _GY]
        if abs(d) <= 0.01:
            d = F32(0.000001)
        else:
            d = abs(d / np.sqrt(offsets[4 * o + 3] * rec[z + _GG]))
        wt = offsets[4 * o + 2] * d
        ia += wt * rec[z + _VALUE]
        s += wt
    return to_u16(np.float64(ia) / np.float64(s))


@kernel
def _march(work, n, stride, flat, offsets, telea):
    """Fill the mask in fast-marching order from the queue's one bucket of ``n`` band
    pixels: each pixel popped becomes known, and its unknown neighbours get their time,
    their value, and the gradients they change, then join the queue."""
    # the work arrays the loop uses, by name
    state, time, rec, queue, quirk = work.state, work.time, work.rec, work.queue, work.quirk
    near_quirk, pixels, parts = work.near_quirk, work.grad_pixel, work.grad_parts
    times, weights, used = work.last_time, work.last_weight, work.last_offset
    row_step = U64(stride)
    memo = (False, F32(0.0), F32(0.0), F32(0.0), F32(0.0), 0)  # no Telea weights yet
    b0 = 0
    b1 = 1
    while b0 < b1:
        p, b0 = pop(queue, b0)
        state[p] = KNOWN
        for c in (p - row_step, p - U1, p + row_step, p + U1):
            if state[c] != INSIDE:
                continue
            up = state[c - row_step] != INSIDE
            down = state[c + row_step] != INSIDE
            left = state[c - U1] != INSIDE
            right = state[c + U1] != INSIDE
            t = arrival(up, time[c - row_step], down, time[c + row_step], left, time[c - U1],
                        right, time[c + U1])  # fmt: skip
            time[c] = t
            if telea:
                gx, gy = _time_gradient(time, c, t, row_step, up, down, left, right)
                v, memo = _telea_value(rec, c, t, gx, gy, flat, offsets, memo, times, weights,
                                       used)  # fmt: skip
            else:
                v = _ns_value(rec, c, flat, offsets)
            rec[c * _REC + _VALUE] = v
            rec[c * _REC] = t
            state[c] = BAND
            # the gradient parts that read c (1: horizontal, 2: vertical): next to a border
            # quirk all of its 3 x 3 neighbourhood's, else its own and those of its neighbours
            # that contribute (listed here: as an inlined helper this slows the loop measurably)
            n_changed = 0
            if near_quirk[c]:
                for z in (c - row_step - U1, c - row_step, c - row_step + U1, c - U1, c, c + U1,
                          c + row_step - U1, c + row_step, c + row_step + U1):  # fmt: skip
                    if rec[z * _REC] != _NONE:
                        pixels[n_changed] = z
                        parts[n_changed] = 3
                        n_changed += 1
            else:
                pixels[0] = c
                parts[0] = 3
                n_changed = 1
                for z in (c - U1, c + U1):
                    if rec[z * _REC] != _NONE:
                        pixels[n_changed] = z
                        parts[n_changed] = 1
                        n_changed += 1
                for z in (c - row_step, c + row_step):
                    if rec[z * _REC] != _NONE:
                        pixels[n_changed] = z
                        parts[n_changed] = 2
                        n_changed += 1
            _update_gradients(rec, state, quirk, pixels, parts, n_changed, row_step, telea)
            b1, n = push(queue, b0, b1, n, c, t)


@kernel
def inpaint_image(image, mask, h, w, radius, telea, stride, margin, flat, offsets, work):
    """Inpaint rows [0, h) of the uint16 image ``image`` (width w) where ``mask`` is set, in
    place, as cv2.inpaint does. ``flat``/``offsets``: the in-radius offsets
    (:func:`~dfsim.completion.fmm_common.offsets` for this ``stride``); ``work``: work
    arrays (:func:`new_work`) for (h + 2 + 2 margin) * stride pixels."""
    rows = h + 2
    cols = w + 2
    first, last = _load(work, image, mask, h, w, stride, margin)
    _mark_quirks(work, rows, cols, stride, margin)
    n = _narrow_band(work, rows, cols, stride, margin)
    if n == 0:
        return
    one_bucket(work.queue, n, F32(0.0))
    if telea:
        _telea_ring(work, rows, cols, radius, stride, margin, np.int64(n))
    _contributing(work, rows, cols, stride, margin, first, last, radius, telea)
    _march(work, n, stride, flat, offsets, telea)
    for a in range(h):
        base = (a + 1 + margin) * stride + 1 + margin
        for b in range(w):
            if mask[a, b]:
                image[a, b] = np.uint16(work.rec[(base + b) * 8 + 1])


@kernel
def inpaint_one(image, mask, radius, telea, flat, offsets):
    """:func:`inpaint_image` of a whole image, with its own work arrays."""
    h, w = image.shape
    stride = w + 2 + 2 * radius
    work = new_work((h + 2 + 2 * radius) * stride, flat.shape[0])
    inpaint_image(image, mask, h, w, radius, telea, stride, radius, flat, offsets, work)
