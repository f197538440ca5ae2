"""Conformance checks for dfsim components, one per pipeline stage (in the spirit of
scikit-learn's ``check_estimator``).

Each check exercises the contract of its interface (:mod:`dfsim.stages`) on synthetic
and adversarial inputs and raises :class:`AssertionError` naming the component and the
property that failed; it returns ``None`` when everything holds. No test framework is
needed, so a package that adds components can call the checks from its own tests::

    import numpy as np
    from dfsim import testing

    testing.check_completion_method("my-method")            # a registered name
    testing.check_completion_method(lambda: MyMethod(strength=0.2))
    testing.check_channel(MyChannel(period=5), np.random.default_rng(0))
    testing.check_codec(MyCodec(bits=12))
    testing.check_task(MyTask(), outputs=np.random.default_rng(0).standard_normal((64, 10)),
                       targets=np.arange(64) % 10)
    testing.check_split_model(my_split_model)

The properties each check covers are listed in its docstring; ``properties=`` runs a
subset (e.g. one per test case). Checks are deterministic: the same component and seed
give the same verdict.
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from dfsim.transport.packets import PacketLayout

__all__ = [
    "CHANNEL_PROPERTIES",
    "CODEC_PROPERTIES",
    "COMPLETION_PROPERTIES",
    "DEFAULT_CODEC_LAYOUTS",
    "SPLIT_MODEL_PROPERTIES",
    "TASK_PROPERTIES",
    "UNEVEN_LAYOUTS",
    "UNKNOWN_SPLIT",
    "check_channel",
    "check_codec",
    "check_completion_method",
    "check_split_model",
    "check_task",
    "synthetic_features",
]


# --------------------------------------------------------------------------- helpers
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


# --------------------------------------------------------------------------- completion
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


# --------------------------------------------------------------------------- channels
CHANNEL_PROPERTIES = (
    "interface",
    "output",
    "generator-only",
    "continuation",
    "loss-rate",
    "for-trial",
)


def _fork(rng: np.random.Generator) -> np.random.Generator:
    """A generator in the same state as ``rng`` (``rng`` itself is not advanced)."""
    return copy.deepcopy(rng)


def _flags_ok(flags, n: int, what: str) -> None:
    _expect(
        isinstance(flags, np.ndarray),
        f"{what} returned a {type(flags).__name__}, not a numpy array",
    )
    _expect(
        flags.dtype == np.bool_ and flags.shape == (n,),
        f"{what} returned {flags.dtype} of shape {flags.shape}, expected bool of shape ({n},)",
    )


def _burst_inflation(channel) -> float:
    """How much burstiness widens the spread of a loss-rate estimate (about 2 x the mean
    burst length for a Gilbert channel; at least 1)."""
    burst = float(channel.mean_burst_length)
    return max(1.0, 2.0 * burst) if math.isfinite(burst) else math.inf


def _ch_interface(channel, rng, cfg) -> None:
    p = channel.loss_rate
    _expect(
        isinstance(p, (float, int, np.floating)) and 0.0 <= float(p) <= 1.0,
        f"loss_rate must be a number in [0, 1], got {p!r}",
    )
    b = channel.mean_burst_length
    _expect(
        isinstance(b, (float, int, np.floating)) and not math.isnan(b) and b >= 0,
        f"mean_burst_length must be a number >= 0 (inf allowed), got {b!r}",
    )
    for name in ("stream", "sample", "for_trial"):
        _expect(callable(getattr(channel, name, None)), f"has no method {name}()")


def _ch_output(channel, rng, cfg) -> None:
    for n in (1000, 1, 0):
        _flags_ok(channel.sample(n, _fork(rng)), n, f"sample({n}, rng)")
    stream = channel.stream(_fork(rng))
    _expect(callable(getattr(stream, "take", None)), "stream(rng) has no take(n)")
    for n in (7, 0, 300):
        _flags_ok(stream.take(n), n, f"stream(rng).take({n})")


def _ch_generator_only(channel, rng, cfg) -> None:
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        np.random.seed(1)
        random.seed(1)
        a = channel.sample(5000, _fork(rng))
        s = channel.stream(_fork(rng))
        sa = [s.take(100) for _ in range(3)]
        np.random.seed(2)
        random.seed(2)
        b = channel.sample(5000, _fork(rng))
        s = channel.stream(_fork(rng))
        sb = [s.take(100) for _ in range(3)]
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    _expect(
        np.array_equal(a, b) and all(np.array_equal(x, y) for x, y in zip(sa, sb, strict=True)),
        "generators in the same state gave different loss flags: the channel draws from "
        "something besides the generator it is given (global random state?)",
    )


def _chunks(total: int, hi: int, seed: int) -> list[int]:
    sizes = np.random.default_rng(seed).integers(1, hi + 1, size=total)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), total)) + 1]
    sizes[-1] -= int(sizes.sum()) - total
    return [int(k) for k in sizes if k > 0]


def _ch_continuation(channel, rng, cfg) -> None:
    if cfg["exact_continuation"]:
        sizes = _chunks(20_000, 64, cfg["seed"])
        s = channel.stream(_fork(rng))
        pieces = np.concatenate([s.take(k) for k in sizes])
        whole = channel.stream(_fork(rng)).take(sum(sizes))
        if not np.array_equal(pieces, whole):
            first = int(np.flatnonzero(pieces != whole)[0])
            raise AssertionError(
                f"a stream taken in {len(sizes)} pieces differs from one take of "
                f"{sum(sizes)} from the same generator state (first at packet {first}); a channel "
                "that continues its stream only statistically: exact_continuation=False"
            )
        return
    # statistical: the chunked stream keeps the loss rate and P(lost | previous lost) of an
    # unbroken stream (a stream that restarts at every take loses its bursts)
    n = 60_000
    seeds = _fork(rng).integers(0, 2**63, size=2)
    s = channel.stream(np.random.default_rng(seeds[0]))
    pieces = np.concatenate([s.take(k) for k in _chunks(n, 4, cfg["seed"])])
    whole = channel.stream(np.random.default_rng(seeds[1])).take(n)
    _loss_rate_within(channel, pieces, "a stream taken in pieces of 1 to 4 packets")
    infl = _burst_inflation(channel)
    if not math.isfinite(infl):
        return
    q, m = [], []
    for f in (pieces, whole):
        prev = f[:-1]
        m.append(int(prev.sum()))
        q.append(float((prev & f[1:]).sum() / m[-1]) if m[-1] else math.nan)
    if min(m) < 100:
        return
    qq = (q[0] + q[1]) / 2
    tol = 6 * math.sqrt(max(qq * (1 - qq), 1e-12) * (1 / m[0] + 1 / m[1]) * infl) + 1e-9
    _expect(
        abs(q[0] - q[1]) <= tol,
        f"P(lost | previous lost) is {q[0]:.4f} in a stream taken in pieces of 1 to 4 packets "
        f"but {q[1]:.4f} in one take (tolerance {tol:.4f}): the stream does not continue "
        "across take() calls",
    )


def _loss_rate_within(channel, flags: np.ndarray, what: str) -> None:
    p, n = float(channel.loss_rate), len(flags)
    infl = _burst_inflation(channel)
    if not math.isfinite(infl) and 0 < p < 1:
        return  # no finite bound on the spread
    sigma = math.sqrt(p * (1 - p) * (infl if math.isfinite(infl) else 1.0) / n)
    tol = 6 * sigma + 1e-12
    realised = float(flags.mean())
    _expect(
        abs(realised - p) <= tol,
        f"{what}: realised loss rate {realised:.5f} over {n} packets, but loss_rate is "
        f"{p:.5f} (6-sigma tolerance {tol:.5f}, mean burst {channel.mean_burst_length:.4g})",
    )


def _ch_loss_rate(channel, rng, cfg) -> None:
    _loss_rate_within(channel, channel.sample(cfg["n"], _fork(rng)), "sample")


def _ch_for_trial(channel, rng, cfg) -> None:
    for trial in (0, 3):
        other = channel.for_trial(trial, 1000)
        for name in ("stream", "sample", "for_trial"):
            _expect(
                callable(getattr(other, name, None)),
                f"for_trial({trial}, 1000) returned {_describe(other)}, not a channel "
                f"(no {name}())",
            )
        p = other.loss_rate
        _expect(0.0 <= float(p) <= 1.0, f"for_trial({trial}, 1000).loss_rate is {p!r}")
        _flags_ok(other.sample(1000, _fork(rng)), 1000, f"for_trial({trial}, 1000).sample")


_CHANNEL_CHECKS = {
    "interface": _ch_interface,
    "output": _ch_output,
    "generator-only": _ch_generator_only,
    "continuation": _ch_continuation,
    "loss-rate": _ch_loss_rate,
    "for-trial": _ch_for_trial,
}


def check_channel(
    channel,
    rng: np.random.Generator | None = None,
    *,
    n: int = 200_000,
    exact_continuation: bool = True,
    seed: int = 0,
    properties: Iterable[str] | None = None,
) -> None:
    """Check a loss channel (:class:`dfsim.transport.channels.LossChannel`).

    ``rng`` is only copied, never advanced (default ``numpy.random.default_rng(seed)``).
    The properties (:data:`CHANNEL_PROPERTIES`):

    * ``interface``: ``loss_rate`` in [0, 1], ``mean_burst_length`` >= 0 (inf allowed),
      ``stream``, ``sample`` and ``for_trial`` exist;
    * ``output``: ``sample(n, rng)`` and ``stream(rng).take(n)`` give ``n`` bool flags
      (n = 0 included);
    * ``generator-only``: generators in the same state give the same flags whatever the
      global ``numpy.random`` and ``random`` states;
    * ``continuation``: with ``exact_continuation`` (the channel promises it), a stream
      taken in pieces equals one long take from the same generator state; otherwise the
      pieces keep the loss rate and P(lost | previous lost) of an unbroken stream;
    * ``loss-rate``: the realised loss rate of ``n`` packets is within 6 sigma of
      ``loss_rate``, sigma widened for burstiness by ``2 x mean_burst_length``;
    * ``for-trial``: ``for_trial(t, packets_per_trial)`` returns a working channel.
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    label = f"channel {_describe(channel)}"
    cfg = {"n": int(n), "exact_continuation": exact_continuation, "seed": seed}
    for prop in _selected(properties, CHANNEL_PROPERTIES, "channel"):
        _run(label, prop, _CHANNEL_CHECKS[prop], channel, rng, cfg)


