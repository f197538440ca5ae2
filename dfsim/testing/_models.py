"""The conformance check of a split model (:class:`dfsim.stages.SplitModel`):
:func:`check_split_model` and its properties (interface, normalisation, the tensors that
cross the split, edge + cloud = full model, unknown split points, describe)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dfsim.testing._common import _describe, _expect, _run, _selected

SPLIT_MODEL_PROPERTIES = (
    "interface",
    "normalise",
    "crossing",
    "cloud-equals-full",
    "unknown-split",
    "describe",
)
UNKNOWN_SPLIT = "no-such-split-point"


def _m_interface(model, cfg) -> None:
    _expect(isinstance(model.name, str) and model.name, "name must be a non-empty string")
    shape = tuple(model.input_shape)
    _expect(
        len(shape) == 3 and all(isinstance(v, (int, np.integer)) and v > 0 for v in shape),
        f"input_shape must be 3 positive integers (C, H, W), got {model.input_shape!r}",
    )
    _expect(isinstance(model.weights_id, str), "weights_id must be a string")
    points = model.split_points
    _expect(
        isinstance(points, list) and points and all(isinstance(p, str) for p in points),
        f"split_points must be a non-empty list of names, got {points!r}",
    )
    _expect(len(set(points)) == len(points), "split_points repeat a name")
    _expect(
        model.default_split in points, f"default_split {model.default_split!r} is not a split point"
    )


def _images(model, cfg) -> np.ndarray:
    rng = np.random.default_rng(cfg["seed"])
    return rng.integers(0, 256, (cfg["n_images"], *model.input_shape), dtype=np.uint8)


def _m_normalise(model, cfg) -> None:
    import torch

    images = _images(model, cfg)
    x = model.normalise(images.copy())
    _expect(
        torch.is_tensor(x) and x.is_floating_point(),
        f"normalise must return a float torch tensor, got {type(x).__name__}",
    )
    _expect(
        tuple(x.shape) == images.shape,
        f"normalise returned shape {tuple(x.shape)} for images {images.shape}",
    )


def _m_crossing(model, cfg) -> None:
    import torch

    x = model.normalise(_images(model, cfg))
    for split in cfg["splits"]:
        crossing = model.crossing(split)
        _expect(
            isinstance(crossing, list) and crossing,
            f"crossing({split!r}) must be a non-empty list of Crossing",
        )
        for c in crossing:
            _expect(
                isinstance(c.name, str) and isinstance(c.shape, tuple),
                f"crossing({split!r}) holds {c!r}, not a Crossing(name, shape)",
            )
        with torch.no_grad():
            out = model.edge(split)(x)
        _expect(
            isinstance(out, tuple),
            f"edge({split!r}) returned a {type(out).__name__}, not a tuple of the crossing tensors",
        )
        _expect(
            len(out) == len(crossing),
            f"edge({split!r}) returned {len(out)} tensors, "
            f"crossing({split!r}) lists {len(crossing)}",
        )
        for c, t in zip(crossing, out, strict=True):
            _expect(
                torch.is_tensor(t) and tuple(t.shape[1:]) == tuple(c.shape),
                f"split {split!r}: tensor {c.name!r} is declared {tuple(c.shape)}, edge "
                f"returned {tuple(getattr(t, 'shape', ()))[1:]}",
            )


def _m_cloud_equals_full(model, cfg) -> None:
    import torch

    x = model.normalise(_images(model, cfg))
    with torch.no_grad():
        want = model.full()(x)
        for split in cfg["splits"]:
            got = model.cloud(split)(*model.edge(split)(x))
            _expect(
                torch.is_tensor(got) and got.shape == want.shape,
                f"split {split!r}: cloud(*edge(x)) has shape "
                f"{tuple(getattr(got, 'shape', ()))}, full()(x) {tuple(want.shape)}",
            )
            diff = (got - want).abs()
            allowed = cfg["atol"] + cfg["rtol"] * want.abs()
            _expect(
                bool((diff <= allowed).all()),
                f"split {split!r}: cloud(*edge(x)) differs from full()(x) by up to "
                f"{float(diff.max()):.3g} (atol {cfg['atol']:g}, rtol {cfg['rtol']:g})",
            )


def _m_unknown_split(model, cfg) -> None:
    from dfsim.errors import UserError

    for what in ("crossing", "edge", "cloud"):
        try:
            getattr(model, what)(UNKNOWN_SPLIT)
        except UserError:
            continue
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(
                f"{what}({UNKNOWN_SPLIT!r}) raised {type(exc).__name__}, "
                "expected dfsim.errors.UserError"
            ) from exc
        raise AssertionError(f"{what}({UNKNOWN_SPLIT!r}) did not raise dfsim.errors.UserError")


def _m_describe(model, cfg) -> None:
    rows = model.describe()
    _expect(
        isinstance(rows, list) and [r.get("split") for r in rows] == model.split_points,
        "describe() must give one dict per split point, in order, with its 'split'",
    )


_MODEL_CHECKS = {
    "interface": _m_interface,
    "normalise": _m_normalise,
    "crossing": _m_crossing,
    "cloud-equals-full": _m_cloud_equals_full,
    "unknown-split": _m_unknown_split,
    "describe": _m_describe,
}


def check_split_model(
    model,
    splits: Iterable[str] | None = None,
    *,
    n_images: int = 2,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    properties: Iterable[str] | None = None,
) -> None:
    """Check a split model (:class:`dfsim.stages.SplitModel`) at ``splits`` (default:
    every split point) on ``n_images`` random uint8 images. The properties
    (:data:`SPLIT_MODEL_PROPERTIES`):

    * ``interface``: a name, ``input_shape`` C x H x W, unique ``split_points`` holding
      ``default_split``, a string ``weights_id``;
    * ``normalise``: uint8 images -> a float tensor of the same shape;
    * ``crossing``: ``edge(split)`` returns a tuple with one tensor per
      ``crossing(split)`` entry, of the declared shape;
    * ``cloud-equals-full``: ``cloud(split)(*edge(split)(x))`` equals ``full()(x)`` within
      ``atol + rtol * |full|``;
    * ``unknown-split``: ``crossing``, ``edge`` and ``cloud`` of an unknown split point
      raise :class:`dfsim.errors.UserError`;
    * ``describe``: one dict per split point, in order (it times the model: leave it out
      of ``properties`` for large models).
    """
    label = f"split model {getattr(model, 'name', None) or _describe(model)!r}"
    chosen = _selected(properties, SPLIT_MODEL_PROPERTIES, "split model")
    cfg = {"n_images": n_images, "atol": atol, "rtol": rtol, "seed": seed}
    if "interface" in chosen:
        _run(label, "interface", _m_interface, model, cfg)
    cfg["splits"] = list(model.split_points if splits is None else splits)
    for prop in chosen:
        if prop != "interface":
            _run(label, prop, _MODEL_CHECKS[prop], model, cfg)
