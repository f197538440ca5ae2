"""Batched inference helpers shared by the experiment, evaluation and benchmarks."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def prepare_for_inference(module: nn.Module) -> nn.Module:
    """Eval mode, channels-last weights (faster oneDNN convolutions on CPU)."""
    return module.eval().to(memory_format=torch.channels_last)


@torch.inference_mode()
def run_batched(module: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Apply ``module`` to ``x`` (N x ...) in batches of ``batch_size``; returns float32 numpy.

    Batching is a pure function of N and batch_size, so the same input always meets the
    same kernels and gives the same numbers.
    """
    xt = torch.as_tensor(x)
    outs = []
    for i in range(0, len(xt), batch_size):
        xb = xt[i : i + batch_size]
        if xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        y = module(xb)
        outs.append(y.contiguous().numpy() if y.ndim != 4 else y.contiguous().numpy().copy())
    return np.concatenate(outs) if outs else np.empty((0,))


def predict(module: nn.Module, x, batch_size: int = 500) -> np.ndarray:
    """Top-1 class indices."""
    return run_batched(module, x, batch_size).argmax(axis=1)
