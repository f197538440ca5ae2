"""Packet loss channels.

``channel.sample(n, rng)`` returns ``n`` loss flags (True = lost) drawn only from the
``numpy.random.Generator`` passed in. For a stream that goes on over several calls,
``channel.stream(rng)`` gives a :class:`LossStream` whose ``take(n)`` continues where
the previous call stopped (a Gilbert-Elliott channel keeps its state).

* :class:`Bernoulli` (i.i.d.) loss with probability ``loss_rate``.
* :class:`GilbertElliott` two-state Markov channel: states Good/Bad, ``p = P(G->B)``,
  ``r = P(B->G)``, ``k = P(received | G)``, ``h = P(received | B)``; the simple Gilbert
  model is ``k = 1, h = 0``. It starts in its stationary distribution.
* :class:`Trace` replays recorded loss flags (one 0/1 per packet, 1 = lost) from a file:
  losses measured on a real network, or patterns saved by ``dfsim run --save-losses``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from dfsim.registry import FILE, Range, register


class ChannelParameterError(ValueError):
    """A channel parameter outside its valid range; the message states the range."""


def _check_prob(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ChannelParameterError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= v <= 1.0) or math.isnan(v):
        raise ChannelParameterError(f"{name} must be in [0, 1], got {value!r}")
    return v


class LossStream:
    """A stateful loss process: successive ``take(n)`` calls form one continuous stream."""

    def take(self, n: int) -> np.ndarray:  # pragma: no cover - interface
        """The next ``n`` loss flags of the stream (True = lost)."""
        raise NotImplementedError


class LossChannel:
    """Base class: a loss model with a theoretical loss rate and a sampler."""

    kind: str = "channel"

    @property
    def loss_rate(self) -> float:
        """The long-run fraction of lost packets."""
        raise NotImplementedError

    @property
    def mean_burst_length(self) -> float:
        """Expected length of a run of consecutive losses."""
        raise NotImplementedError

    def stream(self, rng: np.random.Generator) -> LossStream:
        """A loss stream drawing only from ``rng``."""
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` loss flags (True = lost) of a fresh stream."""
        return self.stream(rng).take(n)

    def for_trial(self, trial: int, packets_per_trial: int) -> LossChannel:
        """The channel as Monte Carlo trial ``trial`` sees it. Random channels are the same
        in every trial (the trial's generator makes the difference); a trace starts at a
        per-trial offset."""
        return self


@dataclass(frozen=True)
class Bernoulli(LossChannel):
    """Independent losses with probability ``loss_rate``."""

    p_loss: float
    kind = "iid"

    def __init__(self, loss_rate: float):
        object.__setattr__(self, "p_loss", _check_prob("loss_rate", loss_rate))

    @property
    def loss_rate(self) -> float:
        """The long-run fraction of lost packets."""
        return self.p_loss

    @property
    def mean_burst_length(self) -> float:
        """Expected length of a run of consecutive losses."""
        return math.inf if self.p_loss >= 1 else 1.0 / (1.0 - self.p_loss)

    def stream(self, rng: np.random.Generator) -> LossStream:
        """A loss stream drawing only from ``rng``."""
        return _BernoulliStream(self.p_loss, rng)

    def __repr__(self) -> str:
        return f"Bernoulli(loss_rate={self.p_loss:g})"


