"""The conformance check of a completion method (:class:`dfsim.stages.CompletionMethod`):
:func:`check_completion_method` and its properties, run on smooth synthetic tensors that
lose whole packets of rows."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np

from dfsim.testing._common import (
    _bits_equal,
    _describe,
    _expect,
    _is_float32_array,
    _run,
    _selected,
    synthetic_features,
)
from dfsim.transport.packets import PacketLayout

COMPLETION_PROPERTIES = (
    "received-unchanged",
    "input-unchanged",
    "loss-free",
    "extreme-losses",
    "deterministic",
    "uneven-heights",
    "batch",
    "iterations",
    "shape-mismatch",
    "fitted-state",
)
# (shape, rows per packet): heights that are not a multiple of the packet height
UNEVEN_LAYOUTS = (((4, 7, 9), 3), ((5, 10, 6), 4), ((3, 5, 5), 5), ((4, 9, 8), 2))


class _CompletionCase:
    def __init__(self, factory, shape, rows, seed):
        self.factory, self.shape, self.rows, self.seed = factory, tuple(shape), rows, seed

    def layout(self, shape=None, rows=None) -> PacketLayout:
        return PacketLayout.for_shape(shape or self.shape, rows or self.rows)

    def method(self, layout: PacketLayout):
        """A fresh instance; a trained one is fitted on smooth tensors with ``layout``."""
        m = self.factory()
        if getattr(m, "needs_fit", False):
            shape = (layout.channels, layout.height, layout.width)
            m.fit(synthetic_features(40, shape, self.seed + 99), layout)
        return m

    def damaged(self, layout: PacketLayout, n: int = 1, loss: float = 0.35, offset: int = 0):
        """``n`` smooth tensors and loss masks from random packet losses (each tensor loses
        at least one packet and keeps at least one)."""
        rng = np.random.default_rng(self.seed + 1000 + offset)
        shape = (layout.channels, layout.height, layout.width)
        x = synthetic_features(n, shape, self.seed + 1 + offset)
        k = layout.packets_per_tensor
        flags = rng.random((n, k)) < loss
        if k > 1:
            pick = rng.permutation(k)[:2]
            flags[:, pick[0]], flags[:, pick[1]] = True, False
        return x, layout.lost_mask(flags)


def _complete_checked(m, x, lost, layout, what: str = "complete") -> np.ndarray:
    """``m.complete`` (or ``complete_batch``) with the output checked: float32, the input's
    shape, finite, received entries bit for bit."""
    fn = m.complete if what == "complete" else m.complete_batch
    y = fn(x, lost, layout)
    bad = _is_float32_array(y, x.shape)
    _expect(bad is None, f"{what} returned {bad}")
    _expect(
        np.isfinite(y).all(), f"{what} returned {int((~np.isfinite(y)).sum())} non-finite values"
    )
    changed = int((~_bitmask(y, x))[~lost].sum())
    _expect(
        changed == 0,
        f"{what} changed {changed} received entr{'y' if changed == 1 else 'ies'} "
        f"(received entries must come back bit for bit)",
    )
    return y


def _bitmask(a, b) -> np.ndarray:
    """Elementwise: same float32 bits."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32) == np.ascontiguousarray(
        b, np.float32
    ).view(np.uint32)


