"""``silrtc`` and ``halrtc``: low-rank tensor completion (Liu, Musialski, Wonka & Ye, TPAMI 2013).

Both minimise a weighted sum of the nuclear norms of the mode unfoldings ``X_(i)``
(weights ``alpha`` over modes C, H, W) subject to the received entries:

* **SiLRTC** (simple): ``M_i = D_{alpha_i/beta_i}(X_(i))``, then
  ``X = sum_i beta_i fold_i(M_i) / sum_i beta_i`` with the received entries restored.
* **HaLRTC** (high accuracy, ADMM): ``M_i = fold_i(D_{alpha_i/rho}(X_(i) + Y_i(i)/rho))``,
  ``X = mean_i(M_i - Y_i/rho)`` with the received entries restored,
  ``Y_i <- Y_i - rho (M_i - X)``, and ``rho <- min(rho * rho_growth, rho_max)``.

Default weights ``alpha = (1/2, 1/2, 0)``: a lost packet is a full-width band of rows, i.e.
whole missing columns of the width unfolding ``X_(W)`` (W x CH), and the nuclear norm is
least with those columns at zero: weight on ``X_(W)`` pulls the estimate towards
zero-fill (with that weight alone HaLRTC returns zero-fill's error exactly). So the default
leaves ``X_(W)`` out, which lowers the error on lost entries of both methods against
uniform weights (benchmarks/halrtc-vs-reference.md; ``alpha: [1, 1, 1]`` restores uniform
weights).
Modes of weight 0 are left out of the objective, and of the iterations (their block would
be the identity): the problem is then Liu et al.'s over the remaining modes, and each
iteration thresholds two unfoldings instead of three.

``D_tau`` is singular-value thresholding, ``sigma -> max(sigma - tau, 0)`` (clamped at
zero, unlike the public reference simulator). The batched path unfolds by views and one
transposed copy; the per-tensor reference (:func:`silrtc_reference`,
:func:`halrtc_reference`) unfolds and folds with tensorly
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
import torch

from dfsim.completion.base import CompletionMethod, register_method
from dfsim.registry import Range


def svt(mat: np.ndarray, tau: float) -> np.ndarray:
    """Singular-value thresholding of one matrix (numpy), via the Gram matrix of its short
    side: the plain reference for the batched path below.

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


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm``, with a batch of one computed as a batch of two: torch multiplies a single
    pair with another kernel, whose last bits differ, and a tensor must complete the same
    alone as in a batch."""
    if a.shape[0] == 1:
        return torch.bmm(a.expand(2, -1, -1), b.expand(2, -1, -1))[:1]
    return torch.bmm(a, b)


def _shrinker(gram: torch.Tensor, tau: float) -> torch.Tensor:
    """``U diag(max(s - tau, 0) / s) U^T`` for a batch of Gram matrices ``U diag(s^2) U^T``
    (eigendecomposition in float32, the shrinker built in float64, result in float32)."""
    evals, u = torch.linalg.eigh(gram)
    evals, u = evals.double(), u.double()
    s = evals.clamp_min(0.0).sqrt()
    scale = torch.where(s > 0, (s - tau).clamp_min(0.0) / s.clamp_min(1e-300), 0.0)
    return _bmm(u * scale.unsqueeze(-2), u.transpose(-1, -2)).float()


def _svt_batch(a: torch.Tensor, tau: float) -> torch.Tensor:
    """Batched SVT of ``a`` (b x m x n, any strides), through the Gram of its short side:
    ``P a`` with ``P = shrink(a a^T)``, or ``a Q`` with ``Q = shrink(a^T a)``."""
    if a.shape[1] <= a.shape[2]:
        return _bmm(_shrinker(_bmm(a, a.transpose(1, 2)), tau), a)
    return _bmm(a, _shrinker(_bmm(a.transpose(1, 2), a), tau))


def svt_mode(x: torch.Tensor, mode: int, tau: float, layout: str = "bchw") -> torch.Tensor:
    """``fold(D_tau(X_(mode)))`` for each tensor of a batch b x C x H x W, in the same layout.

    ``X_(0)`` is a view of ``x`` (C x HW); ``X_(2)`` is thresholded as its transpose, a view
    (CH x W; SVT commutes with transposition); ``X_(1)`` (H x CW) is a view of the batch in
    ``layout="bhcw"`` (b x H x C x W), else a transposed copy. Column orders differ from
    tensorly's unfolding, which thresholding ignores."""
    if mode == 1:
        if layout == "bhcw":
            b, h, c, w = x.shape
            return _svt_batch(x.reshape(b, h, c * w), tau).view(b, h, c, w)
        return svt_mode(x.transpose(1, 2).contiguous(), 1, tau, "bhcw").transpose(1, 2)
    b, c, h, w = x.shape
    if mode == 0:
        return _svt_batch(x.reshape(b, c, h * w), tau).view(b, c, h, w)
    return _svt_batch(x.reshape(b, c * h, w), tau).view(b, c, h, w)