class _BernoulliStream(LossStream):
    def __init__(self, p: float, rng: np.random.Generator):
        self.p, self.rng = p, rng

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` loss flags of the stream (True = lost)."""
        return self.rng.random(n) < self.p


@dataclass(frozen=True)
class GilbertElliott(LossChannel):
    """Gilbert-Elliott channel (see module docstring for the parameters)."""

    p: float
    r: float
    k: float = 1.0
    h: float = 0.0
    kind = "gilbert-elliott"

    def __post_init__(self):
        for name in ("p", "r", "k", "h"):
            object.__setattr__(self, name, _check_prob(name, getattr(self, name)))
        if self.p == 0 and self.r == 0:
            raise ChannelParameterError(
                "p and r cannot both be 0: the chain has no stationary distribution "
                "(need p + r > 0)"
            )

    @classmethod
    def from_loss_burst(cls, loss_rate: float, burst_length: float) -> GilbertElliott:
        """Simple Gilbert model (k=1, h=0) with a target loss rate and mean burst length.

        ``r = 1/L`` and ``p = P r / (1 - P)``: valid for ``0 <= P < 1`` and
        ``L >= max(1, P / (1 - P))`` (the second bound keeps ``p <= 1``). i.i.d. loss is
        the case ``L = 1 / (1 - P)``; ``L = 1`` forbids consecutive losses.
        """
        P = _check_prob("loss_rate", loss_rate)
        if P >= 1:
            raise ChannelParameterError(
                "loss_rate must be < 1 for a Gilbert-Elliott channel given by loss and burst "
                "length, got 1"
            )
        try:
            L = float(burst_length)
        except (TypeError, ValueError):
            raise ChannelParameterError(
                f"burst_length must be a number >= 1, got {burst_length!r}"
            ) from None
        lower = max(1.0, P / (1.0 - P))
        if not (L >= lower) or math.isinf(L):
            if P / (1.0 - P) > 1.0 and L >= 1.0:
                raise ChannelParameterError(
                    f"burst_length {L:g} is impossible with loss_rate {P:g} in the simple "
                    f"Gilbert model: it needs burst_length >= P/(1-P) = {lower:.4g} "
                    f"(else P(G->B) = {P / (1 - P) / L:.3g} > 1)"
                )
            raise ChannelParameterError(
                f"burst_length must be a finite number >= {lower:g}, got {burst_length!r}"
            )
        r = 1.0 / L
        return cls(p=P * r / (1.0 - P), r=r)

    @property
    def bad_probability(self) -> float:
        """Stationary probability of the Bad state, ``p / (p + r)``."""
        return self.p / (self.p + self.r)

    @property
    def loss_rate(self) -> float:
        """The long-run fraction of lost packets."""
        pb = self.bad_probability
        return (1 - pb) * (1 - self.k) + pb * (1 - self.h)

    @property
    def mean_burst_length(self) -> float:
        """Mean run of consecutive losses; ``1/r`` in the simple Gilbert model."""
        if self.k == 1.0 and self.h == 0.0:
            return math.inf if self.r == 0 else 1.0 / self.r
        # General case: the loss indicator is a hidden Markov chain; P(next lost | lost)
        # gives the run-length distribution only approximately, so report that estimate.
        pb = self.bad_probability
        lg, lb = 1 - self.k, 1 - self.h
        p_loss = (1 - pb) * lg + pb * lb
        if p_loss == 0:
            return 0.0
        both = (1 - pb) * lg * ((1 - self.p) * lg + self.p * lb) + pb * lb * (
            self.r * lg + (1 - self.r) * lb
        )
        stay = both / p_loss
        return math.inf if stay >= 1 else 1.0 / (1.0 - stay)

    def stream(self, rng: np.random.Generator) -> LossStream:
        """A loss stream drawing only from ``rng``."""
        return _GilbertElliottStream(self, rng)

    def __repr__(self) -> str:
        return f"GilbertElliott(p={self.p:.6g}, r={self.r:.6g}, k={self.k:g}, h={self.h:g})"


class _GilbertElliottStream(LossStream):
    """Samples the state sequence run by run (geometric sojourn times), vectorised.

    Future runs are drawn in batches and kept until used, so consecutive ``take``
    calls continue one Markov chain exactly.
    """

    _FOREVER = 1 << 40  # sojourn when the leaving probability is 0

    def __init__(self, ch: GilbertElliott, rng: np.random.Generator):
        self.ch, self.rng = ch, rng
        self.bad = bool(rng.random() < ch.bad_probability)  # stationary start
        self.left = int(self._sojourns(self.bad, 1)[0])  # packets left in the current run
        self.future = np.empty(0, np.int64)  # next runs, alternating, first one in state (not bad)

    def _sojourns(self, bad: bool, size: int) -> np.ndarray:
        leave = self.ch.r if bad else self.ch.p
        if leave == 0:
            return np.full(size, self._FOREVER, np.int64)
        return np.minimum(self.rng.geometric(leave, size), self._FOREVER)

    def _draw_more(self, packets: int) -> None:
        ch = self.ch
        mean_cycle = (1 / ch.p if ch.p else self._FOREVER) + (1 / ch.r if ch.r else self._FOREVER)
        pairs = int(packets / mean_cycle * 1.1) + 8
        first_bad = (not self.bad) if len(self.future) % 2 == 0 else self.bad
        runs = np.empty(2 * pairs, np.int64)
        runs[0::2] = self._sojourns(first_bad, pairs)
        runs[1::2] = self._sojourns(not first_bad, pairs)
        self.future = np.concatenate([self.future, runs])

    def _states(self, n: int) -> np.ndarray:
        if n <= self.left:
            self.left -= n
            return np.full(n, self.bad)
        while self.left + int(self.future.sum()) < n:
            self._draw_more(n - self.left - int(self.future.sum()))
        ends = self.left + np.cumsum(self.future)
        j = int(np.searchsorted(ends, n, side="left"))  # future run j holds packet n-1
        lens = np.concatenate([[self.left], self.future[: j + 1]])
        used = n - (int(ends[j - 1]) if j > 0 else self.left)
        lens[-1] = used
        states = np.arange(j + 2) % 2 == 1  # True where the run is in the other state
        out = np.repeat(states if not self.bad else ~states, lens)
        self.bad = bool(states[-1]) != self.bad
        self.left = int(self.future[j]) - used
        self.future = self.future[j + 1 :]
        return out

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` loss flags of the stream (True = lost)."""
        bad = self._states(int(n))
        ch = self.ch
        if ch.k == 1.0 and ch.h == 0.0:
            return bad
        u = self.rng.random(len(bad))
        return np.where(bad, u >= ch.h, u >= ch.k)


class TraceError(ValueError):
    """A loss trace file that cannot be used; the message names the file."""


def read_trace(path) -> np.ndarray:
    """Loss flags from ``path``: ``.npy`` (any 1-D numeric or bool array) or text/CSV with
    one 0/1 per packet (separated by newlines, commas or spaces; ``#`` starts a comment)."""
    from pathlib import Path

    p = Path(path)
    try:
        if p.suffix == ".npy":
            a = np.load(p, allow_pickle=False)
            if a.ndim != 1:
                raise TraceError(
                    f"{p}: expected a 1-D array of 0/1 loss flags, got shape {a.shape}"
                )
        else:
            tokens = []
            for line in p.read_text().splitlines():
                line = line.split("#", 1)[0]
                tokens += [t for t in line.replace(",", " ").split() if t]
            bad = next((t for t in tokens if t not in ("0", "1")), None)
            if bad is not None:
                raise TraceError(f"{p}: loss flags must be 0 or 1, found {bad!r}")
            a = np.array([t == "1" for t in tokens], dtype=bool)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, TraceError):
            raise
        raise TraceError(f"{p}: cannot read loss trace: {exc}") from None
    if a.dtype != bool:
        if not np.isin(a, (0, 1)).all():
            raise TraceError(f"{p}: loss flags must be 0 or 1")
        a = a.astype(bool)
    if a.size == 0:
        raise TraceError(f"{p}: the loss trace is empty")
    return a


