"""``altec``: Adaptive Linear Tensor Completion (Bragilevsky & Bajić, IEEE Access 2020).

Each lost packet (channel c, row band p) is estimated as a linear combination of

* the co-located packets (same rows) of the other C-1 channels,
* the packet above and the packet below in channel c (row ``h - R`` and row
  ``min(h + R, H - 1)`` for row h, R = rows per packet), and
* a constant (intercept).

"Adaptive": every packet position (c, p) has its own weights. They are learned by a
ridge-regularised least-squares fit pooled over all rows, columns and images of the
*training* features (after the scenario's quantization), not averaged per packet.

Lost predictors: the fit keeps the regularised Gram matrix of all predictors, so for
any subset S of predictors that actually arrived, the exact least-squares refit on S is
available without touching the training data: with ``A = (G + lambda I)^-1`` and full
weights ``w``, the refit is ``w_S - A_SL A_LL^-1 w_L`` (L = the lost predictors), a
small k x k solve per lost packet (numba). So a lost predictor is never used and the
remaining ones are re-weighted optimally.

Held-out check: a fit can be worse than not repairing at all (zero-fill) when the
training tensors are too few for C + 3 weights per position, or do not share the
relations between channels that the fit learns. The fit is therefore scored on held-out
training tensors (K-fold over tensors, from the same Gram matrices: nearly free), and a
position whose fit does not beat zero-fill there by more than one standard error is
zero-filled; a one-line note (:attr:`ALTeC.fit_note`) says how many positions, or that
the fit is underdetermined and how many tensors it needs (:func:`tensors_needed`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated

import numba
import numpy as np
from numba import prange

from dfsim.completion.base import CompletionMethod, register_method
from dfsim.completion.packet_grid import band_losses
from dfsim.errors import note
from dfsim.kernels import njit
from dfsim.registry import Range
from dfsim.transport.packets import PacketLayout


def _shifted(features: np.ndarray, rows: int, direction: int) -> np.ndarray:
    """Row h of the result is row h - R (direction -1, zero above the top) or min(h + R, H-1)."""
    h = features.shape[-2]
    idx = np.arange(h)
    if direction < 0:
        src = idx - rows
        out = features[..., np.clip(src, 0, h - 1), :].copy()
        out[..., src < 0, :] = 0.0
        return out
    return features[..., np.minimum(idx + rows, h - 1), :]


MAX_FOLDS = 5  # held-out folds of training tensors (fewer when there are fewer tensors)
SAMPLES_PER_WEIGHT = 10  # a regression is underdetermined below this many samples a weight


def tensors_needed(shape, rows_per_packet: int) -> int:
    """Training tensors of ``shape`` (C x H x W) that give every (channel, band) regression
    ``SAMPLES_PER_WEIGHT`` samples per weight (C + 2 predictors and the constant) with
    ``rows_per_packet``-row packets (the last band may be shorter), and at least 2, so that
    one can be held out."""
    c, h, w = (int(v) for v in shape)
    rows = min(rows_per_packet, h - (-(-h // rows_per_packet) - 1) * rows_per_packet)
    return max(2, -(-SAMPLES_PER_WEIGHT * (c + 3) // (rows * w)))


def fit_altec(
    features: np.ndarray, rows_per_packet: int, ridge: float
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Learn per-(channel, band) weights from training features N x C x H x W, checked on
    held-out training tensors (:func:`_validate`): a position whose fit does not clearly
    beat zero-fill there gets zero weights (it is zero-filled).

    Returns ``(ainv, wfull, report)``: C x P x D x D regularised inverse Gram matrices,
    C x P x D full-predictor weights, D = C + 2 (other channels, above, below, constant),
    and the check's C x P arrays ``use`` (the position keeps its fit), ``heldout_mse`` and
    ``zero_mse`` (held-out mean squared errors of the position's fill and of zero-fill;
    NaN with one tensor) with ``n_train``, the number of training tensors.
    """
    x = np.asarray(features, dtype=np.float32)
    n, c, h, w = x.shape
    R = rows_per_packet
    bands = -(-h // R)
    above, below = _shifted(x, R, -1), _shifted(x, R, +1).copy()
    below[..., (bands - 1) * R :, :] = (
        0.0  # the last band has no packet below (it is never a predictor)
    )
    d = c + 2
    ainv = np.zeros((c, bands, d, d))
    wfull = np.zeros((c, bands, d))
    k = min(MAX_FOLDS, n)  # folds: contiguous blocks of tensors
    edges = [f * n // k for f in range(k + 1)]
    report = {
        "use": np.zeros((c, bands), bool),
        "heldout_mse": np.full((c, bands), np.nan),
        "zero_mse": np.full((c, bands), np.nan),
        "n_train": np.asarray(n),
    }
    for p in range(bands):
        rows = slice(p * R, min((p + 1) * R, h))
        # C x samples matrices for this band: co-located channels, above and below
        z = np.ascontiguousarray(x[:, :, rows].transpose(1, 0, 2, 3).reshape(c, -1)).astype(
            np.float64
        )
        a = np.ascontiguousarray(above[:, :, rows].transpose(1, 0, 2, 3).reshape(c, -1)).astype(
            np.float64
        )
        b = np.ascontiguousarray(below[:, :, rows].transpose(1, 0, 2, 3).reshape(c, -1)).astype(
            np.float64
        )
        m = z.shape[1]
        zz, za, zb = z @ z.T, z @ a.T, z @ b.T
        aa, bb, ab = (a * a).sum(1), (b * b).sum(1), (a * b).sum(1)
        zs, as_, bs = z.sum(1), a.sum(1), b.sum(1)
        for ch in range(c):
            # Gram of [z_0..z_{C-1}, above_ch, below_ch, 1]
            g = np.empty((c + 3, c + 3))
            g[:c, :c] = zz
            g[:c, c] = g[c, :c] = za[:, ch]
            g[:c, c + 1] = g[c + 1, :c] = zb[:, ch]
            g[:c, c + 2] = g[c + 2, :c] = zs
            g[c, c], g[c + 1, c + 1], g[c, c + 1] = aa[ch], bb[ch], ab[ch]
            g[c + 1, c] = ab[ch]
            g[c, c + 2] = g[c + 2, c] = as_[ch]
            g[c + 1, c + 2] = g[c + 2, c + 1] = bs[ch]
            g[c + 2, c + 2] = m
            pred = [j for j in range(c + 3) if j != ch]  # predictors, in kernel order
            gs = g[np.ix_(pred, pred)]
            lam = ridge * np.trace(gs) / len(pred)
            inv = np.linalg.inv(gs + lam * np.eye(len(pred)))
            ainv[ch, p] = inv
            wfull[ch, p] = inv @ g[pred, ch]
        if k >= 2:  # a tensor's samples are a contiguous block of columns
            cols = [e * (m // n) for e in edges]
            folds = [slice(cols[f], cols[f + 1]) for f in range(k)]
            grams = np.stack([_gram(z[:, f], a[:, f], b[:, f]) for f in folds])
            use, fit_mse, zero_mse = _validate(grams, ridge)
            report["use"][:, p] = use
            report["heldout_mse"][:, p] = fit_mse
            report["zero_mse"][:, p] = zero_mse
    off = ~report["use"]
    ainv[off] = np.eye(d)  # zero weights, whatever predictors are lost
    wfull[off] = 0.0
    return ainv, wfull, report


def _gram(z: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For every channel ch, the Gram matrix of [z_0..z_{C-1}, above_ch, below_ch, 1] over
    the samples (columns) of ``z``, ``a`` (above) and ``b`` (below): C x (C+3) x (C+3)."""
    c = len(z)
    idx = np.arange(c)
    g = np.zeros((c, c + 3, c + 3))
    g[:, :c, :c] = z @ z.T
    g[:, :c, c] = g[:, c, :c] = (z @ a.T).T  # [ch, j] = z_j . above_ch
    g[:, :c, c + 1] = g[:, c + 1, :c] = (z @ b.T).T
    g[:, :c, c + 2] = g[:, c + 2, :c] = z.sum(1)
    g[idx, c, c] = (a * a).sum(1)
    g[idx, c + 1, c + 1] = (b * b).sum(1)
    g[idx, c, c + 1] = g[idx, c + 1, c] = (a * b).sum(1)
    g[idx, c, c + 2] = g[idx, c + 2, c] = a.sum(1)
    g[idx, c + 1, c + 2] = g[idx, c + 2, c + 1] = b.sum(1)
    g[:, c + 2, c + 2] = z.shape[1]
    return g


def _validate(grams: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out check of one band from its K folds' Grams (K x C x (C+3) x (C+3)): per
    channel, the ridge fit on K-1 folds is scored on the remaining one, and so is zero-fill
    (the prediction 0). The fit is kept (``use``) only where its held-out mean squared
    error beats zero-fill's by more than one standard error of their per-fold differences.
    Errors of the full-predictor weights (every predictor received), from the Grams alone:
    y'y - 2 w'X'y + w'X'X w. Returns ``use`` and the held-out MSEs of the chosen fill and
    of zero-fill, per channel."""
    k, c = grams.shape[:2]
    ch = np.arange(c)
    pred = np.array([[j for j in range(c + 3) if j != t] for t in range(c)])
    d = c + 2
    total = grams.sum(0)
    fit, zero = np.empty((k, c)), np.empty((k, c))
    for f in range(k):
        train, held = total - grams[f], grams[f]
        gs = train[ch[:, None, None], pred[:, :, None], pred[:, None, :]]  # C x D x D
        lam = ridge * np.trace(gs, axis1=1, axis2=2) / d
        wts = np.linalg.solve(
            gs + lam[:, None, None] * np.eye(d), train[ch[:, None], pred, ch[:, None]][..., None]
        )[..., 0]
        hs = held[ch[:, None, None], pred[:, :, None], pred[:, None, :]]
        hy = held[ch[:, None], pred, ch[:, None]]
        err = held[ch, ch, ch] - 2 * np.einsum("cd,cd->c", wts, hy)
        err += np.einsum("cd,cde,ce->c", wts, hs, wts)
        fit[f], zero[f] = err / held[0, c + 2, c + 2], held[ch, ch, ch] / held[0, c + 2, c + 2]
    gain = zero - fit
    use = gain.mean(0) > gain.std(0, ddof=1) / np.sqrt(k)
    return use, np.where(use, fit.mean(0), zero.mean(0)), zero.mean(0)


@njit(cache=True)
def _cholesky_solve(a, b, k):
    """Solve a[:k, :k] x = b[:k] for symmetric positive definite a, in place (no allocation
    but the result): a principal block of an SPD inverse is SPD."""
    for j in range(k):
        d = a[j, j]
        for m in range(j):
            d -= a[j, m] * a[j, m]
        d = np.sqrt(d)
        a[j, j] = d
        for i in range(j + 1, k):
            v = a[i, j]
            for m in range(j):
                v -= a[i, m] * a[j, m]
            a[i, j] = v / d
    x = np.empty(k)
    for i in range(k):  # L y = b
        v = b[i]
        for m in range(i):
            v -= a[i, m] * x[m]
        x[i] = v / a[i, i]
    for i in range(k - 1, -1, -1):  # L^T x = y
        v = x[i]
        for m in range(i + 1, k):
            v -= a[m, i] * x[m]
        x[i] = v / a[i, i]
    return x


@njit(cache=True, parallel=True)
def _altec_fill(x, lost_packets, ainv, wfull, rows, out):
    """Fill every lost band of one tensor x (C x H x W) into out (in place): ``lost_packets``
    (C x P) flags the lost packets of ``rows`` rows each, ``ainv``/``wfull`` are the fit
    (:func:`fit_altec`). Channels run in parallel (numba prange): each writes only its own
    rows of ``out`` and reads only ``x``, so the result does not depend on the thread count."""
    # Long: one kernel on purpose: split into functions, numba vectorises its loops less well
    C, H, W = x.shape
    P = lost_packets.shape[1]
    D = C + 2
    for c in prange(C):
        if not lost_packets[c].any():
            continue
        received = np.empty(D, dtype=np.bool_)
        weights = np.empty(D)
        lost_idx = np.empty(D, np.int64)
        a_lost = np.empty((D, D))
        w_lost = np.empty(D)
        row = np.empty(W, np.float32)
        for p in range(P):
            if not lost_packets[c, p]:
                continue
            # predictor j < C-1: channel (j if j < c else j + 1); C-1: above; C: below;
            # C+1: constant
            k = 0
            for j in range(C - 1):
                cc = j if j < c else j + 1
                received[j] = not lost_packets[cc, p]
            received[C - 1] = p > 0 and not lost_packets[c, p - 1]
            received[C] = p < P - 1 and not lost_packets[c, p + 1]
            received[C + 1] = True
            for j in range(D):
                if not received[j]:
                    k += 1
            if k == 0:
                for j in range(D):
                    weights[j] = wfull[c, p, j]
            else:
                # the refit on the received predictors: w_S - A_SL A_LL^-1 w_L
                t = 0
                for j in range(D):
                    if not received[j]:
                        lost_idx[t] = j
                        t += 1
                for i in range(k):
                    w_lost[i] = wfull[c, p, lost_idx[i]]
                    for jj in range(k):
                        a_lost[i, jj] = ainv[c, p, lost_idx[i], lost_idx[jj]]
                corr = _cholesky_solve(a_lost, w_lost, k)
                for j in range(D):
                    if received[j]:
                        s = 0.0
                        for i in range(k):
                            s += ainv[c, p, j, lost_idx[i]] * corr[i]
                        weights[j] = wfull[c, p, j] - s
                    else:
                        weights[j] = 0.0
            h0 = p * rows
            h1 = min(h0 + rows, H)
            for h in range(h0, h1):
                # accumulate in a local row: no aliasing with x, so the loops vectorise
                for col in range(W):
                    row[col] = weights[D - 1]
                for j in range(C - 1):
                    if weights[j] != 0.0:
                        cc = j if j < c else j + 1
                        wj = np.float32(weights[j])
                        for col in range(W):
                            row[col] += wj * x[cc, h, col]
                if weights[C - 1] != 0.0:
                    wa = np.float32(weights[C - 1])
                    for col in range(W):
                        row[col] += wa * x[c, h - rows, col]
                if weights[C] != 0.0:
                    wb = np.float32(weights[C])
                    hb = min(h + rows, H - 1)
                    for col in range(W):
                        row[col] += wb * x[c, hb, col]
                for col in range(W):
                    out[c, h, col] = row[col]


@contextmanager
def _one_thread():
    """numba's parallel kernels run on the calling thread only, inside the block.

    A single call of :func:`_altec_fill` does about 0.1 ms of work on a 32 x 28 x 28 tensor;
    starting numba's thread pool for it, whose threads have gone to sleep since the last
    call (or wait for a core on a busy machine), can cost several milliseconds. The result
    does not depend on the thread count (each channel is computed alone)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


@register_method("altec")
class ALTeC(CompletionMethod):
    """Adaptive linear tensor completion (trained; see module docstring). Its weights are
    per packet position, so it is fitted for one packet layout and completes only tensors
    packetized the same way. ``ridge``: the regularisation relative to the Gram trace. A
    position whose fit does not clearly beat zero-fill on held-out training tensors is
    zero-filled (:func:`fit_altec`), and :attr:`fit_note` says so in one line
    (printed by :meth:`fit`), as it does for a fit on too few tensors."""

    needs_fit = True

    def __init__(
        self,
        ridge: Annotated[float, Range(0, lo_open=True)] = 1e-3,
        fit_images: Annotated[int, Range(10)] = 2000,
    ):
        self.ridge = float(ridge)
        self.fit_images = fit_images
        self.rows_per_packet: int | None = None
        self.ainv = self.wfull = None
        self.shape = None
        self.report: dict[str, np.ndarray] = {}

    def fit(self, features: np.ndarray, layout: PacketLayout) -> ALTeC:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 4 or not len(features):
            raise ValueError(
                f"fit expects training features N x C x H x W, got shape {features.shape}"
            )
        self.rows_per_packet = layout.rows_per_packet
        self.ainv, self.wfull, self.report = fit_altec(
            features[: self.fit_images], self.rows_per_packet, self.ridge
        )
        self.shape = features.shape[1:]
        if self.fit_note:
            note(self.fit_note)
        return self

    @property
    def fit_note(self) -> str | None:
        """One line when the fit is underdetermined or zero-fills positions whose held-out
        error it could not beat (None when it is fitted and validated everywhere)."""
        if not self.report:
            return None
        r, (c, h, w), rows = self.report, self.shape, self.rows_per_packet
        n, need = int(r["n_train"]), tensors_needed(self.shape, rows)
        what = f"{n} training tensor{'s' * (n != 1)} of {c}x{h}x{w} in {rows}-row packets"
        if n < 2:
            return (
                f"altec: {what} cannot be checked on held-out tensors, so it zero-fills "
                f"every lost packet (fit on at least {need})"
            )
        zeroed = ~r["use"].astype(bool) & (r["zero_mse"] > 0)
        if n >= need and not zeroed.any():
            return None
        why = (
            f"are too few (underdetermined: fit on at least {need})"
            if n < need
            else "do not predict each other (more or more alike tensors may help)"
        )
        return (
            f"altec: {what} {why}; held-out MSE {np.mean(r['heldout_mse']):.3g} vs "
            f"zero-fill's {np.mean(r['zero_mse']):.3g}, {int(zeroed.sum())} of {zeroed.size} "
            f"packet positions zero-filled"
        )

    def fitted_state(self) -> dict[str, np.ndarray]:
        return {
            "ainv": self.ainv,
            "wfull": self.wfull,
            "shape": np.asarray(self.shape),
            "rows_per_packet": np.asarray(self.rows_per_packet),
            **{f"report_{k}": v for k, v in self.report.items()},
        }

    def load_fitted_state(self, state: dict[str, np.ndarray]) -> ALTeC:
        self.ainv, self.wfull = state["ainv"], state["wfull"]
        self.shape = tuple(int(v) for v in state["shape"])
        self.rows_per_packet = int(state["rows_per_packet"])
        self.report = {k[7:]: np.asarray(v) for k, v in state.items() if k.startswith("report_")}
        return self

    def _check(self, shape, layout) -> int:
        if self.ainv is None:
            raise RuntimeError("altec is not fitted: call fit(training_features, layout) first")
        if tuple(shape) != tuple(self.shape):
            raise ValueError(
                f"altec was fitted on tensors of shape {self.shape}, got {tuple(shape)}"
            )
        if layout is not None and layout.rows_per_packet != self.rows_per_packet:
            raise ValueError(
                f"altec was fitted for {self.rows_per_packet}-row packets, "
                f"got a layout of {layout.rows_per_packet}"
            )
        return self.rows_per_packet

    def _fill(self, tensor, lost, layout):
        rows = self._check(tensor.shape, layout)
        out = tensor.copy()
        with _one_thread():  # one tensor: waking the thread pool costs more than it saves
            _altec_fill(tensor, band_losses(lost, rows), self.ainv, self.wfull, rows, out)
        return out

    def complete_batch(self, tensors, lost, layout=None):
        tensors = np.asarray(tensors, dtype=np.float32)
        lost = np.asarray(lost, bool)
        if len(tensors) == 0:
            return tensors.copy()
        rows = self._check(tensors.shape[1:], layout)
        lostp = band_losses(lost, rows)
        out = tensors.copy()
        for i in range(len(tensors)):
            if lostp[i].any():
                _altec_fill(tensors[i], lostp[i], self.ainv, self.wfull, rows, out[i])
        np.copyto(out, tensors, where=~lost)
        return out
