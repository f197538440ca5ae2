"""Bit allocation over fitted distortion-rate surfaces (:class:`~dfsim.experiment.
rate_distortion.DRFit`): the closed form for one task and ``N`` streams (:func:`allocate`),
the measured operating point nearest to it (:func:`nearest_operating_point`), a weighted
allocation for several tasks (:func:`allocate_weighted`) and the Pareto front of two
streams' allocations (:func:`pareto_front_two_streams`).

The closed form (reverse water-filling). Minimise ``sum_j alpha_j 2^(-beta_j R_j)`` subject
to ``sum_j R_j = R_t`` and ``R_j >= 0`` (``gamma`` is a constant). The objective is convex
and decreasing in every ``R_j``, so the KKT conditions are sufficient: with multiplier
``lambda``, each stream with ``R_j > 0`` has ``alpha_j beta_j ln2 2^(-beta_j R_j) = lambda``,
i.e. ``R_j = (c_j - L) / beta_j`` with ``c_j = log2(alpha_j beta_j ln2)`` and ``L =
log2 lambda``; each stream with ``R_j = 0`` has ``c_j <= L`` (its first bit is worth less
than the others' last). Summing over the active set ``A`` gives ``L = (sum_A c_j / beta_j
- R_t) / sum_A 1 / beta_j``. Starting from every stream active, a stream whose rate comes
out negative is set to zero and ``L`` re-solved on the rest, until none is negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from dfsim.errors import UserError
from dfsim.experiment.rate_distortion import LN2, DRFit


@dataclass(frozen=True)
class Allocation:
    """Rates ``rates`` (one per stream) summing to ``total_rate``, and the distortion the
    fitted surface(s) give there (one per task)."""

    rates: np.ndarray
    total_rate: float
    distortion: np.ndarray
    fits: tuple[DRFit, ...]


@dataclass(frozen=True)
class OperatingPoint:
    """A measured operating point: its index and label among those given, its per-stream
    rates and the model's distortion there."""

    index: int
    label: str
    rates: np.ndarray
    distortion: float


@dataclass(frozen=True)
class ParetoFront:
    """Allocations ``R_1 = t R_t, R_2 = (1 - t) R_t`` of two streams: ``t`` (n), ``rates``
    (n x 2), ``distortion`` (n x k, one column per task) and ``nondominated`` (n, bool):
    no other allocation is at most as distorted for every task and less for one."""

    t: np.ndarray
    rates: np.ndarray
    distortion: np.ndarray
    nondominated: np.ndarray


def _check_total(total_rate: float) -> float:
    r = float(total_rate)
    if not r >= 0 or not np.isfinite(r):
        raise UserError(f"total rate: must be a finite number >= 0, got {total_rate}")
    return r


def allocate(fit: DRFit, total_rate: float) -> Allocation:
    """The rates of ``fit``'s streams, summing to ``total_rate``, that minimise its
    distortion: the closed form of this module's docstring, rates clipped at zero and
    re-solved on the remaining streams."""
    rt = _check_total(total_rate)
    c = np.log2(fit.alpha * fit.beta * LN2)
    active = np.ones(fit.n_streams, dtype=bool)
    rates = np.zeros(fit.n_streams)
    while True:
        inv = 1.0 / fit.beta[active]
        level = ((c[active] * inv).sum() - rt) / inv.sum()
        r = (c[active] - level) / fit.beta[active]
        if (r >= 0).all():
            rates[:] = 0.0
            rates[active] = r
            break
        idx = np.flatnonzero(active)
        active[idx[r < 0]] = False  # their first bit is worth less: zero, re-solve the rest
    rates *= rt / rates.sum() if rates.sum() > 0 else 0.0  # exact sum despite rounding
    return Allocation(rates, rt, np.atleast_1d(fit.predict(rates[None, :])), (fit,))


def nearest_operating_point(allocation: Allocation, achievable, labels=None) -> OperatingPoint:
    """Of the measured operating points ``achievable`` (m x N per-stream rates, e.g. the
    configs of a codec grid), those whose rates sum to at most the allocation's total
    rate, the one nearest the allocation in the model's distortion (of the allocation's
    first fit). No such point is a one-line error naming the total and the smallest."""
    fit = allocation.fits[0]
    pts = np.asarray(achievable, dtype=float)
    pts = pts[:, None] if pts.ndim == 1 else pts
    if pts.ndim != 2 or pts.shape[1] != fit.n_streams or not len(pts):
        raise UserError(
            f"operating points: expected m x {fit.n_streams} rates, got shape {pts.shape}"
        )
    labels = [str(i) for i in range(len(pts))] if labels is None else list(labels)
    total = pts.sum(axis=1)
    ok = np.flatnonzero(total <= allocation.total_rate * (1 + 1e-12))
    if not len(ok):
        raise UserError(
            f"total rate {allocation.total_rate:g} is below every operating point "
            f"(the smallest needs {total.min():g})"
        )
    d = fit.predict(pts[ok])
    k = ok[int(np.argmin(np.abs(d - allocation.distortion[0])))]
    return OperatingPoint(int(k), labels[k], pts[k], float(fit.predict(pts[k][None, :])[0]))


