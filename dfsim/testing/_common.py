"""What the checks of every stage share: the synthetic feature tensors they run on, the
bit-exact comparisons they make, and how one property runs and fails (an
:class:`AssertionError` naming the component and the property)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def synthetic_features(n: int, shape, seed: int = 0) -> np.ndarray:
    """``n`` float32 tensors of ``shape`` (C x H x W) with spatial and cross-channel
    structure, like a CNN's features: the training data the checks fit trained methods on."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    base = rng.standard_normal((n, 3, h, w)).astype(np.float32).cumsum(axis=2).cumsum(axis=3) / 5
    mix = rng.standard_normal((c, 3)).astype(np.float32)
    noise = 0.05 * rng.standard_normal((n, c, h, w))
    return (np.einsum("ck,nkhw->nchw", mix, base) + noise).astype(np.float32)


def _describe(obj, limit: int = 70) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expect(condition, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _run(label: str, prop: str, fn: Callable, *args) -> None:
    """Run one property; any failure becomes an AssertionError naming component and property."""
    try:
        fn(*args)
    except AssertionError as exc:
        raise AssertionError(f"{label}: {prop}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a crash is a failed property too
        raise AssertionError(f"{label}: {prop}: raised {type(exc).__name__}: {exc}") from exc


def _selected(properties, known: tuple[str, ...], what: str) -> list[str]:
    chosen = list(known if properties is None else properties)
    unknown = [p for p in chosen if p not in known]
    if unknown:
        raise ValueError(
            f"unknown {what} propert{'ies' if len(unknown) > 1 else 'y'} "
            f"{', '.join(map(repr, unknown))} (known: {', '.join(known)})"
        )
    return chosen


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape and the same float32 bit patterns (so -0.0 != 0.0 and NaN == NaN)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _is_float32_array(y, shape) -> str | None:
    """None if ``y`` is a float32 array of ``shape``, else what it is."""
    if not isinstance(y, np.ndarray):
        return f"a {type(y).__name__}, not a numpy array"
    if y.dtype != np.float32 or y.shape != tuple(shape):
        return f"{y.dtype} of shape {y.shape}, expected float32 of shape {tuple(shape)}"
    return None
