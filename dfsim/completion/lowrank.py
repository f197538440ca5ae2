"""``silrtc`` and ``halrtc``: low-rank tensor completion (Liu, Musialski, Wonka & Ye, TPAMI 2013).

Both minimise a weighted sum of the nuclear norms of the three mode unfoldings
``X_(i)`` (weights ``alpha``, uniform by default) subject to the received entries:

* **SiLRTC** (simple): ``M_i = D_{alpha_i/beta_i}(X_(i))``, then
  ``X = sum_i beta_i fold_i(M_i) / sum_i beta_i`` with the received entries restored.
* **HaLRTC** (high accuracy, ADMM): ``M_i = fold_i(D_{alpha_i/rho}(X_(i) + Y_i(i)/rho))``,
  ``X = mean_i(M_i - Y_i/rho)`` with the received entries restored,
  ``Y_i <- Y_i - rho (M_i - X)``, and ``rho <- min(rho * rho_growth, rho_max)``.

``D_tau`` is singular-value thresholding, ``sigma -> max(sigma - tau, 0)`` (clamped at
zero, unlike the public reference simulator). Unfolding and folding use tensorly
(``tensorly.unfold``/``tensorly.fold``, numpy backend). The SVD of a wide unfolding
``m x n`` (m <= n) goes through its small ``m x m`` Gram matrix: ``M M^T = U S^2 U^T`` and
``D_tau(M) = U diag(max(s - tau, 0)/s) U^T M``.

Iterations stop at ``max_iters``; when the relative change ``||X_k - X_k-1|| / ||X_k-1||``
falls below ``tol`` (for HaLRTC, its primal residual ``max_i ||M_i - X|| / ||X||`` too); or,
if set, when ``time_budget_ms`` is spent on that tensor, for speed-matched comparisons (a
time budget makes results depend on machine speed). The iterations used per tensor are
kept in ``method.iterations``.

Thresholds are scale-dependent, so each tensor is divided by the RMS of its received
entries before completion and multiplied back afterwards: the defaults then suit
features of any magnitude.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
import tensorly as tl

from dfsim.completion.base import CompletionMethod, register_method
from dfsim.registry import Range


def svt(mat: np.ndarray, tau: float) -> np.ndarray:
    """Singular-value thresholding of a matrix, via the Gram matrix of its short side.

    Every singular value below ``tau`` gives an all-zero result."""
    wide = mat.shape[0] <= mat.shape[1]
    m = mat if wide else mat.T
    gram = (m @ m.T).astype(np.float64)
    evals, u = np.linalg.eigh(gram)
    s = np.sqrt(np.clip(evals, 0.0, None))
    scale = np.divide(np.clip(s - tau, 0.0, None), s, out=np.zeros_like(s), where=s > 0)
    proj = ((u * scale) @ u.T).astype(np.float32)
    out = proj @ m
    return out if wide else out.T


def _weights(alpha, n_modes: int) -> np.ndarray:
    a = np.full(n_modes, 1.0 / n_modes) if alpha is None else np.asarray(alpha, dtype=np.float64)
    return a / a.sum()


Iterations = Annotated[int, Range(1)]
Tolerance = Annotated[float, Range(0)]
ModeWeights = Annotated[tuple[float, float, float], Range(0)] | None
Budget = Annotated[float, Range(0, lo_open=True)] | None
Positive = Annotated[float, Range(0, lo_open=True)]


class _LowRankCompletion(CompletionMethod):
    def __init__(self, max_iters: int, tol: float, alpha, time_budget_ms):
        if alpha is not None:
            a = np.asarray(alpha, dtype=float)
            if a.shape != (3,) or np.any(a < 0) or a.sum() <= 0:
                raise ValueError(
                    f"alpha must be 3 non-negative weights (one per mode), got {alpha!r}"
                )
            alpha = [float(v) for v in a]
        self.max_iters, self.tol, self.alpha = max_iters, float(tol), alpha
        self.time_budget_ms = time_budget_ms
        self.iterations: list[int] = []

    def _fill(self, tensor, lost, layout):
        received = ~lost
        rms = (
            float(np.sqrt(np.mean(np.square(tensor[received], dtype=np.float64))))
            if received.any()
            else 0.0
        )
        scale = rms if rms > 0 else 1.0
        t = np.where(received, tensor, 0.0).astype(np.float32) / np.float32(scale)
        deadline = (
            None if self.time_budget_ms is None else time.perf_counter() + self.time_budget_ms / 1e3
        )
        x, iters = self._iterate(t, received, _weights(self.alpha, t.ndim), deadline)
        self.iterations.append(iters)
        return x * np.float32(scale)

    def complete_batch(self, tensors, lost, layout=None):
        self.iterations = []
        return super().complete_batch(tensors, lost, layout)

    def complete(self, tensor, lost, layout=None):
        if not np.asarray(lost).any():
            self.iterations.append(0)
        return super().complete(tensor, lost, layout)

    def _converged(self, x, prev, k, deadline, extra: float = 0.0) -> bool:
        denom = float(np.linalg.norm(prev))
        change = float(np.linalg.norm(x - prev)) / denom if denom > 0 else float(np.linalg.norm(x))
        return max(change, extra) < self.tol or (
            deadline is not None and time.perf_counter() >= deadline
        )


@register_method("silrtc")
class SiLRTC(_LowRankCompletion):
    """Simple low-rank tensor completion (block coordinate descent)."""

    def __init__(
        self,
        max_iters: Iterations = 50,
        tol: Tolerance = 1e-4,
        alpha: ModeWeights = None,
        beta: Positive = 0.05,
        time_budget_ms: Budget = None,
    ):
        super().__init__(max_iters, tol, alpha, time_budget_ms)
        self.beta = float(beta)

    def _iterate(self, t, received, alpha, deadline):
        x = t.copy()
        n = x.ndim
        for k in range(1, self.max_iters + 1):
            prev = x
            acc = np.zeros_like(x)
            for i in range(n):
                acc += tl.fold(svt(tl.unfold(x, i), alpha[i] / self.beta), i, x.shape)
            x = acc / n  # beta_i uniform: the weighted mean is the plain mean
            x[received] = t[received]
            if self._converged(x, prev, k, deadline):
                return x, k
        return x, self.max_iters


@register_method("halrtc")
class HaLRTC(_LowRankCompletion):
    """High-accuracy low-rank tensor completion (ADMM)."""

    def __init__(
        self,
        max_iters: Iterations = 50,
        tol: Tolerance = 1e-4,
        alpha: ModeWeights = None,
        rho: Positive = 0.01,
        rho_growth: Annotated[float, Range(1)] = 1.1,
        rho_max: Positive = 1e4,
        time_budget_ms: Budget = None,
    ):
        super().__init__(max_iters, tol, alpha, time_budget_ms)
        if rho_max < rho:
            raise ValueError(f"rho_max must be a number >= rho, got {rho_max!r}")
        self.rho, self.rho_growth, self.rho_max = float(rho), float(rho_growth), float(rho_max)

    def _iterate(self, t, received, alpha, deadline):
        x = t.copy()
        n = x.ndim
        ys = [np.zeros_like(x) for _ in range(n)]
        rho = self.rho
        for k in range(1, self.max_iters + 1):
            prev = x
            ms = [
                tl.fold(svt(tl.unfold(x + ys[i] / rho, i), alpha[i] / rho), i, x.shape)
                for i in range(n)
            ]
            x = sum(m - y / rho for m, y in zip(ms, ys, strict=False)) / n
            x[received] = t[received]
            for i in range(n):
                ys[i] -= rho * (ms[i] - x)
            rho = min(rho * self.rho_growth, self.rho_max)
            # X can stand still while the multipliers move (e.g. while alpha/rho exceeds every
            # singular value and M_i = 0), so ADMM has converged only when the primal
            # residual ||M_i - X|| is small too.
            xn = float(np.linalg.norm(x)) or 1.0
            residual = max(float(np.linalg.norm(m - x)) for m in ms) / xn
            if self._converged(x, prev, k, deadline, extra=residual):
                return x, k
        return x, self.max_iters