def allocate_weighted(fits, weights, total_rate: float) -> Allocation:
    """Rates of ``N`` streams summing to ``total_rate`` that minimise ``sum_i w_i D_i(R)``
    over ``k`` tasks (``fits``: one surface per task, all of the same ``N``; ``weights``
    >= 0, not all zero). Numerical (SLSQP on the simplex, from the equal split and from
    each task's own closed-form allocation; the best is kept); ``distortion`` is each
    task's at the rates found."""
    fits = tuple(fits)
    w = np.asarray(weights, dtype=float)
    rt = _check_total(total_rate)
    if len(w) != len(fits) or not len(fits):
        raise UserError(f"weights: {len(w)} weights for {len(fits)} tasks")
    if (w < 0).any() or not w.sum() > 0:
        raise UserError(f"weights: must be >= 0 and not all zero, got {w.tolist()}")
    n = fits[0].n_streams
    if any(f.n_streams != n for f in fits):
        raise UserError("fits: every task's surface must take the same streams")

    def objective(r):
        return sum(wi * f.predict(r[None, :])[0] for wi, f in zip(w, fits, strict=True))

    starts = [np.full(n, rt / n), *(allocate(f, rt).rates for f in fits)]
    cons = ({"type": "eq", "fun": lambda r: r.sum() - rt},)
    best = None
    for x0 in starts:
        sol = minimize(objective, x0, method="SLSQP", bounds=[(0, rt)] * n, constraints=cons)
        x = np.clip(sol.x, 0, rt)
        x = x * (rt / x.sum()) if x.sum() > 0 else np.full(n, rt / n)
        if best is None or objective(x) < objective(best):
            best = x
    return Allocation(best, rt, np.array([f.predict(best[None, :])[0] for f in fits]), fits)


def pareto_front_two_streams(fits, total_rate: float, n: int = 101, bounds=None) -> ParetoFront:
    """The ``n`` allocations ``R_1 = t R_t``, ``R_2 = (1 - t) R_t`` (t evenly in [0, 1]) of
    two streams, every task's distortion at each (``fits``: one two-stream surface per
    task) and which are non-dominated. ``bounds`` (``((lo_1, hi_1), (lo_2, hi_2))``, e.g.
    the measured rates' range, outside which the surfaces extrapolate) keeps ``t`` to the
    splits with both rates inside; none inside is a one-line error."""
    fits = tuple(fits)
    rt = _check_total(total_rate)
    if not fits or any(f.n_streams != 2 for f in fits):
        raise UserError("Pareto front: every fit must be of two streams (2 x k)")
    if n < 2:
        raise UserError(f"Pareto front: n must be >= 2, got {n}")
    lo, hi = 0.0, 1.0
    if bounds is not None and rt > 0:
        (lo1, hi1), (lo2, hi2) = bounds
        lo, hi = max(lo, lo1 / rt, 1 - hi2 / rt), min(hi, hi1 / rt, 1 - lo2 / rt)
        if lo > hi:
            raise UserError(
                f"Pareto front: no split of {rt:g} keeps both rates in the measured ranges "
                f"{lo1:g}-{hi1:g} and {lo2:g}-{hi2:g}"
            )
    t = np.linspace(lo, hi, n)
    rates = np.column_stack([t * rt, (1 - t) * rt])
    dist = np.column_stack([f.predict(rates) for f in fits])
    return ParetoFront(t, rates, dist, nondominated(dist))


def nondominated(points) -> np.ndarray:
    """Which rows of ``points`` (n x k, smaller is better) no other row dominates (at most
    as large in every column, smaller in one)."""
    p = np.asarray(points, dtype=float)
    le = (p[:, None, :] <= p[None, :, :]).all(axis=2)  # le[a, b]: a at most b everywhere
    lt = (p[:, None, :] < p[None, :, :]).any(axis=2)
    dominated = (le & lt).any(axis=0)
    return ~dominated


