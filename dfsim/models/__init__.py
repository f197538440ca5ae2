"""Split models: a registry of named models that can be cut at named split points.

A :class:`SplitModel` knows its split points (name -> feature shape) and builds the
edge (front) and cloud (back) sub-models for any of them. Models are registered by
name with :func:`register_model`, so scenarios name them and code stays free of
if/elif chains.
"""
from dfsim.models.registry import SplitModel, available_models, load_model, register_model
from dfsim.models import fmnist_resnet  # noqa: F401  (registers "fmnist-resnet")
from dfsim.models import sources  # noqa: F401  (registers "efficientnet-lite0")

__all__ = ["SplitModel", "available_models", "load_model", "register_model"]
