"""Jitter: extra one-way delay per packet, drawn from a registered distribution.

A scenario names one as ``network.jitter: {distribution: NAME, ...}``; the SimPy uplink
(:class:`dfsim.transport.network.Uplink`) adds a draw to each packet's arrival, from a
generator of its own, so that the loss stream is the same with or without jitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from dfsim.registry import Range, register


@dataclass(frozen=True)
class Jitter:
    """Extra one-way delay per packet, in ms: ``uniform`` on [a, b], ``exponential`` with
    mean a, or ``normal`` with mean a and standard deviation b (negative draws -> 0)."""

    dist: str
    a: float
    b: float = 0.0

    DISTS = ("uniform", "exponential", "normal")

    def __post_init__(self):
        if self.dist not in self.DISTS:
            raise ValueError(
                f"jitter distribution must be one of {', '.join(self.DISTS)}, got {self.dist!r}"
            )
        if self.a < 0 or self.b < 0 or (self.dist == "uniform" and self.b < self.a):
            raise ValueError(f"invalid {self.dist} jitter parameters ({self.a}, {self.b})")

    def sample_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` delays, in seconds."""
        if self.dist == "uniform":
            ms = rng.uniform(self.a, self.b, n)
        elif self.dist == "exponential":
            ms = rng.exponential(self.a, n)
        else:
            ms = np.maximum(rng.normal(self.a, self.b, n), 0.0)
        return ms / 1e3


@register("jitter", "uniform")
def uniform_jitter(
    low_ms: Annotated[float, Range(0)], high_ms: Annotated[float, Range(0)]
) -> Jitter:
    """Uniform extra delay on [low_ms, high_ms]."""
    if high_ms < low_ms:
        raise ValueError(f"high_ms: {high_ms:g} is below low_ms {low_ms:g}")
    return Jitter("uniform", low_ms, high_ms)


@register("jitter", "exponential")
def exponential_jitter(mean_ms: Annotated[float, Range(0)]) -> Jitter:
    """Exponential extra delay with mean ``mean_ms``."""
    return Jitter("exponential", mean_ms)


@register("jitter", "normal")
def normal_jitter(mean_ms: Annotated[float, Range(0)], sd_ms: Annotated[float, Range(0)]) -> Jitter:
    """Normal extra delay (negative draws are 0)."""
    return Jitter("normal", mean_ms, sd_ms)
