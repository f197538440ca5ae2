"""Error-control strategies: what the transport does about lost packets besides
completion. Registered by name with their parameters; the SimPy network
(:mod:`dfsim.transport.network`) carries them out.

* ``arq``: NACK-based retransmission (``max_retries``, ``timeout_ms``);
* ``fec``: systematic Reed-Solomon parity, ``m`` packets per ``k`` data packets.

A scenario's ``error_control`` is one strategy set or a list of them (a grid dimension):
``{name: none}``, ``{arq: {...}}``, ``{fec: {...}}``, both, with an optional ``label``.
Where several tensors cross the cut, ``streams`` gives a tensor (by index) a strategy set
of its own, which replaces the entry's for that tensor's packets: ``{streams: {1: {fec:
{k: 8, m: 4}}}}`` protects tensor 1 only; each protected stream's FEC groups are its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from dfsim.errors import UserError
from dfsim.registry import Range, check_keys, check_params, entry, names, register, type_name
from dfsim.transport.settings import Arq, Fec


@register("error_control", "arq")
def arq(
    max_retries: Annotated[int, Range(1, 100)] = 2, timeout_ms: Annotated[float, Range(0)] = 10.0
) -> Arq:
    """Retransmit a packet at most ``max_retries`` times, NACKed ``timeout_ms`` after the
    last packet of a round was due, only while it can still meet the deadline."""
    return Arq(max_retries=max_retries, timeout_ms=timeout_ms)


@register("error_control", "fec")
def fec(k: Annotated[int, Range(1, 255)] = 8, m: Annotated[int, Range(1, 255)] = 2) -> Fec:
    """``m`` parity packets after every ``k`` data packets of an image (k + m <= 256)."""
    if k + m > 256:
        raise ValueError(f"k + m must be <= 256 (GF(2^8) Reed-Solomon), got {k} + {m}")
    return Fec(k=k, m=m)


@dataclass(frozen=True)
class ErrorControl:
    """One packet-loss protection setting: none, ARQ, FEC, or both, with its label."""

    label: str = "none"
    arq: Arq | None = None
    fec: Fec | None = None
    # (tensor index, its own setting) for the tensors whose setting differs from this one's
    streams: tuple[tuple[int, ErrorControl], ...] = ()

    def per_stream(self, n: int) -> tuple[tuple, tuple] | None:
        """The ARQ and FEC settings of each of ``n`` streams (None without ``streams``:
        one setting for all the data packets of an image)."""
        if not self.streams:
            return None
        own = dict(self.streams)
        every = [own.get(i, self) for i in range(n)]
        return tuple(e.arq for e in every), tuple(e.fec for e in every)


def _strategy_label(built: dict) -> str:
    parts = ([f"fec({built['fec'].k},{built['fec'].m})"] if "fec" in built else []) + (
        [f"arq({built['arq'].max_retries})"] if "arq" in built else []
    )
    return "+".join(parts) or "none"


def _parse_streams(raw, where: str) -> tuple[tuple[int, ErrorControl], ...]:
    """``streams``: tensor index -> strategy set (a mapping of a bare name, no label)."""
    if not isinstance(raw, dict) or not raw:
        raise UserError(
            f"{where}: expected a mapping of tensor index to a strategy set, got {raw!r}"
        )
    out = []
    for given, value in raw.items():
        key = int(given) if isinstance(given, str) and given.isdigit() else given
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            raise UserError(f"{where}: {given!r} is not a tensor index (0, 1, ...)")
        if isinstance(value, dict) and ("label" in value or "streams" in value):
            bad = "label" if "label" in value else "streams"
            raise UserError(f"{where}.{key}.{bad}: not allowed in a tensor's own setting")
        out.append((key, parse_strategy(value, f"{where}.{key}")))
    return tuple(sorted(out, key=lambda kv: kv[0]))


def parse_strategy(raw, where: str) -> ErrorControl:
    """One ``error_control`` entry -> :class:`ErrorControl` (one-line errors at ``where``);
    a bare name (``none``, ``arq``, ``fec+arq``) means those strategies with defaults."""
    strategies = names("error_control")
    raw = {"name": raw} if isinstance(raw, str) else raw
    check_keys(raw, where, ["name", "label", "streams", *strategies])
    name = raw.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise UserError(f"{where}.name: expected a string, got {type_name(name)} {name!r}")
        enabled = [] if name == "none" else name.split("+")
        choices = ["none", *strategies, "+".join(reversed(strategies))]
        if any(n not in strategies for n in enabled):
            raise UserError(f"{where}.name: {name!r} is not one of {', '.join(choices)}")
        if name == "none" and any(raw.get(s) is not None for s in strategies):
            raise UserError(f"{where}.name: 'none' cannot have {' or '.join(strategies)} settings")
        extra = [s for s in strategies if raw.get(s) is not None and s not in enabled]
        if extra:
            raise UserError(
                f"{where}.{extra[0]}: not enabled by name {name!r} (drop the name, "
                f"or name {'+'.join([*enabled, *extra])})"
            )
    else:
        enabled = []
    built = {}
    for s in strategies:
        if raw.get(s) is not None or s in enabled:
            e = entry("error_control", s)
            params = check_params(e.params, raw.get(s) or {}, f"{where}.{s}", e.what)
            built[s] = e.build(f"{where}.{s}", **params)
    streams = _parse_streams(raw["streams"], f"{where}.streams") if "streams" in raw else ()
    if "label" in raw:
        label = raw["label"]
        if not isinstance(label, str) or not label:
            raise UserError(f"{where}.label: expected a non-empty string, got {label!r}")
    else:
        own = [f"s{i}:{e.label}" for i, e in streams]
        label = " ".join(([_strategy_label(built)] if built or not own else []) + own)
    return ErrorControl(label, built.get("arq"), built.get("fec"), streams)
