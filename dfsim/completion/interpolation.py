"""``linear``: linear interpolation between the nearest received rows (the first DFTS baseline)."""

from __future__ import annotations

import numpy as np

from dfsim.completion.base import CompletionMethod, register_method
from dfsim.kernels import njit


@njit(cache=True)
def _interpolate_columns(x, lost, out):
    """x, lost, out: K x H x W (K = flattened leading dims). Fills out where lost."""
    K, H, W = x.shape
    for k in range(K):
        for w in range(W):
            prev = -1
            h = 0
            while h < H:
                if not lost[k, h, w]:
                    out[k, h, w] = x[k, h, w]
                    prev = h
                    h += 1
                    continue
                nxt = h
                while nxt < H and lost[k, nxt, w]:
                    nxt += 1
                for j in range(h, nxt):
                    if prev >= 0 and nxt < H:
                        t = np.float32((j - prev) / (nxt - prev))
                        out[k, j, w] = x[k, prev, w] + t * (x[k, nxt, w] - x[k, prev, w])
                    elif prev >= 0:
                        out[k, j, w] = x[k, prev, w]
                    elif nxt < H:
                        out[k, j, w] = x[k, nxt, w]
                    else:
                        out[k, j, w] = 0.0
                h = nxt


def interpolate_rows(x: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Fill lost entries of ``x`` (... x H x W) column by column along H.

    A lost entry between received rows a < h < b gets ``x_a + (h-a)/(b-a) (x_b - x_a)``;
    above the first or below the last received row the nearest received row is
    replicated; a column with nothing received becomes 0. Received entries are copied.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    lost = np.ascontiguousarray(lost, dtype=np.bool_)
    h, w = x.shape[-2:]
    out = np.empty_like(x)
    _interpolate_columns(x.reshape(-1, h, w), lost.reshape(-1, h, w), out.reshape(-1, h, w))
    return out


@register_method("linear")
class LinearInterpolation(CompletionMethod):
    """Linear interpolation between the nearest received rows above and below; edges replicate."""

    def _fill(self, tensor, lost, layout):
        return interpolate_rows(tensor, lost)

    def complete_batch(self, tensors, lost, layout=None):
        tensors = np.asarray(tensors, dtype=np.float32)
        return interpolate_rows(tensors, np.asarray(lost, bool)) if len(tensors) else tensors.copy()
