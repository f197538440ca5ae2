"""Batched inference helpers shared by the experiment, evaluation and benchmarks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dfsim import devices


def prepare_for_inference(module: nn.Module) -> nn.Module:
    """Eval mode, channels-last weights (faster oneDNN convolutions on CPU), on this
    process's device (:mod:`dfsim.devices`)."""
    return module.eval().to(device=devices.current(), memory_format=torch.channels_last)


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else devices.current()


@torch.inference_mode()
def run_batched(module: nn.Module, x, batch_size: int = 500):
    """Apply ``module`` to ``x`` (N x ...) in batches of ``batch_size``; returns float32 numpy.

    ``x`` may be a list of arrays (a module with several inputs: the tensors crossing a cut),
    and a module returning a tuple gives a tuple of arrays. Batching is a pure function of
    N and batch_size, so the same input always meets the same kernels and gives the same
    numbers.
    """
    xs = [torch.as_tensor(a) for a in x] if isinstance(x, (list, tuple)) else [torch.as_tensor(x)]
    outs: list[list[np.ndarray]] = []
    device = _device_of(module)
    for i in range(0, len(xs[0]), batch_size):
        xb = [a[i : i + batch_size].to(device) for a in xs]
        xb = [a.contiguous(memory_format=torch.channels_last) if a.ndim == 4 else a for a in xb]
        y = module(*xb)
        ys = y if isinstance(y, tuple) else (y,)
        outs.append(
            [
                t.cpu().contiguous().numpy() if t.ndim != 4 else t.cpu().contiguous().numpy().copy()
                for t in ys
            ]
        )
    if not outs:
        return np.empty((0,))
    parts = tuple(np.concatenate([o[j] for o in outs]) for j in range(len(outs[0])))
    return parts if len(parts) > 1 else parts[0]


def predict(module: nn.Module, x, batch_size: int = 500) -> np.ndarray:
    """Top-1 class indices."""
    return run_batched(module, x, batch_size).argmax(axis=1)