DEFAULT_ALPHA = (0.5, 0.5, 0.0)  # modes C, H, W (see the module docstring)


def _weights(alpha) -> np.ndarray:
    a = np.asarray(DEFAULT_ALPHA if alpha is None else alpha, dtype=np.float64)
    return a / a.sum()


Iterations = Annotated[int, Range(1)]
Tolerance = Annotated[float, Range(0)]
ModeWeights = Annotated[tuple[float, float, float], Range(0)] | None
Budget = Annotated[float, Range(0, lo_open=True)] | None
Positive = Annotated[float, Range(0, lo_open=True)]


def silrtc_reference(
    t: np.ndarray, received: np.ndarray, alpha, beta: float, max_iters: int, tol: float
) -> tuple[np.ndarray, int]:
    """SiLRTC on one (scaled) tensor with tensorly's unfold/fold and numpy: the plain
    per-tensor reference the batched path is tested against. Returns (X, iterations)."""
    x = t.copy()
    modes = [i for i in range(x.ndim) if alpha[i] > 0]
    for k in range(1, max_iters + 1):
        prev = x
        acc = np.zeros_like(x)
        for i in modes:
            acc += tl.fold(svt(tl.unfold(x, i), alpha[i] / beta), i, x.shape)
        x = acc / len(modes)
        x[received] = t[received]
        if _change(x, prev) < tol:
            return x, k
    return x, max_iters


def halrtc_reference(
    t: np.ndarray,
    received: np.ndarray,
    alpha,
    rho: float,
    growth: float,
    rho_max: float,
    max_iters: int,
    tol: float,
) -> tuple[np.ndarray, int]:
    """HaLRTC on one (scaled) tensor with tensorly and numpy (see :func:`silrtc_reference`)."""
    x = t.copy()
    modes = [i for i in range(x.ndim) if alpha[i] > 0]
    ys = [np.zeros_like(x) for _ in modes]
    for k in range(1, max_iters + 1):
        prev = x
        ms = [
            tl.fold(svt(tl.unfold(x + y / rho, i), alpha[i] / rho), i, x.shape)
            for i, y in zip(modes, ys, strict=True)
        ]
        x = sum(m - y / rho for m, y in zip(ms, ys, strict=True)) / len(modes)
        x[received] = t[received]
        for j in range(len(modes)):
            ys[j] -= rho * (ms[j] - x)
        rho = min(rho * growth, rho_max)
        xn = float(np.linalg.norm(x)) or 1.0
        residual = max(float(np.linalg.norm(m - x)) for m in ms) / xn
        if max(_change(x, prev), residual) < tol:
            return x, k
    return x, max_iters


def _change(x: np.ndarray, prev: np.ndarray) -> float:
    denom = float(np.linalg.norm(prev))
    return float(np.linalg.norm(x - prev)) / denom if denom > 0 else float(np.linalg.norm(x))


