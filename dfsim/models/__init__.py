"""Split models (:class:`dfsim.stages.SplitModel`): networks cut at named split points.

Models are registered by name (``@register("model", NAME)`` on a factory whose keyword
parameters are the scenario's ``model`` keys), so scenarios name them. Built in:
``fmnist-resnet`` (:mod:`dfsim.models.fmnist_resnet`, a chain of named stages),
``fmnist-detector`` (:mod:`dfsim.models.fmnist_detector`, the fmnist-scenes detector) and
``efficientnet-lite0`` (:mod:`dfsim.models.sources`, split by torch.fx); any other
``nn.Module`` by import path (:func:`dfsim.models.sources.from_import_path`).
"""

from dfsim.models import fmnist_detector, fmnist_resnet, sources  # noqa: F401  (built-in models)
from dfsim.registry import build, names


def available_models() -> list[str]:
    """Registered model names."""
    return names("model")


def load_model(name: str, **params):
    """The registered model ``name`` built with ``params`` (e.g. ``weights``)."""
    return build("model", name, "model", **params)


__all__ = ["available_models", "load_model"]
