"""Tensor completion: fill the lost entries of a received feature tensor.

Every method implements one interface (:class:`dfsim.stages.CompletionMethod`)::

    complete(tensor, lost[, layout]) -> tensor     # C x H x W float32, lost: bool C x H x W

Received entries come back unchanged bit for bit; only lost entries are filled.
Methods are registered by name with :func:`register_method` and built from scenario
names with :func:`make`; ``dfsim.testing.check_completion_method`` checks a method.
"""

# Importing a module registers its methods.
from dfsim.completion import (  # noqa: F401
    altec,
    baselines,
    caltec,
    inpainting,
    interpolation,
    lowrank,
)
from dfsim.completion.base import CompletionMethod, available_methods, make, register_method

__all__ = ["CompletionMethod", "available_methods", "make", "register_method"]
