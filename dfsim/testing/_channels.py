"""The conformance check of a loss channel (:class:`dfsim.transport.channels.LossChannel`):
:func:`check_channel` and its properties (interface, output, reproducibility, stream
continuation, realised loss rate, per-trial channels)."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable

import numpy as np

from dfsim.testing._common import _describe, _expect, _run, _selected

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