# --------------------------------------------------------------------------- codecs
CODEC_PROPERTIES = (
    "interface",
    "encode",
    "round-trip",
    "subsets",
    "lossless",
    "distortion",
    "payload-errors",
)
# (shape C x H x W, rows per packet); the send order alternates
DEFAULT_CODEC_LAYOUTS = (
    ((6, 12, 10), 4),
    ((4, 7, 5), 3),
    ((1, 9, 6), 2),
    ((3, 5, 8), 5),
    ((2, 6, 4), 1),
)
# the inputs with structure a lossy codec is expected to code well ("distortion")
_STRUCTURED = ("feature-like", "given features")


def _codec_inputs(shape, n: int, seed: int, features) -> dict[str, np.ndarray]:
    """Real-ish and adversarial batches of ``n`` tensors of ``shape``."""
    rng = np.random.default_rng(seed)
    full = (n, *shape)
    spikes = rng.standard_normal(full).astype(np.float32)
    spikes.reshape(n, -1)[:, ::17] *= 1e3
    levels = np.linspace(-2.5, 3.75, n, dtype=np.float32)[:, None, None, None]
    inputs = {
        "feature-like": np.maximum(synthetic_features(n, shape, seed), 0),
        "constant": np.broadcast_to(levels, full).copy(),
        "all-zero": np.zeros(full, np.float32),
        "max-entropy": rng.uniform(-1e3, 1e3, full).astype(np.float32),
        "outliers": spikes,
    }
    if features is not None:
        inputs["given features"] = np.asarray(features, np.float32)
    return inputs


