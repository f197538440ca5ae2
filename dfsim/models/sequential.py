"""Model registry and the split-model interface."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from dfsim.errors import UserError

_REGISTRY: dict[str, Callable[..., "SplitModel"]] = {}


def register_model(name: str):
    """Class/function decorator: make a split model available to scenarios under ``name``."""

    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def load_model(name: str, **kwargs) -> "SplitModel":
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"model: unknown model {name!r} (available: {', '.join(available_models())})"
        ) from None
    return factory(**kwargs)


@dataclass
class SplitModel:
    """A classifier made of named sequential stages, cut between any two of them.

    ``stages`` is an ordered list of (name, module); the split point called ``name`` is
    the output of that stage. ``front(split)`` runs the stages up to and including it
    (the edge), ``back(split)`` the rest (the cloud); ``back(split)(front(split)(x))``
    performs exactly the operations of ``full()(x)``.
    """

    name: str
    stages: list[tuple[str, nn.Module]]
    input_shape: tuple[int, int, int]
    default_split: str
    num_classes: int
    weights_id: str = ""
    feature_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    normaliser: Callable[[np.ndarray], torch.Tensor] | None = None  # uint8 images -> model input

    def __post_init__(self):
        for _, m in self.stages:
            m.eval()
        if not self.feature_shapes:
            with torch.no_grad():
                x = torch.zeros((1, *self.input_shape))
                for n, m in self.stages:
                    x = m(x)
                    self.feature_shapes[n] = tuple(x.shape[1:])

    @property
    def split_points(self) -> list[str]:
        """Names of the stages whose output can be transmitted (all but the classifier head)."""
        return [n for n, _ in self.stages[:-1]]

    def _index(self, split: str) -> int:
        names = self.split_points
        if split not in names:
            raise UserError(
                f"split: unknown split point {split!r} for model {self.name!r} "
                f"(available: {', '.join(names)})"
            )
        return names.index(split)

    def front(self, split: str) -> nn.Module:
        k = self._index(split)
        return nn.Sequential(*[m for _, m in self.stages[: k + 1]]).eval()

    def back(self, split: str) -> nn.Module:
        k = self._index(split)
        return nn.Sequential(*[m for _, m in self.stages[k + 1 :]]).eval()

    def full(self) -> nn.Module:
        return nn.Sequential(*[m for _, m in self.stages]).eval()

    def crossing(self, split: str) -> list[str]:
        """Tensors crossing the cut: a chain of stages passes exactly one."""
        self._index(split)
        return [split]

    def normalise(self, images: np.ndarray):
        """uint8 N x C x H x W -> the model's input (``normaliser``, default x/255)."""
        if self.normaliser is not None:
            return self.normaliser(images)
        return torch.from_numpy(images).float() / 255.0

    def describe(self, repeats: int = 3) -> list[dict]:
        """Every split point: its tensor and the edge's share of the measured time."""
        times = np.zeros(len(self.stages))
        x = torch.randn((16, *self.input_shape))
        with torch.no_grad():
            for _ in range(repeats):
                h = x
                for i, (_, m) in enumerate(self.stages):
                    t0 = time.perf_counter()
                    h = m(h)
                    times[i] += time.perf_counter() - t0
        cum = np.cumsum(times) / times.sum()
        return [{"split": n, "tensors": 1, "shapes": [self.feature_shapes[n]],
                 "values": int(np.prod(self.feature_shapes[n])), "edge_share": float(cum[i])}
                for i, n in enumerate(self.split_points)]
