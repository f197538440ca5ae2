"""``caltec``: Content-Adaptive Linear Tensor Completion (Dhondea, Cohen & Bajić, ICIP 2021).

No training. For a lost packet (channel c, band p):

1. the *neighbours* are the nearest received packets above and below p in channel c
   (one of them at the top or bottom edge);
2. candidates are channels c' whose packet p and whose packets at the neighbour
   positions all arrived;
3. the chosen candidate is the one whose neighbour packets correlate best with channel
   c's, by absolute Pearson correlation (the candidate whose affine fit on the
   neighbours leaves the smallest residual; a negative slope is as useful as a
   positive one);
4. ``y ~ a x + b`` is fitted by least squares on the neighbours, and the packet is
   filled with ``a x_p + b``.

Special cases: constant neighbours in channel c are copied as that constant (any
affine fit gives it); candidates with constant neighbours are skipped (correlation
undefined); with no usable candidate, or no received neighbour at all, the packet falls
back to linear interpolation between the nearest received rows (``linear``), which
gives 0 for a channel lost entirely.
"""

from __future__ import annotations

import numpy as np

from dfsim.completion.base import CompletionMethod, register_method, rows_per_packet
from dfsim.completion.interpolation import interpolate_rows
from dfsim.completion.packet_grid import band_losses
from dfsim.kernels import njit


@njit(cache=True)
def _moments(x, u_ch, y_ch, above0, above1, below0, below1):
    """Sums of u, u^2 and u*y over rows [above0, above1) and [below0, below1) of channels
    u_ch (u) and y_ch (y)."""
    su = 0.0
    suu = 0.0
    suy = 0.0
    for r0, r1 in ((above0, above1), (below0, below1)):
        for h in range(r0, r1):
            for col in range(x.shape[2]):
                u = x[u_ch, h, col]
                su += u
                suu += u * u
                suy += u * x[y_ch, h, col]
    return su, suu, suy


@njit(cache=True)
def _caltec_fill(x, lost_packets, rows, out, unfilled):
    """Fill every lost packet of one tensor x (C x H x W) into out (in place), as the module
    docstring says: ``lost_packets`` (C x P) flags the lost packets of ``rows`` rows each;
    ``unfilled`` gets the packets left to the fallback (no neighbour or no candidate)."""
    C, H, W = x.shape
    P = lost_packets.shape[1]
    for c in range(C):
        for p in range(P):
            if not lost_packets[c, p]:
                continue
            above = p - 1  # the nearest received packets above and below
            while above >= 0 and lost_packets[c, above]:
                above -= 1
            below = p + 1
            while below < P and lost_packets[c, below]:
                below += 1
            # rows of the neighbours
            a0, a1 = (above * rows, min(above * rows + rows, H)) if above >= 0 else (0, 0)
            b0, b1 = (below * rows, min(below * rows + rows, H)) if below < P else (0, 0)
            n = (a1 - a0 + b1 - b0) * W
            if n == 0:
                unfilled[c, p] = True
                continue
            sy, syy, _ = _moments(x, c, c, a0, a1, b0, b1)
            my = sy / n
            vy = syy / n - my * my
            h0 = p * rows
            h1 = min(h0 + rows, H)
            if vy <= 1e-12 * max(1.0, my * my):
                for h in range(h0, h1):
                    for col in range(W):
                        out[c, h, col] = my
                continue
            best = -1.0
            best_c = -1
            best_a = 0.0
            best_b = 0.0
            for cc in range(C):
                if (
                    cc == c
                    or lost_packets[cc, p]
                    or (above >= 0 and lost_packets[cc, above])
                    or (below < P and lost_packets[cc, below])
                ):
                    continue
                sx, sxx, sxy = _moments(x, cc, c, a0, a1, b0, b1)
                mx = sx / n
                vx = sxx / n - mx * mx
                if vx <= 1e-12 * max(1.0, mx * mx):
                    continue
                cov = sxy / n - mx * my
                r2 = cov * cov / (vx * vy)
                if r2 > best:
                    best = r2
                    best_c = cc
                    best_a = cov / vx
                    best_b = my - best_a * mx
            if best_c < 0:
                unfilled[c, p] = True
                continue
            fa = np.float32(best_a)
            fb = np.float32(best_b)
            for h in range(h0, h1):
                for col in range(W):
                    out[c, h, col] = fa * x[best_c, h, col] + fb


@register_method("caltec")
class CALTeC(CompletionMethod):
    """Content-adaptive linear tensor completion (no training; see module docstring). The
    packet height comes from the layout (one row per packet without one)."""

    def _one(self, tensor, lost, lostp, rows):
        out = tensor.copy()
        unfilled = np.zeros(lostp.shape, np.bool_)
        _caltec_fill(tensor, lostp, rows, out, unfilled)
        if unfilled.any():
            fallback = interpolate_rows(tensor, lost)
            band_rows = np.repeat(unfilled, rows, axis=1)[:, : tensor.shape[1]]
            out[band_rows] = fallback[band_rows]
        return out

    def _fill(self, tensor, lost, layout):
        rows = rows_per_packet(layout)
        return self._one(tensor, lost, band_losses(lost, rows), rows)

    def complete_batch(self, tensors, lost, layout=None):
        tensors = np.asarray(tensors, dtype=np.float32)
        lost = np.asarray(lost, bool)
        out = tensors.copy()
        rows = rows_per_packet(layout)
        lostp = band_losses(lost, rows)
        for i in range(len(tensors)):
            if lostp[i].any():
                out[i] = self._one(tensors[i], lost[i], lostp[i], rows)
        np.copyto(out, tensors, where=~lost)
        return out