def _codec_cases(layouts, n: int, seed: int, features):
    cases = []
    for i, spec in enumerate(layouts):
        if isinstance(spec, PacketLayout):
            lay = spec
        else:
            shape, rows = spec
            lay = PacketLayout.for_shape(shape, rows, ("row-major", "channel-major")[i % 2])
        shape = (lay.channels, lay.height, lay.width)
        for kind, x in _codec_inputs(shape, n, seed + i, None).items():
            cases.append((lay, kind, x))
    if features is not None:
        f = np.asarray(features, np.float32)
        for rows in (1, 3):
            lay = PacketLayout.for_shape(f.shape[1:], min(rows, f.shape[2]))
            cases.append((lay, "given features", f))
    return cases


def _where(lay: PacketLayout, kind: str) -> str:
    return (
        f"{kind} tensors {lay.channels}x{lay.height}x{lay.width} in {lay.rows_per_packet}-row "
        f"packets ({lay.order})"
    )


def _whole_tensor(codec) -> bool:
    """The codec's packets are fragments of one codestream per tensor (``whole_tensor``
    True): a missing one loses the whole tensor."""
    return bool(getattr(codec, "whole_tensor", False))


def _packets(codec, e, lay: PacketLayout) -> int:
    """K, the packets of each image: the layout's, or a whole-tensor codec's fragments."""
    return e.packets_per_image if _whole_tensor(codec) else lay.packets_per_tensor


def _lost_for(codec, lay: PacketLayout, received: np.ndarray) -> np.ndarray:
    """The entries the decoder must mark lost when the packets not ``received`` (N x K)
    are missing: their rows (``layout.lost_mask``), or, for a whole-tensor codec, every
    entry of each image that misses one."""
    if _whole_tensor(codec):
        gone = ~np.asarray(received, bool).all(axis=1)
        shape = (len(gone), lay.channels, lay.height, lay.width)
        return np.broadcast_to(gone[:, None, None, None], shape).copy()
    return lay.lost_mask(~np.asarray(received, bool))


def _k_interface(codec, cases, cfg) -> None:
    bits = codec.side_info_bits
    _expect(
        isinstance(bits, (int, np.integer)) and not isinstance(bits, bool) and bits >= 0,
        f"side_info_bits must be an integer >= 0, got {bits!r}",
    )
    text = codec.describe_values()
    _expect(
        isinstance(text, str) and text,
        f"describe_values() must be a non-empty string, got {text!r}",
    )
    for rows, width in ((1, 1), (4, 10), (7, 3)):
        mp = codec.max_payload_bits(rows, width)
        _expect(
            mp is None or (isinstance(mp, (int, np.integer)) and mp >= 0),
            f"max_payload_bits({rows}, {width}) must be an integer >= 0 or None, got {mp!r}",
        )


def _k_encode(codec, cases, cfg) -> None:
    whole = _whole_tensor(codec)
    for lay, kind, x in cases:
        where = _where(lay, kind)
        x0 = x.copy()
        e = codec.encode(x, lay)
        _expect(_bits_equal(x, x0), f"{where}: encode modified its input")
        n, k = len(x), lay.packets_per_tensor
        _expect(e.n_images == n, f"{where}: Encoded.n_images is {e.n_images}, expected {n}")
        pb = e.payload_bits
        shaped = isinstance(pb, np.ndarray) and np.issubdtype(pb.dtype, np.integer)
        if whole:  # K fragments, K >= 1, the same K for every image
            _expect(
                shaped and pb.ndim in (1, 2) and pb.shape[-1] >= 1 and pb.shape[:-1] in ((), (n,)),
                f"{where}: payload_bits must be an integer array of the K >= 1 fragments of "
                f"one tensor (K) or of each image (N x K), got "
                f"{getattr(pb, 'dtype', type(pb).__name__)} of shape {getattr(pb, 'shape', '?')}",
            )
            k = pb.shape[-1]
        else:
            _expect(
                shaped and pb.shape in ((k,), (n, k)),
                f"{where}: payload_bits must be an integer array of the {k} packets of one "
                f"tensor (K) or of each image (N x K), got "
                f"{getattr(pb, 'dtype', type(pb).__name__)} of shape {getattr(pb, 'shape', '?')}",
            )
        _expect((pb >= 0).all(), f"{where}: negative payload_bits {pb.min()}")
        pb = np.broadcast_to(pb, (n, k))
        nrows = lay.headers()["nrows"]
        bounds = [codec.max_payload_bits(int(r), lay.width) for r in nrows]
        if not whole and all(b is not None for b in bounds):
            bound = np.array(bounds)
            over = np.flatnonzero((pb > bound).any(axis=0))
            if len(over):
                j = int(over[0])
                _expect(
                    False,
                    f"{where}: packet {j} has {int(pb[:, j].max())} payload bits, over "
                    f"max_payload_bits {int(bound[j])}",
                )
        sib = np.asarray(e.side_info_bits)
        _expect(
            np.issubdtype(sib.dtype, np.integer)
            and sib.shape in ((), (n,))
            and (sib >= 0).all()
            and (sib <= codec.side_info_bits).all(),
            f"{where}: Encoded.side_info_bits {e.side_info_bits!r} must be integers (one, or "
            f"one per image) in [0, codec.side_info_bits = {codec.side_info_bits}]",
        )
        # Side information coded into bytes (N x B, zero-padded to the longest image's)
        # holds up to the largest count, rounded up to whole bytes per array.
        sib = int(sib.max()) + 7 * len(e.side_info)
        ideal = e.ideal_bits
        _expect(
            ideal is None or (np.shape(ideal) == (n,) and np.all(np.asarray(ideal) >= 0)),
            f"{where}: Encoded.ideal_bits must be None or one non-negative number per image",
        )
        _expect(isinstance(e.side_info, dict), f"{where}: side_info must be a dict")
        carried = 0
        for name, arr in e.side_info.items():
            _expect(
                isinstance(arr, np.ndarray) and arr.ndim >= 1 and len(arr) == n,
                f"{where}: side_info[{name!r}] must be an array with one entry per image "
                f"({n}), got shape {getattr(arr, 'shape', type(arr).__name__)}",
            )
            width = arr.dtype.itemsize * 8
            if np.issubdtype(arr.dtype, np.integer) and name not in ("vmin", "vmax"):
                # integer side information may be quantizer codes: ``bits`` bits each
                width = min(width, int(getattr(codec, "bits", width)))
            carried += width * int(np.prod(arr.shape[1:], dtype=np.int64))
        _expect(
            carried <= sib,
            f"{where}: side_info holds {carried} bits per image but "
            f"side_info_bits counts only {sib - 7 * len(e.side_info)}",
        )


