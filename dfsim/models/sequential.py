"""Split models made of named sequential stages (the built-in Fashion-MNIST ResNet)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dfsim.errors import UserError
from dfsim.stages import Crossing


class _AsTuple(nn.Module):
    """Wraps the edge stages so that the edge returns a tuple, like every split model."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return (self.body(x),)


@dataclass
class SequentialSplitModel:
    """A classifier made of named sequential stages, cut between any two of them
    (:class:`dfsim.stages.SplitModel`).

    ``stages`` is an ordered list of (name, module); the split point called ``name`` is
    the output of that stage. ``edge(split)`` runs the stages up to and including it,
    ``cloud(split)`` the rest; ``cloud(s)(*edge(s)(x))`` performs exactly the operations
    of ``full()(x)``. One tensor crosses every cut.
    """

    name: str
    stages: list[tuple[str, nn.Module]]
    input_shape: tuple[int, int, int]
    default_split: str
    num_classes: int
    weights_id: str = ""
    normaliser: Callable[[np.ndarray], torch.Tensor] | None = None  # uint8 images -> input
    # a detector's outputs -> per image (boxes xyxy, scores, labels): see dfsim.tasks.detection
    postprocess: Callable | None = None
    _shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for _, m in self.stages:
            m.eval()
        with torch.no_grad():
            x = torch.zeros((1, *self.input_shape))
            for n, m in self.stages:
                x = m(x)
                self._shapes[n] = tuple(x.shape[1:])

    @property
    def split_points(self) -> list[str]:
        """Names of the stages whose output can be transmitted (all but the classifier head)."""
        return [n for n, _ in self.stages[:-1]]

    def _position(self, split: str) -> int:
        names = self.split_points
        if split not in names:
            raise UserError(
                f"model.split: unknown split point {split!r} for model {self.name!r} "
                f"(available: input, the cloud-only baseline; {', '.join(names)})"
            )
        return names.index(split)

    def crossing(self, split: str) -> list[Crossing]:
        """A chain of stages passes exactly one tensor: the split stage's output."""
        self._position(split)
        return [Crossing(split, self._shapes[split])]

    def edge(self, split: str) -> nn.Module:
        """The stages up to and including ``split``, returning a 1-tuple."""
        k = self._position(split)
        return _AsTuple(nn.Sequential(*[m for _, m in self.stages[: k + 1]])).eval()

    def cloud(self, split: str) -> nn.Module:
        """The stages after ``split``."""
        k = self._position(split)
        return nn.Sequential(*[m for _, m in self.stages[k + 1 :]]).eval()

    def full(self) -> nn.Module:
        """Every stage."""
        return nn.Sequential(*[m for _, m in self.stages]).eval()

    def normalise(self, images: np.ndarray):
        """uint8 N x C x H x W -> the model's input (``normaliser``, default x/255)."""
        if self.normaliser is not None:
            return self.normaliser(images)
        return torch.from_numpy(images).float() / 255.0

    def describe(self, repeats: int = 3) -> list[dict]:
        """Every split point: its tensor and the edge's share of the time, each stage timed
        here on a batch of 16 random inputs (``repeats`` passes)."""
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
        return [
            {
                "split": n,
                "tensors": 1,
                "shapes": [self._shapes[n]],
                "values": int(np.prod(self._shapes[n])),
                "edge_share": float(cum[i]),
            }
            for i, n in enumerate(self.split_points)
        ]
