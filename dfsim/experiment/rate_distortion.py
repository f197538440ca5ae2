"""Task distortion and its distortion-rate model (after Alvar and Bajić, IEEE TIP 2021).

* :func:`task_distortion`: ``D = |A - Â| / A x 100``, the relative change (in %) of a task
  metric ``Â`` (with compression, and loss) from ``A``, that of the uncompressed, loss-free
  model; :func:`manifest_reference` reads ``A`` from a result directory's manifest.
* :func:`fit_dr`: the distortion-rate surface of ``N`` streams (tensors crossing the cut)
  ``D(R_1..R_N) ~ gamma + sum_j alpha_j 2^(-beta_j R_j)`` with ``gamma, alpha, beta > 0``,
  fitted to measured points by Levenberg-Marquardt (:class:`DRFit`).

Bit allocation over such surfaces is in :mod:`dfsim.experiment.rd_allocation`. Pure
functions of numpy arrays (numpy and scipy only); a user's mistake is a one-line
:class:`~dfsim.errors.UserError`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from dfsim.errors import UserError

LN2 = float(np.log(2.0))


def task_distortion(values, reference: float) -> np.ndarray:
    """``|A - Â| / A x 100`` of each of ``values`` (``Â``, any shape) against ``reference``
    (``A``: the metric of the uncompressed, loss-free model), in percent. A reference of
    zero (or NaN) is a one-line error: the distortion is then undefined."""
    a = float(reference)
    if a == 0 or a != a:
        raise UserError(f"task distortion: the reference metric is {a}: it must be non-zero")
    return np.abs(a - np.asarray(values, dtype=float)) / abs(a) * 100.0


def manifest_reference(directory, metric: str) -> float:
    """``A`` of ``metric`` for the run in ``directory``: its manifest's ``clean_<metric>``
    (the full model without coding or loss, computed when the run prepared its configs).
    ``coding_agreement`` (the coded, loss-free model's agreement with the uncoded one) has
    the uncoded model's own agreement, ``clean_agreement`` (1)."""
    path = Path(directory) / "manifest.json"
    try:
        ref = json.loads(path.read_text()).get("reference") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise UserError(f"{path}: cannot read the run's loss-free references ({exc})") from None
    key = "clean_agreement" if metric == "coding_agreement" else f"clean_{metric}"
    value = ref.get(key)
    if not isinstance(value, (int, float)) or value != value:
        have = ", ".join(k for k, v in ref.items() if k.startswith("clean_") and v == v) or "none"
        raise UserError(
            f"{path}: no loss-free reference {key!r} for metric {metric!r} (references: {have})"
        )
    return float(value)


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class DRFit:
    """A fitted distortion-rate surface ``gamma + sum_j alpha[j] 2^(-beta[j] R_j)`` and how
    well it fits the points it was fitted to (``r2``, ``residuals`` = measured - model)."""

    gamma: float
    alpha: np.ndarray  # (N,)
    beta: np.ndarray  # (N,), per unit of the rate columns
    r2: float
    residuals: np.ndarray  # (n,)
    rates: tuple[str, ...] = ()  # the rate columns' names, when known

    @property
    def n_streams(self) -> int:
        """``N``, the number of rates the surface takes."""
        return len(self.alpha)

    def predict(self, rates) -> np.ndarray:
        """The model's distortion at ``rates`` (n x N, or one point of N rates)."""
        r = np.asarray(rates, dtype=float)
        one = r.ndim == 1 and self.n_streams > 1 or r.ndim == 0
        r = _as_points(r, self.n_streams)
        d = self.gamma + (self.alpha * np.exp2(-self.beta * r)).sum(axis=1)
        return d[0] if one else d

    def score(self, rates, distortion) -> dict:
        """R², residual mean and SD of this fit on other points (a held-out set)."""
        return fit_statistics(np.asarray(distortion, float), self.predict(rates))

    def as_dict(self) -> dict:
        """The parameters and fit statistics, JSON-ready."""
        return {
            "rates": list(self.rates),
            "gamma": self.gamma,
            "alpha": self.alpha.tolist(),
            "beta": self.beta.tolist(),
            **fit_statistics_of_residuals(self.residuals, self.r2),
        }


def fit_statistics(measured: np.ndarray, model: np.ndarray) -> dict:
    """``r2`` (1 - SS_res / SS_tot; NaN when the measured values do not vary), residual
    mean and SD (measured - model) and the number of points."""
    res = measured - model
    return fit_statistics_of_residuals(res, _r2(measured, res))


def fit_statistics_of_residuals(res: np.ndarray, r2: float) -> dict:
    """The statistics :func:`fit_statistics` reports, from residuals and R²."""
    return {
        "r2": float(r2),
        "residual_mean": float(np.mean(res)) if len(res) else float("nan"),
        "residual_sd": float(np.std(res, ddof=1)) if len(res) > 1 else float("nan"),
        "n_points": len(res),
    }


def _r2(measured: np.ndarray, res: np.ndarray) -> float:
    tot = float(((measured - measured.mean()) ** 2).sum()) if len(measured) else 0.0
    return 1.0 - float((res**2).sum()) / tot if tot > 0 else float("nan")


def _as_points(rates: np.ndarray, n_streams: int) -> np.ndarray:
    r = np.atleast_1d(np.asarray(rates, dtype=float))
    if r.ndim == 1:
        r = r[:, None] if n_streams == 1 else r[None, :]
    if r.ndim != 2 or r.shape[1] != n_streams:
        raise UserError(
            f"rates: expected n x {n_streams} (one column per stream), got shape {r.shape}"
        )
    return r


def fit_dr(rates, distortion, names=()) -> DRFit:
    """Fit ``gamma + sum_j alpha_j 2^(-beta_j R_j)`` to ``n`` points: ``rates`` (n x N, or
    n for one stream) and ``distortion`` (n).

    Positivity: the parameters are fitted as their logarithms (``gamma = exp(g)``, ...), so
    the unbounded Levenberg-Marquardt of ``scipy.optimize.least_squares(method="lm")``
    keeps every one positive. Starting values: ``gamma`` just under the smallest
    distortion, ``alpha_j`` sharing the rest of the range equally, ``beta_j`` from the
    decay over each stream's rate range (several starts, scaled by the median rate; the
    one of least squared error is kept). Fewer points than the ``1 + 2N`` parameters, or
    non-finite values, are one-line errors."""
    d = np.asarray(distortion, dtype=float).ravel()
    r = np.asarray(rates, dtype=float)
    n_streams = 1 if r.ndim <= 1 else r.shape[1]
    r = _as_points(r, n_streams)
    if len(r) != len(d):
        raise UserError(f"fit: {len(r)} rate points but {len(d)} distortion values")
    n_params = 1 + 2 * n_streams
    if len(d) < n_params:
        raise UserError(
            f"fit: {len(d)} points for {n_params} parameters (1 + 2 x {n_streams} streams): "
            f"need at least {n_params}"
        )
    if not (np.isfinite(d).all() and np.isfinite(r).all()):
        raise UserError("fit: the rates and distortions must be finite (a NaN metric?)")

    def residuals(theta):
        g, a, b = _unpack(theta, n_streams)
        return g + (a * np.exp2(-b * r)).sum(axis=1) - d

    best = None
    for theta0 in _starts(r, d):
        sol = least_squares(residuals, theta0, method="lm", x_scale="jac", max_nfev=4000)
        if best is None or sol.cost < best.cost:
            best = sol
    g, a, b = _unpack(best.x, n_streams)
    res = -best.fun  # measured - model
    return DRFit(g, a, b, _r2(d, res), res, tuple(names))


def _unpack(theta, n: int):
    e = np.exp(np.clip(theta, -700, 700))
    return float(e[0]), e[1 : 1 + n], e[1 + n :]


def _starts(r: np.ndarray, d: np.ndarray):
    """Log-parameter starting points: gamma and alpha from the distortion's range, beta
    ``k / median rate`` for k in (0.3, 1, 3) per stream (every combination up to three
    streams, the same k for all beyond)."""
    n = r.shape[1]
    span = max(float(d.max() - d.min()), 1e-9 * max(abs(float(d.max())), 1.0), 1e-12)
    gamma = max(float(d.min()) - 0.01 * span, 1e-3 * span)
    alpha = np.full(n, max(float(d.max()) - gamma, span) / n)
    scale = np.array([max(float(np.median(np.abs(r[:, j]))), 1e-9) for j in range(n)])
    ks = (0.3, 1.0, 3.0)
    combos = itertools.product(ks, repeat=n) if n <= 3 else ((k,) * n for k in ks)
    for k in combos:
        beta = np.asarray(k) / scale
        yield np.log(np.concatenate([[gamma], alpha, beta]))