@dataclass(frozen=True, eq=False)
class Trace(LossChannel):
    """Recorded loss flags replayed in order, looping when the run needs more packets.

    Trial ``t`` starts at packet ``t * trial_offset`` of the trace (modulo its length);
    with ``trial_offset=None`` each trial continues where the previous one ended, so
    consecutive trials see consecutive, disjoint parts of a long trace.
    """

    flags: np.ndarray
    name: str = "trace"
    trial_offset: int | None = None
    start: int = 0
    kind = "trace"

    @classmethod
    def from_file(cls, path, trial_offset: int | None = None) -> Trace:
        """A trace read from ``path`` (see :func:`read_trace`)."""
        return cls(read_trace(path), str(path), trial_offset)

    @property
    def loss_rate(self) -> float:
        """The long-run fraction of lost packets."""
        return float(self.flags.mean())

    @property
    def mean_burst_length(self) -> float:
        """Expected length of a run of consecutive losses."""
        f = self.flags.astype(np.int8)
        starts = int(np.count_nonzero(np.diff(f) == 1)) + int(f[0])
        return float(f.sum() / starts) if starts else 0.0

    def setting_key(self) -> str:
        """Identifies the setting (seeds and duplicate checks): the file and the offset."""
        return f"trace|file={self.name}|trial_offset={self.trial_offset}"

    def for_trial(self, trial: int, packets_per_trial: int) -> Trace:
        """Trial ``trial`` starts at its own offset of the trace."""
        step = packets_per_trial if self.trial_offset is None else self.trial_offset
        return Trace(self.flags, self.name, self.trial_offset, (trial * step) % len(self.flags))

    def stream(self, rng: np.random.Generator | None = None) -> LossStream:
        """A loss stream drawing only from ``rng``."""
        return _TraceStream(self.flags, self.start)

    def __repr__(self) -> str:
        offset = "consecutive" if self.trial_offset is None else self.trial_offset
        return f"Trace({self.name!r}, {len(self.flags)} packets, trial_offset={offset})"


class _TraceStream(LossStream):
    def __init__(self, flags: np.ndarray, start: int):
        self.flags, self.pos = flags, start

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` loss flags of the stream (True = lost)."""
        idx = (self.pos + np.arange(n)) % len(self.flags)
        self.pos = (self.pos + n) % len(self.flags)
        return self.flags[idx]


# --------------------------------------------------------------------------- registration
# Scenario entries name these (``channels: [{kind: NAME, <parameter>s: [...]}]``); each
# parameter may be given as one value or as a list under its plural name (a sweep).
@register("channel", "iid")
def iid(loss_rate: Annotated[float, Range(0, 1)]) -> Bernoulli:
    """Independent losses with probability ``loss_rate`` (mean burst 1/(1 - loss_rate))."""
    return Bernoulli(loss_rate)


@register("channel", "gilbert-elliott")
def gilbert_elliott(
    loss_rate: Annotated[float, Range(0, 1)], burst_length: Annotated[float, Range(1)]
) -> GilbertElliott:
    """The simple Gilbert model with this loss rate and mean burst length."""
    return GilbertElliott.from_loss_burst(loss_rate, burst_length)


@register("channel", "trace")
def trace(
    file: Annotated[str, FILE], trial_offset: Annotated[int, Range(0)] | None = None
) -> Trace:
    """Recorded loss flags replayed from ``file``; trial t starts at t x ``trial_offset``
    packets (default: where trial t - 1 ended)."""
    return Trace.from_file(file, trial_offset)