def _decode(codec, e, received, lay, where: str, n: int):
    values, lost = codec.decode(e, received, e.side_info)
    shape = (n, lay.channels, lay.height, lay.width)
    bad = _is_float32_array(values, shape)
    _expect(bad is None, f"{where}: decode returned values of {bad}")
    _expect(
        isinstance(lost, np.ndarray) and lost.dtype == np.bool_ and lost.shape == shape,
        f"{where}: decode's lost mask must be bool of shape {shape}",
    )
    return values, lost


def _everything(codec, e, lay):
    return np.ones((e.n_images, _packets(codec, e, lay)), bool)


def _k_round_trip(codec, cases, cfg) -> None:
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        everything = _everything(codec, e, lay)
        values, lost = _decode(codec, e, everything, lay, where, n)
        _expect(
            not lost.any(),
            f"{where}: every packet received, yet {int(lost.sum())} entries marked lost",
        )
        _expect(np.isfinite(values).all(), f"{where}: decoded values are not finite")
        again, _ = codec.decode(codec.encode(x.copy(), lay), everything, e.side_info)
        _expect(
            _bits_equal(values, again),
            f"{where}: encoding and decoding the same tensors twice gives different bits",
        )
        flat_x = x.reshape(n, -1).astype(np.float64)
        span = flat_x.max(axis=1) - flat_x.min(axis=1)
        peak = np.abs(flat_x).max(axis=1)
        scale = span if cfg["exact_constants"] else np.where(span > 0, span, peak)
        bound = cfg["tolerance"] * scale + 1e-6 * peak
        err = np.abs(values.reshape(n, -1) - flat_x).max(axis=1)
        worst = int(np.argmax(err - bound))
        if span[worst] == 0:
            hint = (
                " (an all-zero tensor must come back exactly)"
                if peak[worst] == 0
                else " (a constant tensor must come back exactly, to float precision; "
                "exact_constants=False bounds its error by tolerance x its magnitude)"
                if cfg["exact_constants"]
                else f" (magnitude {peak[worst]:.6g})"
            )
        else:
            hint = f" (value range {span[worst]:.6g})"
        _expect(
            (err <= bound).all(),
            f"{where}: image {worst} decodes with error {err[worst]:.6g}, over the bound "
            f"{bound[worst]:.6g} (tolerance {cfg['tolerance']:g}){hint}",
        )


def _k_subsets(codec, cases, cfg) -> None:
    rng = np.random.default_rng(cfg["seed"] + 7)
    whole = _whole_tensor(codec)
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        k = _packets(codec, e, lay)
        full, _ = codec.decode(e, np.ones((n, k), bool), e.side_info)
        masks = [rng.random((n, k)) < p for p in (0.2, 0.6, 0.9)] + [np.zeros((n, k), bool)]
        masks.append(np.ones((n, k), bool))
        if whole and k > 1:  # one fragment missing from each image but the last
            one = np.ones((n, k), bool)
            one[np.arange(n - 1), rng.integers(0, k, n - 1)] = False
            masks.append(one)
        for received in masks:
            values, lost = _decode(codec, e, received.copy(), lay, where, n)
            expected = _lost_for(codec, lay, received)
            shown = f"{where}, {int(received.sum())} of {n * k} packets received"
            rule = (
                "an image missing any of its fragments is lost whole, the others not at all "
                "(whole_tensor)"
                if whole
                else "the lost mask is that of the missing packets"
            )
            _expect(
                np.array_equal(lost, expected),
                f"{shown}: {rule} ({int((lost & ~expected).sum())} entries marked lost "
                f"that were not, {int((expected & ~lost).sum())} missing ones not marked)",
            )
            _expect(not np.any(values[lost] != 0), f"{shown}: lost entries are not 0")
            _expect(
                _bits_equal(values[~lost], full[~lost]),
                f"{shown}: received "
                + ("images" if whole else "rows")
                + " decode differently than with every packet ("
                + ("images" if whole else "packets")
                + " must decode independently)",
            )
            if hasattr(codec, "packet_lost"):  # the receiver counts undecodable packets by it
                flags = np.asarray(codec.packet_lost(lost, e))
                gone = ~received.all(axis=1, keepdims=True) if whole else ~received
                _expect(
                    flags.shape == (n, k) and np.array_equal(flags, np.broadcast_to(gone, (n, k))),
                    f"{shown}: packet_lost(lost) must flag exactly the packets whose values "
                    "are lost",
                )


