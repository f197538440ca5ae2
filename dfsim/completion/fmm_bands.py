"""Inpainting of whole lost rows: OpenCV's fast-marching inpainting specialised to bands.

When every lost pixel of a crop lies in a fully lost row, which is what a lost packet of
whole rows leaves, the algorithm of :mod:`dfsim.completion.fmm_opencv` is run specialised
to that geometry instead of bit for bit. Fast marching from a straight front has a known
answer and needs no queue: a lost row's arrival time is its distance from the nearest
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

Layout: the crop's values and gradients are flat arrays of row stride w (:class:`BandWork`).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from dfsim.completion.fmm_common import F32, U1, U64, gradient_part, inv_length, kernel, to_u16

BandWork = namedtuple(
    "BandWork",
    [
        "values",  # the crop's values (flat)
        "grad_x",  # gradients (flat): INPAINT_TELEA (horizontal, vertical), INPAINT_NS
        "grad_y",  # the isophote (-vertical, horizontal)
        "inv_grad",  # INPAINT_NS: 1 / |isophote| (0 for the zero vector)
        "time",  # per row: its arrival time (negated for a received row)
        "known",  # per row: known yet
        "src",  # per listed offset (see _list_offsets): its flat offset,
        "dx",  # its column step,
        "weight",  # its weight (INPAINT_NS: distance weight),
        "coef_x",  # INPAINT_TELEA: weight r.x, INPAINT_NS: r.x,
        "coef_y",  # INPAINT_TELEA: weight r.y, INPAINT_NS: r.y,
        "inv_r",  # INPAINT_NS: 1 / |r|
        "sums",  # per column of the row being filled: value, gradient x and y, weight sums
        "ns_grad",  # INPAINT_NS's work rows (see _ns_row)
        "step_weights",  # INPAINT_NS's weights per column step (see new_band_work)
        "near_known",  # INPAINT_NS: rows above (1) and below (2) known,
        "far_known",  # and the row beyond each known
    ],
)


@kernel
def new_band_work(h, w, noffsets, radius):
    """Work arrays for crops of up to h x w pixels and ``noffsets`` in-radius offsets.
    ``step_weights[:, dl]`` for column step dl: 1 / (|r|^4 + 1) and 1 / |r| for r = (dl, 0),
    then for r = (dl, +-1)."""
    f32 = np.float32
    step_weights = np.zeros((4, radius + 1), f32)
    for dl in range(1, radius + 1):
        v0 = F32(dl * dl)
        v1 = F32(dl * dl + 1)
        step_weights[0, dl] = F32(1.0) / (v0 * v0 + F32(1.0))
        step_weights[1, dl] = F32(1.0) / F32(dl)
        step_weights[2, dl] = F32(1.0) / (v1 * v1 + F32(1.0))
        step_weights[3, dl] = F32(1.0 / np.sqrt(dl * dl + 1.0))
    return BandWork(
        np.empty(h * w, f32),
        np.empty(h * w, f32),
        np.empty(h * w, f32),
        np.empty(h * w, f32),
        np.empty(h, f32),
        np.empty(h, np.bool_),
        np.empty(noffsets, np.uint64),
        np.empty(noffsets, np.int64),
        np.empty(noffsets, f32),
        np.empty(noffsets, f32),
        np.empty(noffsets, f32),
        np.empty(noffsets, f32),
        np.empty((4, w), f32),
        np.empty((6, w), f32),
        step_weights,
        np.zeros(3, np.bool_),
        np.zeros(3, np.bool_),
    )


@kernel
def _row_times(time, lost, h):
    """Each row's arrival time: a lost row's distance from the nearest received row; a
    received row's distance from the nearest lost row, minus one, negated (OpenCV's ring
    outside the mask); 1e6 where there is no row of the other kind."""
    received = lost_row = -1  # the nearest row of each kind seen so far
    for y in range(h):  # distance from the nearest row of the other kind above ...
        other = received if lost[y] else lost_row
        time[y] = F32(y - other) if other >= 0 else F32(1.0e6)
        if lost[y]:
            lost_row = y
        else:
            received = y
    received = lost_row = -1
    for y in range(h - 1, -1, -1):  # ... or below
        other = received if lost[y] else lost_row
        if other >= 0 and F32(other - y) < time[y]:
            time[y] = F32(other - y)
        if lost[y]:
            lost_row = y
        else:
            received = y
    for y in range(h):
        if not lost[y] and time[y] < F32(1.0e6):
            time[y] -= F32(1.0)
    for y in range(h):
        if not lost[y]:
            time[y] = -time[y]


@kernel(nsz=True)
def _row_gradients(values, known, y, h, w, grad_x, grad_y, inv_grad, telea, horizontal):
    """OpenCV's gradI of the pixels of known row ``y``, from the known rows around it: a
    missing neighbour, or one outside the crop, gives the one-sided or zero rule.
    INPAINT_TELEA keeps (horizontal, vertical) in (grad_x, grad_y); INPAINT_NS the isophote
    (-vertical, horizontal) and the reciprocal of its length in ``inv_grad`` (0 where it is
    0). The horizontal part depends on the row alone: recomputed only with ``horizontal``."""
    up = y > 0 and known[y - 1]
    dn = y < h - 1 and known[y + 1]
    r = U64(y * w)
    uw = U64(w)
    two = F32(2.0)
    H = grad_x if telea else grad_y  # where the horizontal part goes
    if horizontal:
        e = r + uw - U1
        if telea:
            H[r] = values[r + U1] - values[r]
            H[e] = values[e] - values[e - U1]
            for z in range(r + U1, e):
                H[z] = (values[z + U1] - values[z - U1]) * two
        else:
            H[r] = abs(values[r + U1] - values[r]) * two
            H[e] = abs(values[e] - values[e - U1]) * two
            for z in range(r + U1, e):
                H[z] = abs(values[z + U1] - values[z]) + abs(values[z] - values[z - U1])
    # the vertical part (negated for INPAINT_NS, whose isophote is (-vertical, horizontal))
    sg = F32(1.0) if telea else F32(-1.0)
    Vv = grad_y if telea else grad_x
    if dn and up:
        for z in range(r, r + uw):
            if telea:
                Vv[z] = (values[z + uw] - values[z - uw]) * two
            else:
                Vv[z] = -(abs(values[z + uw] - values[z]) + abs(values[z] - values[z - uw]))
    elif dn:
        for z in range(r, r + uw):
            Vv[z] = sg * (
                values[z + uw] - values[z] if telea else abs(values[z + uw] - values[z]) * two
            )
    elif up:
        for z in range(r, r + uw):
            Vv[z] = sg * (
                values[z] - values[z - uw] if telea else abs(values[z] - values[z - uw]) * two
            )
    else:
        for z in range(r, r + uw):
            Vv[z] = F32(0.0)
    if not telea:
        for z in range(r, r + uw):
            inv_grad[z] = inv_length(grad_x[z], grad_y[z])


@kernel
def _list_offsets(work, y, h, w, t, gty, step_x, step_y, offsets, telea):
    """List the in-radius offsets (``step_x``/``step_y``; ``offsets``: r.x, r.y, distance
    weight, |r|^2 each) that reach a known row from row ``y`` (time ``t``, vertical time
    gradient ``gty``) in ``work``'s per-offset arrays, with their weights (INPAINT_TELEA:
    weight, weight * r.x, weight * r.y) or their r and distance weight (INPAINT_NS).
    Returns how many."""
    m = 0
    for o in range(step_x.shape[0]):
        yy = y + step_y[o]
        if yy < 0 or yy >= h or not work.known[yy]:
            continue  # rows not yet known, and this row itself
        if not telea and abs(step_y[o]) == 1 and step_x[o] < 0:
            continue  # INPAINT_NS: gradient changes as the row fills (see _ns_row)
        rx = offsets[4 * o]
        ry = offsets[4 * o + 1]
        work.src[m] = U64((yy - y) * w + step_x[o])  # wraps: unsigned, as flat indices
        work.dx[m] = step_x[o]
        if telea:
            lev = F32(1.0 / (1.0 + abs(np.float64(work.time[yy] - t))))
            d = ry * gty
            if abs(d) <= 0.01:
                d = F32(0.000001)
            wt = abs(offsets[4 * o + 2] * lev * d)
            work.weight[m] = wt
            work.coef_x[m] = wt * rx
            work.coef_y[m] = wt * ry
        else:
            work.weight[m] = offsets[4 * o + 2]
            work.coef_x[m] = rx
            work.coef_y[m] = ry
            work.inv_r[m] = F32(1.0 / np.sqrt(np.float64(offsets[4 * o + 3])))
        m += 1
    return m


@kernel(nsz=True)
def _row_sums(values, grad_x, grad_y, inv_grad, inv_r, sums, y, w, m, src, dx, weight,
              coef_x, coef_y, telea):  # fmt: skip
    """The weighted sums of every pixel of row ``y`` over the row's ``m`` listed offsets
    (:func:`_list_offsets`): one offset at a time across the row, so the additions of
    neighbouring pixels are independent and run as vector instructions."""
    ia, jx, jy, s = sums[0], sums[1], sums[2], sums[3]
    for x in range(w):
        ia[x] = F32(0.0)
        jx[x] = F32(0.0)
        jy[x] = F32(0.0)
        s[x] = F32(1.0e-20)
    for k in range(m):
        step = dx[k]
        x0 = U64(max(0, -step))
        n = U64(min(w, w - step)) - x0
        zq = U64(y * w) + x0 + src[k]  # first source pixel (unsigned: no wraparound test)
        if telea:
            wt = weight[k]
            a = coef_x[k]
            b = coef_y[k]
            for i in range(n):  # one loop per source array: each one vectorises
                ia[x0 + i] += wt * values[zq + i]
                s[x0 + i] += wt
            for i in range(n):
                jx[x0 + i] -= a * grad_x[zq + i]
            for i in range(n):
                jy[x0 + i] -= b * grad_y[zq + i]
        else:
            dw = weight[k]
            a = coef_x[k]
            b = coef_y[k]
            c = inv_r[k]
            for i in range(n):
                d = a * grad_x[zq + i] + b * grad_y[zq + i]
                if abs(d) <= 0.01:
                    d = F32(0.000001)
                else:  # |r . isophote| / (|r| |gradient|)
                    d = abs(d) * c * inv_grad[zq + i]
                wt = dw * d
                ia[x0 + i] += wt * values[zq + i]
                s[x0 + i] += wt


@kernel
def _telea_row(values, image, sums, y, w):
    """Fill INPAINT_TELEA's row ``y`` from its sums: the weighted mean plus the gradient
    term, rounded to 16 bits."""
    ia, jx, jy, sw = sums[0], sums[1], sums[2], sums[3]
    for x in range(w):
        a, b = jx[x], jy[x]
        sat = ia[x] / sw[x] + (a + b) / (np.sqrt(a * a + b * b) + F32(1.0e-20))
        v = to_u16(np.float64(sat) + 0.5)
        values[y * w + x] = v
        image[y, x] = np.uint16(v)


@kernel(inline="always")
def _ns_left_sums(values, grad_h, y, w, radius, reach, x, a, sx, ns_grad, step_weights, ok):
    """Add to pixel x's sums (``a``, ``sx``) the pixels to its left whose gradient changed
    as row ``y`` filled: up to ``reach`` columns in the rows above and below (when known,
    ``ok``), up to ``radius`` in its own row. Returns the sums."""
    for i in (1, 2):
        if not ok[i]:
            continue
        ry = F32(1.0) if i == 1 else F32(-1.0)  # r = p - q = (dl, ry)
        yq = y + (-1 if i == 1 else 1)
        for dl in range(1, min(reach, x) + 1):
            xq = x - dl
            d = F32(dl) * -ns_grad[2 * i, xq] + ry * grad_h[yq * w + xq]
            if abs(d) <= 0.01:
                d = F32(0.000001)
            else:
                d = abs(d) * step_weights[3, dl] * ns_grad[2 * i + 1, xq]
            wt = step_weights[2, dl] * d
            a += wt * values[yq * w + xq]
            sx += wt
    r = y * w
    for dl in range(1, min(radius, x) + 1):
        xq = x - dl
        d = F32(dl) * -ns_grad[0, xq]  # r = (dl, 0)
        if abs(d) <= 0.01:
            d = F32(0.000001)
        else:
            d = abs(d) * step_weights[1, dl] * ns_grad[1, xq]
        wt = step_weights[0, dl] * d
        a += wt * values[r + xq]
        sx += wt
    return a, sx


@kernel(inline="always")
def _ns_left_gradients(values, grad_h, y, w, x, ns_grad, ok, far):
    """Update ``ns_grad`` now that pixel x of row ``y`` is filled: the row's gradients at
    x (its right neighbour not yet filled) and x - 1 (whose right neighbour is now x); the
    rows above and below at column x (their vertical part now reads pixel x)."""
    r = y * w
    for xq in range(max(0, x - 1), x + 1):
        zq = r + xq
        mid = values[zq]
        up, dn = ok[1], ok[2]
        gvq = gradient_part(dn, up, values[zq + w if dn else zq], values[zq - w if up else zq],
                            mid, mid, mid, False)  # fmt: skip
        right = xq < x and xq < w - 1
        left = xq > 0
        gh = gradient_part(right, left, values[zq + 1 if right else zq],
                           values[zq - 1 if left else zq], mid, mid, mid, False)  # fmt: skip
        ns_grad[0, xq] = gvq
        ns_grad[1, xq] = inv_length(gvq, gh)
    for i in (1, 2):
        if ok[i]:
            yq = y + (-1 if i == 1 else 1)
            beyond = yq + (-1 if i == 1 else 1)
            zq = yq * w + x
            mid = values[zq]
            # row y (filled) on one side, ``beyond`` on the other
            gvq = gradient_part(True, far[i], values[r + x],
                                values[beyond * w + x if far[i] else zq], mid, mid, mid,
                                False)  # fmt: skip
            ns_grad[2 * i, x] = gvq
            ns_grad[2 * i + 1, x] = inv_length(gvq, grad_h[zq])


@kernel
def _ns_row(values, grad_h, image, known, y, h, w, radius, sum_v, sum_w, ns_grad,
            step_weights, ok, far):  # fmt: skip
    """Finish INPAINT_NS's row ``y`` left to right, as OpenCV's queue fills it: each pixel
    adds to its sums over the other rows (``sum_v``, ``sum_w``) the neighbours whose
    gradient changes as the row fills, with their gradients at that moment: the pixels of
    its own row filled before it (up to ``radius`` to its left), and those left of it in
    the rows just above and below (their vertical gradient part now reads a filled pixel);
    then it is filled. ``grad_h``: the other rows' horizontal gradient parts; ``ns_grad``:
    work rows, per column, for this row (0) and the rows above (1) and below (2), the
    vertical gradient part and the reciprocal gradient length of that neighbour once
    (y, column) is filled; ``step_weights``: the distance weights per column step
    (:func:`new_band_work`); ``ok``/``far``: work flags (rows above and below known, and
    the rows beyond them)."""
    reach = 0  # columns within the radius one row away
    while (reach + 1) * (reach + 1) + 1 <= radius * radius:
        reach += 1
    for i in (1, 2):
        yq = y + (-1 if i == 1 else 1)
        beyond = yq + (-1 if i == 1 else 1)
        ok[i] = 0 <= yq < h and known[yq]
        far[i] = ok[i] and 0 <= beyond < h and known[beyond]
    for x in range(w):
        a, sx = _ns_left_sums(
            values, grad_h, y, w, radius, reach, x, sum_v[x], sum_w[x], ns_grad, step_weights, ok
        )
        val = to_u16(np.float64(a) / np.float64(sx))
        values[y * w + x] = val
        image[y, x] = np.uint16(val)
        _ns_left_gradients(values, grad_h, y, w, x, ns_grad, ok, far)


@kernel
def inpaint_rows(image, lost, h, w, radius, telea, step_x, step_y, offsets, work):
    """Fill the lost rows (``lost``) of rows [0, h) of the uint16 image ``image`` (width w)
    in place: Telea's or OpenCV's Navier-Stokes weights, rows in fast-marching order (see
    the module docstring). ``step_x``/``step_y``/``offsets``: the in-radius offsets
    (:func:`~dfsim.completion.fmm_common.steps`, :func:`~dfsim.completion.fmm_common.offsets`);
    ``work``: work arrays (:func:`new_band_work`)."""
    values, time, known = work.values, work.time, work.known
    gx, gy, ig = work.grad_x, work.grad_y, work.inv_grad
    _row_times(time, lost, h)
    for y in range(h):
        known[y] = not lost[y]
        for x in range(w):
            values[y * w + x] = F32(image[y, x])
    for y in range(h):
        if known[y]:
            _row_gradients(values, known, y, h, w, gx, gy, ig, telea, True)
    tmax = F32(0.0)
    for y in range(h):
        if not known[y] and time[y] < F32(1.0e6):
            tmax = max(tmax, time[y])
    for step in range(h * int(tmax)):  # rows by time, then top to bottom
        y = step % h
        if known[y] or time[y] != F32(step // h + 1):
            continue
        t = time[y]
        up = y > 0 and known[y - 1]
        dn = y < h - 1 and known[y + 1]
        if dn:  # the time gradient (vertical only: a row's pixels share their time)
            gty = (time[y + 1] - time[y - 1]) * F32(0.5) if up else time[y + 1] - t
        else:
            gty = t - time[y - 1] if up else F32(0.0)
        m = _list_offsets(work, y, h, w, t, gty, step_x, step_y, offsets, telea)
        _row_sums(values, gx, gy, ig, work.inv_r, work.sums, y, w, m, work.src, work.dx,
                  work.weight, work.coef_x, work.coef_y, telea)  # fmt: skip
        if telea:
            _telea_row(values, image, work.sums, y, w)
        else:
            _ns_row(values, gy, image, known, y, h, w, radius, work.sums[0], work.sums[3],
                    work.ns_grad, work.step_weights, work.near_known, work.far_known)  # fmt: skip
        known[y] = True
        for yy in range(max(0, y - 1), min(h, y + 2)):
            if known[yy]:
                _row_gradients(values, known, yy, h, w, gx, gy, ig, telea, yy == y)