# Tensors iterated together: as many as fit in about 2 MiB (the iteration's arrays then
# stay in cache; a 32 x 28 x 28 tensor is 100 KB), at most 16.
_CHUNK_BYTES, _CHUNK_MAX = 2 << 20, 16


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of each tensor of a batch."""
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim))).double()


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

    def complete(self, tensor, lost, layout=None):
        self.iterations = [0]  # nothing lost: the base class returns before _fill
        return super().complete(tensor, lost, layout)

    def _fill(self, tensor, lost, layout):
        return self.complete_batch(tensor[None], lost[None], layout)[0]

    def complete_batch(self, tensors, lost, layout=None):
        """Complete N x C x H x W tensors, a few at a time (one at a time under a time
        budget, which is per tensor); each tensor stops on its own criterion, so the result
        is that of completing it alone."""
        out = np.array(tensors, dtype=np.float32, copy=True)
        lost = np.asarray(lost, dtype=bool)
        if out.ndim != 4 or out.shape != lost.shape:
            raise ValueError(f"tensors shape {out.shape} != mask shape {lost.shape}")
        self.iterations = [0] * len(out)
        todo = np.flatnonzero([lo.any() for lo in lost])
        chunk = (
            1
            if self.time_budget_ms is not None
            else max(1, min(_CHUNK_MAX, _CHUNK_BYTES // max(1, out[0:1].nbytes)))
        )
        alpha = _weights(self.alpha)
        for s in range(0, len(todo), chunk):
            idx = todo[s : s + chunk]
            x = torch.from_numpy(out[idx]).to(self.device)
            lost_t = torch.from_numpy(lost[idx]).to(self.device)
            t = x.masked_fill(lost_t, 0.0)
            # each tensor in units of the RMS of its received entries
            dims = (1, 2, 3)
            count = (~lost_t).sum(dim=dims).clamp_min(1)
            rms = torch.linalg.vector_norm(t, dim=dims) / count.sqrt()
            scale = torch.where(rms > 0, rms, 1.0).view(-1, 1, 1, 1)
            deadline = (
                None
                if self.time_budget_ms is None
                else time.perf_counter() + self.time_budget_ms / 1e3
            )
            y, iters = self._iterate(t / scale, lost_t, alpha, deadline)
            out[idx] = torch.where(lost_t, y * scale, x).cpu().numpy()
            for i, k in zip(idx, iters, strict=True):
                self.iterations[i] = int(k)
        return out

    def _iterate(self, t, lost, alpha, deadline):
        """Run the iterations on a batch; returns the completed batch and the iterations
        each tensor used. Subclasses implement :meth:`_step`, which returns the new
        estimate and each tensor's stopping criterion (relative change, and for HaLRTC the
        primal residual)."""
        b = t.shape[0]
        out = torch.empty_like(t)
        iters = np.full(b, self.max_iters)
        active = np.arange(b)
        modes = [i for i in range(3) if alpha[i] > 0]
        state = self._start(t, modes)
        x = t  # never written in place: each step returns a new estimate
        lost_n = lost.to(t.dtype) / len(modes)  # the mean over the modes, at lost entries
        for k in range(1, self.max_iters + 1):
            x, state, crit = self._step(x, t, lost_n, state, alpha, modes)
            done = (crit < self.tol).cpu().numpy()
            if k == self.max_iters or (deadline is not None and time.perf_counter() >= deadline):
                done[:] = True
            if done.any():
                finished = torch.from_numpy(done).to(x.device)
                out[torch.from_numpy(active[done]).to(x.device)] = x[finished]
                iters[active[done]] = k
                keep = ~finished
                active = active[~done]
                if not len(active):
                    break
                x, t, lost_n = x[keep], t[keep], lost_n[keep]
                state = [v[keep] for v in state]
        return out, iters


def _relative_change(x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """``||X - X_prev|| / ||X_prev||`` per tensor (``||X||`` where ``X_prev`` is zero)."""
    pn = _norms(prev)
    return torch.where(pn > 0, _norms(x - prev) / pn.clamp_min(1e-300), _norms(x))


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

    def _start(self, t, modes):
        return []

    def _step(self, x, t, lost_n, state, alpha, modes):
        ms = [svt_mode(x, i, alpha[i] / self.beta) for i in modes]
        # beta_i uniform: the weighted mean is the plain mean; received entries restored
        new = torch.addcmul(t, sum(ms[1:], ms[0]), lost_n)
        return new, state, _relative_change(new, x)


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

    def _start(self, t, modes):
        # the scaled multipliers W_i = Y_i / rho (empty for modes left out), then rho (one
        # per tensor, so that it follows the batch when converged tensors leave it)
        rho = torch.full((t.shape[0],), self.rho, dtype=torch.float64, device=t.device)
        ws = [torch.zeros_like(t) if i in modes else t[:, :0] for i in range(3)]
        return [*ws, rho]

    def _step(self, x, t, lost_n, state, alpha, modes):
        ws, rho_t = state[:3], state[3]
        rho = float(rho_t[0])  # every tensor of a batch started together: one rho
        new_rho = min(rho * self.rho_growth, self.rho_max)
        ms = [svt_mode(x + ws[i], i, alpha[i] / rho) for i in modes]
        acc = ms[0] - ws[modes[0]]
        for m, i in zip(ms[1:], modes[1:], strict=True):
            acc += m
            acc -= ws[i]
        new = torch.addcmul(t, acc, lost_n)  # the mean, received entries restored
        residual = None
        for m, i in zip(ms, modes, strict=True):
            d = m.sub_(new)
            r = _norms(d)
            residual = r if residual is None else torch.maximum(residual, r)
            # Y_i <- Y_i - rho (M_i - X), kept as W_i = Y_i / rho for the next rho
            ws[i].sub_(d).mul_(rho / new_rho)
        # X can stand still while the multipliers move (e.g. while alpha/rho exceeds every
        # singular value and M_i = 0), so ADMM has converged only when the primal
        # residual ||M_i - X|| is small too.
        xn = _norms(new)
        residual = residual / torch.where(xn > 0, xn, 1.0)
        crit = torch.maximum(_relative_change(new, x), residual)
        return new, ws + [torch.full_like(rho_t, new_rho)], crit
