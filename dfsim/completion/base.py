"""The completion interface and its registry."""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from dfsim.errors import UserError

_REGISTRY: dict[str, type["CompletionMethod"]] = {}


def register_method(name: str):
    """Class decorator: make a completion method available to scenarios under ``name``."""

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"completion method {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def method_class(name: str) -> type["CompletionMethod"]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"methods: unknown completion method {name!r} (available: {', '.join(available_methods())})"
        ) from None


def method_parameters(name: str) -> dict[str, Any]:
    """Keyword parameters (and defaults) a method accepts."""
    sig = inspect.signature(method_class(name).__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def make(name: str, **params) -> "CompletionMethod":
    """Build the method registered as ``name`` with its parameters."""
    cls = method_class(name)
    allowed = method_parameters(name)
    for key in params:
        if key not in allowed:
            raise UserError(
                f"methods.{name}.{key}: unknown parameter (accepted: {', '.join(allowed) or 'none'})"
            )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise UserError(f"methods.{name}: {exc}") from None


class CompletionMethod:
    """Base class. Subclasses implement :meth:`_fill` (one tensor) or override
    :meth:`complete_batch` for batched execution.

    ``fit(features)`` is a no-op for methods that need no training.
    """

    name = "base"
    needs_fit = False
    # Parameters taken from the scenario's packetization, never set by users in scenarios.
    layout_params: tuple[str, ...] = ()

    def fit(self, features: np.ndarray) -> "CompletionMethod":
        return self

    def fitted_state(self) -> dict[str, np.ndarray]:
        """Arrays that a fit produced (to cache); empty for methods without training."""
        return {}

    def load_fitted_state(self, state: dict[str, np.ndarray]) -> "CompletionMethod":
        return self

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in method_parameters(self.name)}

    def complete(self, tensor: np.ndarray, lost: np.ndarray) -> np.ndarray:
        """Return a copy of ``tensor`` (C x H x W) with the ``lost`` entries filled."""
        tensor = np.asarray(tensor, dtype=np.float32)
        lost = np.asarray(lost, dtype=bool)
        if tensor.shape != lost.shape:
            raise ValueError(f"tensor shape {tensor.shape} != mask shape {lost.shape}")
        out = tensor.copy()
        if lost.any():
            filled = self._fill(out, lost)
            np.copyto(out, filled.astype(np.float32, copy=False), where=lost)
        return out

    def complete_batch(self, tensors: np.ndarray, lost: np.ndarray) -> np.ndarray:
        """Complete a batch N x C x H x W; same result as one tensor at a time."""
        return np.stack([self.complete(t, m) for t, m in zip(tensors, lost)]) if len(tensors) else tensors.copy()

    def _fill(self, tensor: np.ndarray, lost: np.ndarray) -> np.ndarray:
        """Return an array whose values at ``lost`` are the estimates (others ignored)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