def _packet_bytes(codec, e):
    """The PacketBytes of an encoding: the first item of a tuple of payloads, or the
    ``bytes`` attribute of the codec's own payload object (None: the codec keeps packets
    another way)."""
    from dfsim.codecs.base import PacketBytes

    p = e.payloads
    first = p[0] if isinstance(p, tuple) and p else getattr(p, "bytes", None)
    return first if isinstance(first, PacketBytes) else None


def _with_packets(e, packets):
    """``e`` with its PacketBytes replaced by ``packets`` (the rest shared)."""
    p = e.payloads
    if isinstance(p, tuple):
        p = (packets, *p[1:])
    else:
        p = copy.copy(p)
        p.bytes = packets
    return type(e)(**{**e.__dict__, "payloads": p})


def _k_lossless(codec, cases, cfg) -> None:
    from dfsim.codecs.raw import RawCodec

    if not getattr(codec, "lossless", False):
        return
    camera = bool(getattr(codec, "camera", False))
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        values, _ = codec.decode(e, _everything(codec, e, lay), e.side_info)
        if camera:  # the camera's 8-bit image, coded as it is: no quantizer
            expected, what = np.rint(x).astype(np.float32), "the camera's image"
        else:
            raw = RawCodec(codec.bits)
            r = raw.encode(x, lay)
            k = lay.packets_per_tensor
            expected, _ = raw.decode(r, np.ones((n, k), bool), r.side_info)
            what = f"the {codec.bits}-bit quantizer's values"
        _expect(
            _bits_equal(values, expected),
            f"{where}: a lossless codec must decode to {what} bit for bit "
            f"({int((values != expected).sum())} values differ)",
        )