def nearest_config(target, achievable) -> int:
    """Of the operating points ``achievable`` (m x N) whose rates sum to at most the
    target's, the one nearest ``target`` (N rates) in Euclidean distance; none is a
    one-line error naming the total and the smallest."""
    t = np.asarray(target, dtype=float)
    pts = np.asarray(achievable, dtype=float).reshape(-1, len(t))
    total = pts.sum(axis=1)
    ok = np.flatnonzero(total <= t.sum() * (1 + 1e-12))
    if not len(ok):
        raise UserError(
            f"total rate {t.sum():g} is below every operating point "
            f"(the smallest needs {total.min():g})"
        )
    return int(ok[np.argmin(np.linalg.norm(pts[ok] - t, axis=1))])


def allocation_report(fit: DRFit, total_rate: float, achievable, labels, sizes=None, measured=None):
    """The closed-form allocation of ``total_rate``, the nearest operating point (of
    ``achievable``, m x N, labelled ``labels``) and the model's distortion there, against
    the equal split and (given the streams' tensor ``sizes``) the size-proportional split
    at the same total rate: for each, the split's rates, the model's distortion at them and
    the affordable operating point nearest them. ``measured`` (m): the operating points'
    measured distortions, reported next to each chosen point. A dict, JSON-ready."""
    alloc = allocate(fit, total_rate)
    pts = np.asarray(achievable, dtype=float).reshape(-1, fit.n_streams)
    op = nearest_operating_point(alloc, pts, labels)
    meas = None if measured is None else np.asarray(measured, dtype=float)

    def point(k: int) -> dict:
        out = {"config": labels[k], "rates": pts[k].tolist()}
        out["model_distortion"] = float(fit.predict(pts[k][None, :])[0])
        if meas is not None:
            out["measured_distortion"] = float(meas[k])
        return out

    n = fit.n_streams
    splits = {"equal": np.full(n, alloc.total_rate / n)}
    if sizes is not None:
        s = np.asarray(sizes, dtype=float)
        splits["proportional"] = alloc.total_rate * s / s.sum()
    report = {
        "total_rate": alloc.total_rate,
        "allocation": {
            "rates": alloc.rates.tolist(),
            "model_distortion": float(alloc.distortion[0]),
            "nearest": point(op.index),
        },
    }
    for name, rates in splits.items():
        report[name] = {
            "rates": rates.tolist(),
            "model_distortion": float(fit.predict(rates[None, :])[0]),
            "nearest": point(nearest_config(rates, pts)),
        }
    return report


def tasks_report(fits, weights, total_rate: float, achievable, labels, measured=None) -> dict:
    """Several tasks' surfaces over the same streams (``fits``, one per task) at one total
    rate: the ``weights``' scalarised allocation (:func:`allocate_weighted`) and the
    affordable operating point nearest it (of ``achievable``, m x N, labelled ``labels``),
    each task's own closed-form allocation with every task's model distortion there, and,
    for two streams, the Pareto front's non-dominated share of the total for stream 0
    (:func:`pareto_front_two_streams`). ``measured`` (k x m): each task's measured
    distortion at each operating point, reported at the chosen one. A dict, JSON-ready."""
    fits = tuple(fits)
    w = allocate_weighted(fits, weights, total_rate)
    pts = np.asarray(achievable, dtype=float).reshape(-1, fits[0].n_streams)
    k = nearest_config(w.rates, pts)
    nearest = {
        "config": list(labels)[k],
        "rates": pts[k].tolist(),
        "model_distortion": [float(f.predict(pts[k][None, :])[0]) for f in fits],
    }
    if measured is not None:
        nearest["measured_distortion"] = [float(m[k]) for m in np.asarray(measured, float)]
    out = {
        "total_rate": w.total_rate,
        "weights": [float(x) for x in np.asarray(weights, float)],
        "weighted": {
            "rates": w.rates.tolist(),
            "model_distortion": w.distortion.tolist(),
            "nearest": nearest,
        },
        "own": [],
    }
    for f in fits:
        own = allocate(f, w.total_rate)
        out["own"].append(
            {
                "rates": own.rates.tolist(),
                "model_distortion": [float(g.predict(own.rates[None, :])[0]) for g in fits],
            }
        )
    if fits[0].n_streams == 2:
        box = measured_box(pts)
        try:
            front = pareto_front_two_streams(fits, w.total_rate, bounds=box)
        except UserError:
            out["pareto"] = None  # no split of this total stays inside the measured rates
        else:
            share = front.t[front.nondominated]
            out["pareto"] = {"share_s0": [float(share.min()), float(share.max())]}
    return out


def measured_box(achievable) -> tuple[tuple[float, float], ...]:
    """Each stream's (lowest, highest) measured rate: where the surfaces are fitted."""
    pts = np.asarray(achievable, dtype=float)
    return tuple((float(lo), float(hi)) for lo, hi in zip(pts.min(0), pts.max(0), strict=True))
