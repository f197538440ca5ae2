"""The split point ``input`` of every model: the cloud-only baseline.

The edge does nothing: what crosses the cut is the camera's image (uint8 values, its own
channels and size, carried as float32), and the cloud runs the whole model on what it
decoded (rounded and clipped back to 8 bits, then normalised as the model normalises its
inputs). :func:`cloud_only` wraps any split model so that ``input`` is one of its split
points; every other split point is the model's own.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dfsim.stages import Crossing

INPUT = "input"


class _Camera(nn.Module):
    """The edge at ``input``: the image as it is (float32 0-255), in a 1-tuple."""

    def forward(self, x):
        return (x,)


class _FromCamera(nn.Module):
    """The cloud at ``input``: decoded image -> 8 bits -> the model's normalisation ->
    the whole model."""

    def __init__(self, model, full: nn.Module):
        super().__init__()
        self.model = model
        self.full = full

    def forward(self, x):
        u8 = torch.clamp(torch.round(x), 0, 255).to(torch.uint8).cpu().numpy()
        z = self.model.normalise(u8)
        z = torch.as_tensor(z).to(x.device).contiguous(memory_format=torch.channels_last)
        return self.full(z)


class CloudOnly:
    """``model`` with the extra split point ``input`` (see the module docstring)."""

    def __init__(self, model):
        self.inner = model

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def split_points(self) -> list[str]:
        return [INPUT, *self.inner.split_points]

    def crossing(self, split: str) -> list[Crossing]:
        if split == INPUT:
            return [Crossing(INPUT, tuple(int(d) for d in self.inner.input_shape))]
        return self.inner.crossing(split)

    def normalise(self, images: np.ndarray):
        """At ``input`` the edge receives the camera's image itself."""
        return torch.from_numpy(np.asarray(images, np.float32))

    def edge(self, split: str) -> nn.Module:
        if split == INPUT:
            return _Camera().eval()
        raise ValueError("CloudOnly wraps a model for the split point 'input' only")

    def cloud(self, split: str) -> nn.Module:
        if split == INPUT:
            return _FromCamera(self.inner, self.inner.full()).eval()
        raise ValueError("CloudOnly wraps a model for the split point 'input' only")

    def full(self) -> nn.Module:
        return _FromCamera(self.inner, self.inner.full()).eval()

    def describe(self, *args, **kwargs) -> list[dict]:
        return self.inner.describe(*args, **kwargs)


def cloud_only(model) -> CloudOnly:
    """``model`` cut at ``input``: the camera's image crosses, the cloud runs it all."""
    return CloudOnly(model)
