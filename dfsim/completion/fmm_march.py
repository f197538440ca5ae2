"""Fast marching as OpenCV's inpainting runs it: the priority queue of arrival times and
the arrival time of a pixel from its four neighbours (OpenCV's FastMarching_solve and
min4).

OpenCV's queue pops the smallest arrival time first and, among equal times, the pixel
queued first. Here a :class:`Queue` holds buckets of equal times, sorted by time in
``time[b0:b1]``, each a first-in first-out list of nodes: ``head``/``tail`` of a bucket are
its first and last node, ``pixel`` and ``after`` of a node its pixel and the next node of
its bucket (-1 for none).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from dfsim.completion.fmm_common import F32, U64, kernel

Queue = namedtuple("Queue", ["time", "head", "tail", "pixel", "after"])


@kernel
def new_queue(size):
    """A :class:`Queue` for up to ``size`` buckets and nodes."""
    i64 = np.int64
    return Queue(
        np.empty(size, np.float32),
        np.empty(size, i64),
        np.empty(size, i64),
        np.empty(size, i64),
        np.empty(size, i64),
    )


@kernel(inline="always")
def one_bucket(queue, n, t):
    """Make nodes 0..n-1 (their pixels already set) one bucket of time ``t``, in order.
    Returns the number of buckets (1)."""
    for k in range(n - 1):
        queue.after[k] = k + 1
    queue.after[n - 1] = -1
    queue.time[0] = t
    queue.head[0] = 0
    queue.tail[0] = n - 1
    return 1


@kernel(inline="always")
def pop(queue, b0):
    """Take the first pixel of the earliest bucket ``b0``. Returns the pixel and the new
    earliest bucket."""
    node = queue.head[b0]
    if queue.after[node] < 0:
        b0 += 1
    else:
        queue.head[b0] = queue.after[node]
    return U64(queue.pixel[node]), b0


@kernel(inline="always")
def push(queue, b0, b1, n, pixel, t):
    """Queue ``pixel`` at time ``t`` as node ``n``: last of its bucket of equal times, a
    new bucket in time order if there is none (buckets b0..b1-1). Returns the new (b1, n)."""
    queue.pixel[n] = np.int64(pixel)
    queue.after[n] = -1
    k = b1 - 1
    while k >= b0 and queue.time[k] > t:
        k -= 1
    if k >= b0 and queue.time[k] == t:
        queue.after[queue.tail[k]] = n
        queue.tail[k] = n
    else:
        for m in range(b1, k + 1, -1):
            queue.time[m] = queue.time[m - 1]
            queue.head[m] = queue.head[m - 1]
            queue.tail[m] = queue.tail[m - 1]
        queue.time[k + 1] = t
        queue.head[k + 1] = n
        queue.tail[k + 1] = n
        b1 += 1
    return b1, n + 1


@kernel
def solve(a_known, a_time, b_known, b_time):
    """OpenCV's FastMarching_solve for neighbours a, b (known: not unknown)."""
    a11 = np.float64(a_time)
    a22 = np.float64(b_time)
    m12 = a22 if a11 > a22 else a11
    if a_known:
        if b_known:
            d = a11 - a22
            if abs(d) >= 1.0:
                sol = 1.0 + m12
            else:
                sol = (a11 + a22 + np.sqrt(2.0 - d * d)) * 0.5
        else:
            sol = 1.0 + a11
    elif b_known:
        sol = 1.0 + a22
    else:
        sol = 1.0 + m12
    return F32(sol)


@kernel
def arrival(up_known, up, down_known, down, left_known, left, right_known, right):
    """OpenCV's min4 of the four one-sided solutions from the up, down, left and right
    neighbours (their times, and whether each is known)."""
    a = solve(up_known, up, left_known, left)
    b = solve(down_known, down, left_known, left)
    e = solve(up_known, up, right_known, right)
    d = solve(down_known, down, right_known, right)
    a = b if a > b else a
    e = d if e > d else e
    return e if a > e else a
