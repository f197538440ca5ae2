"""Baselines: no completion."""

from __future__ import annotations

import numpy as np

from dfsim.completion.base import CompletionMethod, register_method


@register_method("zeros")
class ZeroFill(CompletionMethod):
    """No completion: lost values are set to 0 after dequantization."""

    def _fill(self, tensor, lost, layout):
        return np.zeros_like(tensor)

    def complete_batch(self, tensors, lost, layout=None):
        out = np.array(tensors, dtype=np.float32, copy=True)
        out[lost] = 0.0
        return out
