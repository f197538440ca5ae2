"""Error-control strategies: what the transport does about lost packets besides
completion. Registered by name with their parameters; the SimPy network
(:mod:`dfsim.transport.network`) carries them out.

* ``arq``: NACK-based retransmission (``max_retries``, ``timeout_ms``);
* ``fec``: systematic Reed-Solomon parity, ``m`` packets per ``k`` data packets.

A scenario's ``error_control`` is one strategy set or a list of them (a grid dimension):
``{name: none}``, ``{arq: {...}}``, ``{fec: {...}}``, both, with an optional ``label``.
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


def parse_strategy(raw, where: str) -> ErrorControl:
    """One ``error_control`` entry -> :class:`ErrorControl` (one-line errors at ``where``);
    a bare name (``none``, ``arq``, ``fec+arq``) means those strategies with defaults."""
    strategies = names("error_control")
    raw = {"name": raw} if isinstance(raw, str) else raw
    check_keys(raw, where, ["name", "label", *strategies])
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
    parts = ([f"fec({built['fec'].k},{built['fec'].m})"] if "fec" in built else []) + (
        [f"arq({built['arq'].max_retries})"] if "arq" in built else []
    )
    if "label" in raw:
        label = raw["label"]
        if not isinstance(label, str) or not label:
            raise UserError(f"{where}.label: expected a non-empty string, got {label!r}")
    else:
        label = "+".join(parts) or "none"
    return ErrorControl(label, built.get("arq"), built.get("fec"))