def _c_received_unchanged(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    (x,), (lost,) = case.damaged(lay)
    for layout in (lay, None):
        _complete_checked(m, x, lost, layout, "complete")
    _complete_checked(m, x[None], lost[None], lay, "complete_batch")


def _c_input_unchanged(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    x, lost = case.damaged(lay, n=2)
    x0, lost0 = x.copy(), lost.copy()
    m.complete(x[0], lost[0], lay)
    _expect(
        _bits_equal(x, x0) and np.array_equal(lost, lost0),
        "complete modified its input tensor or mask",
    )
    m.complete_batch(x, lost, lay)
    _expect(
        _bits_equal(x, x0) and np.array_equal(lost, lost0),
        "complete_batch modified its input tensors or masks",
    )


def _c_loss_free(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    x, _ = case.damaged(lay, n=2)
    none = np.zeros(x.shape, bool)
    _expect(
        _bits_equal(m.complete(x[0], none[0], lay), x[0]),
        "complete changed a tensor without losses",
    )
    _expect(
        _bits_equal(m.complete_batch(x, none, lay), x),
        "complete_batch changed tensors without losses",
    )


def _c_extreme_losses(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    (x,), (lost,) = case.damaged(lay)
    c, h = lay.channels, lay.height
    last = (lay.bands - 1) * lay.rows_per_packet
    cases = {
        "a whole channel": lambda L: L[c // 2].fill(True),
        "the whole tensor": lambda L: L.fill(True),
        "the first row band": lambda L: L[:, : lay.rows_per_packet].fill(True),
        "the last row band": lambda L: L[:, last:h].fill(True),
        "all but one channel": lambda L: (L.fill(True), L[c // 2].fill(False)),
    }
    for what, damage in cases.items():
        mask = lost.copy()
        damage(mask)
        try:
            _complete_checked(m, x, mask, lay)
        except AssertionError as exc:
            raise AssertionError(f"losing {what}: {exc}") from None


def _c_deterministic(case: _CompletionCase) -> None:
    lay = case.layout()
    x, lost = case.damaged(lay, n=3)
    a, b = case.method(lay), case.method(lay)
    first = a.complete(x[0], lost[0], lay)
    _expect(
        _bits_equal(first, b.complete(x[0], lost[0], lay)),
        "two instances built and fitted alike complete the same tensor differently",
    )
    _expect(
        _bits_equal(first, a.complete(x[0], lost[0], lay)),
        "completing the same tensor twice gives different results",
    )
    _expect(
        _bits_equal(a.complete_batch(x, lost, lay), b.complete_batch(x, lost, lay)),
        "complete_batch is not deterministic",
    )


def _c_uneven_heights(case: _CompletionCase) -> None:
    for i, (shape, rows) in enumerate(UNEVEN_LAYOUTS):
        lay = case.layout(shape, rows)
        m = case.method(lay)
        x, lost = case.damaged(lay, n=2, loss=0.4, offset=10 + i)
        try:
            _complete_checked(m, x[0], lost[0], lay)
            _complete_checked(m, x, lost, lay, "complete_batch")
        except AssertionError as exc:
            raise AssertionError(f"shape {shape} in {rows}-row packets: {exc}") from None


def _c_batch(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    x, lost = case.damaged(lay, n=4)
    lost[2] = False  # one tensor of the batch without losses
    batch = _complete_checked(m, x, lost, lay, "complete_batch")
    single = np.stack([m.complete(t, lo, lay) for t, lo in zip(x, lost, strict=True)])
    _expect(
        _bits_equal(batch, single), "complete_batch differs from completing one tensor at a time"
    )
    empty = m.complete_batch(x[:0], lost[:0], lay)
    bad = _is_float32_array(empty, x[:0].shape)
    _expect(bad is None, f"complete_batch of an empty batch returned {bad}")


def _c_iterations(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    x, lost = case.damaged(lay, n=3)
    m.complete_batch(x[:2], lost[:2], lay)
    m.complete_batch(x, lost, lay)  # the count is that of the last batch
    it = getattr(m, "iterations", None)
    if it is None:
        return
    _expect(isinstance(it, list), f"iterations must be None or a list, got {type(it).__name__}")
    _expect(
        len(it) == len(x),
        f"after complete_batch of {len(x)} tensors, iterations has "
        f"{len(it)} entries (one per tensor expected)",
    )
    _expect(
        all(isinstance(i, (int, np.integer)) and i >= 0 for i in it),
        f"iterations must be non-negative integers, got {it!r}",
    )


def _c_shape_mismatch(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    c, h, w = case.shape
    x = np.zeros((c, h, w), np.float32)
    try:
        m.complete(x, np.zeros((c, h, w - 1), bool), lay)
    except ValueError:
        return
    raise AssertionError(
        "complete accepted a loss mask of another shape than the tensor (expected ValueError)"
    )


def _c_fitted_state(case: _CompletionCase) -> None:
    lay = case.layout()
    m = case.method(lay)
    if not getattr(m, "needs_fit", False):
        return
    state = m.fitted_state()
    _expect(
        isinstance(state, dict) and state,
        "a trained method (needs_fit) must return its fit from fitted_state() "
        "(runs cache it and restore it with load_fitted_state)",
    )
    for k, v in state.items():
        arr = np.asarray(v)
        _expect(arr.dtype != object, f"fitted_state()[{k!r}] is not a numeric array")
    restored = case.factory()
    restored = restored.load_fitted_state({k: np.array(v) for k, v in state.items()}) or restored
    x, lost = case.damaged(lay, n=2)
    _expect(
        _bits_equal(m.complete_batch(x, lost, lay), restored.complete_batch(x, lost, lay)),
        "a fresh instance given load_fitted_state(fitted_state()) completes differently",
    )


_COMPLETION_CHECKS = {
    "received-unchanged": _c_received_unchanged,
    "input-unchanged": _c_input_unchanged,
    "loss-free": _c_loss_free,
    "extreme-losses": _c_extreme_losses,
    "deterministic": _c_deterministic,
    "uneven-heights": _c_uneven_heights,
    "batch": _c_batch,
    "iterations": _c_iterations,
    "shape-mismatch": _c_shape_mismatch,
    "fitted-state": _c_fitted_state,
}


def _completion_factory(method, params: dict | None) -> tuple[Callable, str]:
    if isinstance(method, str):
        from dfsim.completion import make

        kwargs = dict(params or {})
        make(method, **kwargs)  # an unknown name or bad parameter: the UserError as is
        return (lambda: make(method, **kwargs)), f"completion method {method!r}"
    if params:
        raise ValueError("params= is for a registered name; pass a factory instead")
    if hasattr(method, "complete") and not isinstance(method, type):
        return (lambda: copy.deepcopy(method)), f"completion method {_describe(method)}"
    if callable(method):
        # a registered class carries its name; a subclass inherits it, so read its own
        name = vars(method).get("name") if isinstance(method, type) else None
        name = name or getattr(method, "__name__", None) or _describe(method)
        return method, f"completion method {name!r}"
    raise TypeError(
        f"expected a registered name, a factory or a method instance, got {type(method).__name__}"
    )


def check_completion_method(
    method,
    params: dict | None = None,
    *,
    shape: tuple[int, int, int] = (6, 12, 10),
    rows_per_packet: int = 3,
    seed: int = 0,
    properties: Iterable[str] | None = None,
) -> None:
    """Check a completion method (:class:`dfsim.stages.CompletionMethod`).

    ``method``: a registered name (built with :func:`dfsim.completion.make` and ``params``),
    a factory (a class or a function returning a new instance) or an instance (deep-copied
    for each use). Trained methods (``needs_fit``) are fitted on :func:`synthetic_features`
    with the same :class:`~dfsim.transport.packets.PacketLayout` they then complete with. Losses are
    those of whole packets of ``rows_per_packet`` rows. The properties
    (:data:`COMPLETION_PROPERTIES`):

    * ``received-unchanged``: received entries come back bit for bit, the result is a
      finite float32 array of the input's shape (with and without a layout);
    * ``input-unchanged``: neither the tensor nor the mask is modified;
    * ``loss-free``: a tensor without losses comes back unchanged;
    * ``extreme-losses``: losing a whole channel, the whole tensor, the first or the last
      row band, or all channels but one still gives finite values;
    * ``deterministic``: the same input gives the same bits (same or fresh instance);
    * ``uneven-heights``: heights that are not a multiple of the packet height;
    * ``batch``: ``complete_batch`` equals completing one tensor at a time (a batch with a
      loss-free tensor, and an empty batch);
    * ``iterations``: ``None``, or one non-negative integer per tensor of the last batch
      (a second batch does not add to the first's);
    * ``shape-mismatch``: a mask of another shape is rejected with ``ValueError``;
    * ``fitted-state``: a trained method restored with ``load_fitted_state(fitted_state())``
      completes exactly like the fitted one (runs cache fits this way).
    """
    factory, label = _completion_factory(method, params)
    case = _CompletionCase(factory, shape, rows_per_packet, seed)
    for prop in _selected(properties, COMPLETION_PROPERTIES, "completion"):
        _run(label, prop, _COMPLETION_CHECKS[prop], case)