def _snr_db(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per image, 10 log10(variance / MSE) of ``y`` against ``x`` (float64): how much
    closer than the best constant (the mean) the decoded values are; NaN for a constant
    tensor, inf for an exact one."""
    n = len(x)
    xf = x.reshape(n, -1).astype(np.float64)
    mse = np.mean(np.square(y.reshape(n, -1).astype(np.float64) - xf), axis=1)
    var = xf.var(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, 10 * np.log10(var / mse), np.nan)


def _k_distortion(codec, cases, cfg) -> None:
    if getattr(codec, "lossless", None) is not False:
        return  # lossless ones are held to bit-exactness ("lossless"); undeclared: neither
    floor = cfg["min_snr_db"]
    for lay, kind, x in cases:
        if kind not in _STRUCTURED:
            continue
        where = _where(lay, kind)
        e = codec.encode(x, lay)
        values, _ = codec.decode(e, _everything(codec, e, lay), e.side_info)
        snr = _snr_db(x, values)
        worst = int(np.nanargmin(np.where(np.isnan(snr), np.inf, snr)))
        if np.isnan(snr[worst]):
            continue  # constant tensors only ("round-trip" holds them exact)
        _expect(
            snr[worst] >= floor,
            f"{where}: image {worst} decodes with an SNR of {snr[worst]:.2f} dB (variance / "
            f"MSE), under the bound {floor:g} dB (min_snr_db): a lossy codec must keep the "
            "tensor's structure, not only its range",
        )


def _damaged(packets, j: int, how: str, crc: str = "sent", rng=None):
    """``packets`` with packet j truncated by a byte, emptied, with a byte flipped or (with
    ``rng``) replaced by random bytes of its length; the CRC-32s as they were sent, or
    (``crc="recomputed"``) those of the damaged bytes, so that the damage gets past the
    CRC check to the decoder."""
    from dfsim.codecs.base import PacketBytes

    chunks = [packets.payload(i) for i in range(len(packets))]
    p = chunks[j]
    if how == "truncated":
        chunks[j] = p[:-1]
    elif how == "emptied":
        chunks[j] = b""
    elif how == "random":
        chunks[j] = rng.integers(0, 256, len(p), dtype=np.uint8).tobytes()
    else:
        flipped = bytearray(p)
        flipped[len(p) // 2] ^= 0x5A
        chunks[j] = bytes(flipped)
    out = PacketBytes.from_list(chunks)
    if crc == "sent":
        out.crc = packets.crc.copy()
    return out


def _k_payload_errors(codec, cases, cfg) -> None:
    rng = np.random.default_rng(cfg["seed"] + 11)
    whole = _whole_tensor(codec)
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        packets = _packet_bytes(codec, e)
        if packets is None:
            return  # the codec does not put bytes on the wire (raw's fixed-size codes)
        k = _packets(codec, e, lay)
        everything = np.ones((n, k), bool)
        full, _ = codec.decode(e, everything, e.side_info)
        model = {key: v for key, v in e.side_info.items() if key not in ("vmin", "vmax")}
        top = (1 << codec.bits) - 1
        for j in rng.choice(len(packets), size=min(3, len(packets)), replace=False):
            payload = packets.payload(j)
            if not payload:
                continue
            received = np.ones(n * k, bool)
            received[j] = False
            unit = _lost_for(codec, lay, received.reshape(n, k))  # what packet j holds
            garbage = rng.integers(0, 256, len(payload) + 3, dtype=np.uint8).tobytes()
            for how in ("truncated", "emptied", "flipped"):
                # What arrives differs from what was sent: the packet is lost, and only it.
                e2 = _with_packets(e, _damaged(packets, j, how))
                values, lost = codec.decode(e2, everything, e.side_info)
                _expect(
                    np.array_equal(lost, unit),
                    f"{where}: packet {j} {how} in flight must count as lost, and only it"
                    + (" (with the rest of its image: whole_tensor)" if whole else ""),
                )
                _expect(
                    _bits_equal(values[~lost], full[~lost]),
                    f"{where}: packet {j} {how} in flight changed other packets' values",
                )
            if hasattr(codec, "decode_packets"):
                _decoder_never_raises(codec, packets, e, lay, where, j, garbage, model, top)
            else:
                _bad_bytes_past_crc(codec, packets, e, lay, j, unit, full, where, rng)


def _decoder_never_raises(codec, packets, e, lay, where, j, garbage, model, top) -> None:
    """A packet codec's ``decode_packets`` given a bad payload: a flag or valid codes,
    never a crash."""
    from dfsim.codecs.base import PacketBytes

    hdr = e.payloads[1]
    payload = packets.payload(j)
    for how, bad in (
        ("truncated", payload[:-1]),
        ("emptied", b""),
        ("flipped", _damaged(packets, j, "flipped").payload(j)),
        ("random", garbage),
    ):
        try:
            codes, ok = codec.decode_packets(
                PacketBytes.from_list([bad]),
                np.zeros(1, np.int64),
                hdr["nrows"][j : j + 1].astype(np.int64),
                lay.width,
                hdr["image"][j : j + 1].astype(np.int64),
                model,
            )
        except Exception as exc:  # noqa: BLE001 - the property is "never raises"
            raise AssertionError(
                f"{where}: decode_packets on a {how} payload of packet {j} raised "
                f"{type(exc).__name__}: {exc} (flag it: ok False / PayloadError)"
            ) from None
        _expect(
            not ok[0] or int(np.asarray(codes[0]).max(initial=0)) <= top,
            f"{where}: a {how} payload of packet {j} decodes to values over {top}",
        )


def _bad_bytes_past_crc(codec, packets, e, lay, j, unit, full, where, rng) -> None:
    """The codec's decoder given packet j's bytes damaged with the CRC-32 recomputed (they
    reach the decoder): never a crash; a truncated or emptied packet counts as lost (with
    what it holds: its rows, or its whole tensor); a corrupted or random one is lost or
    decodes to finite values within the quantizer's range, and nothing outside what packet
    j holds changes."""
    n = e.n_images
    everything = np.ones((n, _packets(codec, e, lay)), bool)
    img = int(np.flatnonzero(unit.reshape(n, -1).any(axis=1))[0]) if unit.any() else 0
    vmin, vmax = e.side_info.get("vmin"), e.side_info.get("vmax")
    for how in ("truncated", "emptied", "flipped", "random"):
        e2 = _with_packets(e, _damaged(packets, j, how, "recomputed", rng))
        try:
            values, lost = codec.decode(e2, everything, e.side_info)
        except Exception as exc:  # noqa: BLE001 - the property is "never raises"
            raise AssertionError(
                f"{where}: packet {j} {how} (its CRC-32 recomputed) made decode raise "
                f"{type(exc).__name__}: {exc} (count it as lost: PayloadError)"
            ) from None
        _expect(
            not (lost & ~unit).any() and _bits_equal(values[~unit], full[~unit]),
            f"{where}: packet {j} {how} (its CRC-32 recomputed) changed what other packets hold",
        )
        if how in ("truncated", "emptied"):
            _expect(
                lost[unit].all(),
                f"{where}: packet {j} {how} (its CRC-32 recomputed) must count as lost"
                + (" (its whole tensor: whole_tensor)" if _whole_tensor(codec) else ""),
            )
        got = values[unit & ~lost]
        _expect(
            np.isfinite(got).all() and not np.any(values[lost] != 0),
            f"{where}: packet {j} {how} (its CRC-32 recomputed) decodes to non-finite values "
            "or non-zero lost entries",
        )
        if vmin is not None and vmax is not None and got.size:
            lo, hi = float(vmin[img]), float(vmax[img])
            slack = 1e-6 * max(abs(lo), abs(hi), 1.0)
            _expect(
                got.min() >= lo - slack and got.max() <= hi + slack,
                f"{where}: packet {j} {how} (its CRC-32 recomputed) decodes to values outside "
                f"the quantizer's range [{lo:.6g}, {hi:.6g}]",
            )


_CODEC_CHECKS = {
    "interface": _k_interface,
    "encode": _k_encode,
    "round-trip": _k_round_trip,
    "subsets": _k_subsets,
    "lossless": _k_lossless,
    "distortion": _k_distortion,
    "payload-errors": _k_payload_errors,
}


def check_codec(
    codec,
    layouts: Iterable | None = None,
    *,
    params: dict | None = None,
    features: np.ndarray | None = None,
    n_images: int = 3,
    tolerance: float = 0.5,
    exact_constants: bool = True,
    min_snr_db: float = 10.0,
    seed: int = 0,
    properties: Iterable[str] | None = None,
) -> None:
    """Check a codec (:class:`dfsim.stages.Codec`): an instance, or a registered name
    (built with ``params``).

    ``layouts``: :class:`~dfsim.transport.packets.PacketLayout` objects or ``((C, H, W),
    rows_per_packet)`` pairs (default :data:`DEFAULT_CODEC_LAYOUTS`: one channel, heights
    that are not a multiple of the packet height, both send orders). For each, batches of
    ``n_images`` tensors: feature-like, constant, all zero, maximum-entropy uniform noise
    and Gaussian noise with large outliers; ``features`` (N x C x H x W) adds your own.

    A codec with ``whole_tensor`` True codes each tensor as one codestream and sends it in
    K fragments (K >= 1, the same for every image of a batch, not the layout's packets):
    a missing fragment loses the whole tensor. The properties hold it to exactly that
    where they hold other codecs to the rows of the missing packets.

    The properties (:data:`CODEC_PROPERTIES`):

    * ``interface``: ``side_info_bits`` an integer >= 0, ``describe_values()`` a string,
      ``max_payload_bits`` an integer >= 0;
    * ``encode``: the input is not modified; ``payload_bits`` is an integer array with one
      non-negative entry per packet (per fragment), each within ``max_payload_bits`` of
      its rows; ``side_info`` has one entry per image, and ``side_info_bits`` (at most the
      codec's) counts at least the bits its arrays hold;
    * ``round-trip``: with every packet received nothing is lost, values are finite,
      decoding is bit-reproducible, and each value is within ``tolerance`` x the tensor's
      value range of the input (a lossy codec cannot return the input itself); an all-zero
      tensor comes back exactly, and so does a constant one, to float precision (with
      ``exact_constants=False``: within ``tolerance`` x its magnitude, e.g. for a
      fixed-point codec);
    * ``subsets``: any subset of packets decodes to exactly those rows, bit for bit as with
      every packet, and marks the others lost (``layout.lost_mask``) with value 0; for a
      whole-tensor codec: an image with all its fragments decodes bit for bit as with
      every packet, one missing any is lost whole. A codec with ``packet_lost`` (the
      receiver counts undecodable packets by it) flags exactly the packets whose values
      are lost;
    * ``lossless`` (codecs with ``lossless = True``): decoded values equal the uniform
      quantizer's at the codec's ``bits``, bit for bit (a codec with ``camera`` True, which
      codes the camera's 8-bit image as it is: the image itself);
    * ``distortion`` (codecs that declare ``lossless = False``): on the structured inputs
      (feature-like tensors and ``features``), every non-constant tensor decodes with
      10 log10(variance / MSE) >= ``min_snr_db`` against the input: much closer to it than
      the best constant, which a codec returning zeros, a flat or a garbled picture is not;
      the other inputs (noise) are held to ``round-trip``'s bound only;
    * ``payload-errors`` (codecs whose payloads are :class:`~dfsim.codecs.base.PacketBytes`,
      the first of a tuple or the ``bytes`` attribute of the codec's payload object):
      a packet truncated, emptied or corrupted in flight counts as lost (with its whole
      tensor, for a whole-tensor codec) while the others decode as before; and
      ``decode_packets`` given a truncated, empty, corrupted or random payload never
      raises: it flags it (``PayloadError`` in ``decode_packet``) or returns codes within
      ``bits``. A codec without ``decode_packets`` gets the damaged bytes with their
      CRC-32 recomputed (they reach its decoder): ``decode`` never raises, a truncated or
      emptied packet counts as lost, a corrupted or random one is lost or decodes to
      finite values within the quantizer's range, and what other packets hold is
      unchanged.
    """
    if isinstance(codec, str):
        from dfsim.registry import build

        label = f"codec {codec!r}"
        codec = build("codec", codec, "encoding", **(params or {}))
    else:
        label = f"codec {_describe(codec)}"
    cases = _codec_cases(
        DEFAULT_CODEC_LAYOUTS if layouts is None else layouts, n_images, seed, features
    )
    cfg = {
        "tolerance": tolerance,
        "exact_constants": exact_constants,
        "min_snr_db": float(min_snr_db),
        "seed": seed,
    }
    for prop in _selected(properties, CODEC_PROPERTIES, "codec"):
        _run(label, prop, _CODEC_CHECKS[prop], codec, cases, cfg)


# --------------------------------------------------------------------------- tasks
TASK_PROPERTIES = ("metrics", "predict", "evaluate", "label-free-best")
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _t_metrics(task, outputs, targets, cfg) -> None:
    from dfsim.experiment.results import IDENTITY_COLUMNS, pipeline_metrics
    from dfsim.stages import Metric

    metrics = task.metrics
    _expect(
        isinstance(metrics, (tuple, list)) and metrics,
        "metrics must be a non-empty tuple of dfsim.stages.Metric",
    )
    names = [m.name for m in metrics]
    dup = sorted({x for x in names if names.count(x) > 1})
    _expect(not dup, f"metric names must be unique, {', '.join(dup)} repeated")
    taken = set(IDENTITY_COLUMNS) | {m.name for m in pipeline_metrics()}
    for m in metrics:
        _expect(isinstance(m, Metric), f"{m!r} is not a dfsim.stages.Metric")
        _expect(
            isinstance(m.name, str) and _COLUMN_NAME.fullmatch(m.name),
            f"metric name {m.name!r} must be an identifier (it is a CSV column)",
        )
        _expect(
            m.name not in taken,
            f"metric {m.name!r} clashes with a column the pipeline writes itself",
        )
        _expect(isinstance(m.label, str) and m.label, f"metric {m.name!r}: empty label")
        _expect(isinstance(m.unit, str), f"metric {m.name!r}: unit must be a string")
        _expect(
            m.dtype in (int, float),
            f"metric {m.name!r}: dtype must be int or float, got {m.dtype!r}",
        )
        _expect(
            isinstance(m.scale, (int, float)) and math.isfinite(m.scale) and m.scale > 0,
            f"metric {m.name!r}: scale must be a finite number > 0, got {m.scale!r}",
        )
        _expect(
            m.higher_is_better in (True, False, None),
            f"metric {m.name!r}: higher_is_better must be True, False or None",
        )
        _expect(
            m.per == "method",
            f"metric {m.name!r}: a task's metrics differ between "
            f"completion methods (per='method'), got per={m.per!r}",
        )
    for role in ("primary", "label_free"):
        name = getattr(task, role, None)
        _expect(
            name in names,
            f"{role} {name!r} is not one of the declared metrics ({', '.join(names)})",
        )
        m = metrics[names.index(name)]
        _expect(
            m.higher_is_better is not None,
            f"{role} metric {name!r} must say which way is better (higher_is_better)",
        )


def _t_predict(task, outputs, targets, cfg) -> None:
    before = np.array(outputs, copy=True)
    a = task.predict(outputs)
    _expect(np.array_equal(np.asarray(outputs), before), "predict modified its input")
    b = task.predict(np.array(outputs, copy=True))
    _expect(np.array_equal(np.asarray(a), np.asarray(b)), "predict is not deterministic")
    if hasattr(a, "__len__"):
        _expect(
            len(a) == len(outputs), f"predict gave {len(a)} predictions for {len(outputs)} outputs"
        )


def _t_evaluate(task, outputs, targets, cfg) -> None:
    pred = task.predict(outputs)
    result = task.evaluate(pred, pred, targets)
    _expect(isinstance(result, dict), f"evaluate must return a dict, got {type(result).__name__}")
    declared = {m.name: m for m in task.metrics}
    missing = [k for k in declared if k not in result]
    _expect(not missing, f"evaluate did not return the declared metric(s) {', '.join(missing)}")
    extra = [k for k in result if k not in declared]
    _expect(
        not extra,
        f"evaluate returned undeclared metric(s) {', '.join(map(str, extra))} "
        "(declare them in metrics)",
    )
    for name, m in declared.items():
        v = result[name]
        _expect(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool),
            f"metric {name!r} is {type(v).__name__} {v!r}, not a number",
        )
        if m.dtype is int and math.isfinite(float(v)):
            _expect(float(v).is_integer(), f"metric {name!r} is declared int but is {v!r}")
    v = result[task.label_free]
    _expect(
        math.isfinite(float(v)),
        f"label_free metric {task.label_free!r} is {v!r} (it needs "
        "no labels, so it always has a value)",
    )


def _t_label_free_best(task, outputs, targets, cfg) -> None:
    name = task.label_free
    better = next(m for m in task.metrics if m.name == name).higher_is_better
    pred = task.predict(outputs)
    best = float(task.evaluate(pred, pred, targets)[name])
    rng = np.random.default_rng(cfg["seed"])
    out = np.asarray(outputs)
    altered = {
        "outputs of other images": out[rng.permutation(len(out))],
        "negated outputs": -out,
        "noisy outputs": out + rng.standard_normal(out.shape).astype(out.dtype) * out.std(),
    }
    worse = False
    for what, o in altered.items():
        v = float(task.evaluate(task.predict(o), pred, targets)[name])
        ok = v <= best if better else v >= best
        _expect(
            ok,
            f"{name} is {v:.6g} for predictions from {what} but {best:.6g} for "
            "predictions equal to the reference: the reference must score best",
        )
        worse = worse or v != best
    _expect(
        worse,
        f"{name} is {best:.6g} whatever the predictions: it does not measure "
        "agreement with the reference",
    )


_TASK_CHECKS = {
    "metrics": _t_metrics,
    "predict": _t_predict,
    "evaluate": _t_evaluate,
    "label-free-best": _t_label_free_best,
}


def check_task(
    task,
    outputs: np.ndarray,
    targets: Any,
    *,
    params: dict | None = None,
    seed: int = 0,
    properties: Iterable[str] | None = None,
    model=None,
    split: str | None = None,
) -> None:
    """Check a task (:class:`dfsim.stages.Task`): an instance, or a registered name (built
    with ``params``), on cloud ``outputs`` (e.g. logits N x classes, varied enough that
    other predictions score differently) and the dataset's ``targets``. A task with a
    ``bind`` method (a detector's post-processing, a reconstruction decoder) is first bound
    to the split model ``model`` at ``split`` (default: its ``default_split``), as a run
    binds it. The properties (:data:`TASK_PROPERTIES`):

    * ``metrics``: :class:`~dfsim.stages.Metric` declarations with unique identifier names
      that no pipeline column uses, a label, a string unit, dtype int or float, a finite
      positive scale and ``per='method'``; ``primary`` and ``label_free`` are declared and
      say which way is better;
    * ``predict``: deterministic, one prediction per output, input not modified;
    * ``evaluate``: returns exactly the declared metrics, as numbers (an int metric
      integral); the label-free one is finite;
    * ``label-free-best``: predictions equal to the reference score best on ``label_free``,
      and altered ones (other images', negated, noisy outputs) score differently.
    """
    if isinstance(task, str):
        from dfsim.registry import build

        label = f"task {task!r}"
        task = build("task", task, "task", **(params or {}))
    else:
        label = f"task {getattr(task, 'name', None) or _describe(task)!r}"
    chosen = _selected(properties, TASK_PROPERTIES, "task")
    bind = getattr(task, "bind", None)
    if bind is not None:
        if model is None:
            raise ValueError(
                f"{label} must be bound to a split model (it has a bind method): "
                "pass model= (and split=, default the model's default_split)"
            )
        split = split if split is not None else getattr(model, "default_split", None)
        _run(label, "bind", bind, model, split)
    cfg = {"seed": seed}
    for prop in chosen:
        _run(label, prop, _TASK_CHECKS[prop], task, outputs, targets, cfg)


# --------------------------------------------------------------------------- split models
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
