"""The completion interface (:class:`dfsim.stages.CompletionMethod`) and its base class."""

from __future__ import annotations

from typing import Any

import numpy as np

from dfsim.registry import build, declared_params, names, register
from dfsim.stages import Metric

# Completion's results columns (see dfsim.experiment.results).
METRICS = (
    Metric(
        "completion_ms_per_tensor",
        "completion time per tensor",
        "ms",
        False,
        timing=True,
        core=True,
        alias="completion_ms",
    ),
    Metric("completion_iters", "completion iterations per tensor", ""),
    Metric("mse_lost", "MSE on lost entries", "", False),
)


def register_method(name: str):
    """Class decorator: make a completion method available to scenarios under ``name``."""
    return register("completion", name)


def available_methods() -> list[str]:
    """Registered completion methods, in registration order."""
    return names("completion")


def make(name: str, **params) -> CompletionMethod:
    """Build the method registered as ``name``, its parameters checked against its
    declaration (a mistake is a one-line :class:`~dfsim.errors.UserError`)."""
    return build("completion", name, "methods", **params)


class CompletionMethod:
    """Base class. Subclasses implement :meth:`_fill` (one tensor) or override
    :meth:`complete_batch` for batched execution. ``layout`` (a
    :class:`~dfsim.transport.packets.PacketLayout`) tells packet-aware methods where the packet
    boundaries are; methods that work on entries ignore it.

    ``fit(features, layout)`` is a no-op for methods that need no training.
    """

    name = "base"
    needs_fit = False
    device = "cpu"  # torch-backed methods run their linear algebra here (dfsim.devices)
    iterations: list[int] | None = None  # iterative methods: iterations used per tensor

    def fit(self, features: np.ndarray, layout=None) -> CompletionMethod:
        """Learn from loss-free training features (a no-op here)."""
        return self

    def fitted_state(self) -> dict[str, np.ndarray]:
        """Arrays that a fit produced (to cache); empty for methods without training."""
        return {}

    def load_fitted_state(self, state: dict[str, np.ndarray]) -> CompletionMethod:
        """Restore a fit (a no-op here)."""
        return self

    def params(self) -> dict[str, Any]:
        """The declared parameters and their values."""
        return {k: getattr(self, k) for k in declared_params(type(self))}

    def complete(self, tensor: np.ndarray, lost: np.ndarray, layout=None) -> np.ndarray:
        """Return a copy of ``tensor`` (C x H x W) with the ``lost`` entries filled."""
        tensor = np.asarray(tensor, dtype=np.float32)
        lost = np.asarray(lost, dtype=bool)
        if tensor.shape != lost.shape:
            raise ValueError(f"tensor shape {tensor.shape} != mask shape {lost.shape}")
        out = tensor.copy()
        if lost.any():
            filled = self._fill(out, lost, layout)
            np.copyto(out, filled.astype(np.float32, copy=False), where=lost)
        return out

    def complete_batch(self, tensors: np.ndarray, lost: np.ndarray, layout=None) -> np.ndarray:
        """Complete a batch N x C x H x W; same result as one tensor at a time."""
        if not len(tensors):
            return np.array(tensors, dtype=np.float32, copy=True)
        return np.stack([self.complete(t, m, layout) for t, m in zip(tensors, lost, strict=True)])

    def _fill(self, tensor: np.ndarray, lost: np.ndarray, layout) -> np.ndarray:
        """Return an array whose values at ``lost`` are the estimates (others ignored)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def rows_per_packet(layout, default: int = 1) -> int:
    """The packet height a packet-aware method works with (``default`` without a layout)."""
    return default if layout is None else layout.rows_per_packet
