"""The network's parameters, declared once.

The SimPy model (:mod:`dfsim.transport.network`) is configured by the dataclasses here:
:class:`Link` (the uplink), :class:`Traffic` (who sends when), :class:`SideInfo` (where
the codec's side information travels and what its loss costs), :class:`Arq` and
:class:`Fec` (error control, chosen per config: :mod:`dfsim.transport.error_control`).
Each field's annotation declares its type and its range or choices; a dataclass checks
its fields against them when it is made (``ValueError``).

A scenario's ``network`` section is read straight into these dataclasses
(:class:`NetworkSettings`): the same declarations check its keys, with one-line errors
naming the key (``network.fps: -3 is out of range (must be > 0)``).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Literal, get_args, get_origin

from dfsim.registry import Param, Range, dataclass_params
from dfsim.transport.jitter import Jitter

HEADER_BYTES = 40  # IPv4 (20) + UDP (8) + RTP-like sequence header (12)

Positive = Annotated[float, Range(0, lo_open=True)]
NonNegative = Annotated[float, Range(0)]
Placement = Literal["first-packet", "own-packet"]
OnLoss = Literal["assume-delivered", "drop-image", "previous"]


@functools.cache
def declared(cls) -> dict[str, Param]:
    """The fields of dataclass ``cls`` as declared parameters (type, range, default)."""
    return dataclass_params(cls)


def check_declared(obj) -> None:
    """A ``ValueError`` for the first field of dataclass ``obj`` outside its declared range
    or choices (``None`` passes: a field that may be None says so in its type)."""
    for name, p in declared(type(obj)).items():
        value = getattr(obj, name)
        if value is None:
            continue
        if p.range is not None and not p.range.contains(float(value)):
            raise ValueError(f"{name}: {value!r} is out of range (must be {p.range.text(False)})")
        if get_origin(p.type) is Literal and value not in get_args(p.type):
            choices = ", ".join(get_args(p.type))
            raise ValueError(f"{name}: {value!r} is not one of {choices}")


@dataclass(frozen=True)
class Link:
    """The uplink: bandwidth, propagation delay, per-packet header, transmit buffer
    (``None``: unlimited), optional jitter, and the largest packet it carries."""

    bandwidth_bps: Positive = 10e6
    propagation_ms: NonNegative = 5.0
    header_bytes: Annotated[int, Range(0, 65535)] = HEADER_BYTES
    buffer_bytes: Annotated[int, Range(1)] | None = None  # drop-tail transmit buffer
    jitter: Jitter | None = None
    # header included; the packetizer's and the codecs' packets must fit (the SimPy model
    # sends whatever it is given)
    mtu_bytes: Annotated[int, Range(68, 1 << 20)] = 1500

    def __post_init__(self):
        check_declared(self)


@dataclass(frozen=True)
class Traffic:
    """Who sends when: ``devices`` edge devices share the uplink; image i belongs to
    device ``i % devices``. ``arrivals`` is ``periodic`` (device d captures its j-th image
    at ``j/fps + d/(devices*fps)``) or ``poisson`` (rate ``fps`` per device); without
    ``fps`` every image is captured at t=0."""

    fps: Positive | None = None
    arrivals: Literal["periodic", "poisson"] = "periodic"
    devices: Annotated[int, Range(1, 100_000)] = 1
    edge_ms: NonNegative = 0.0  # edge sub-model time per image

    def __post_init__(self):
        check_declared(self)
        if self.arrivals == "poisson" and self.fps is None:
            raise ValueError("poisson arrivals need a rate (fps)")


@dataclass(frozen=True)
class Arq:
    """Retransmission on NACK: at most ``max_retries`` retransmissions of a packet, the
    NACK sent ``timeout_ms`` after the last packet of a round was due."""

    max_retries: int = 2
    timeout_ms: float = 10.0


@dataclass(frozen=True)
class Fec:
    """Packet-level FEC: ``m`` parity packets after each group of ``k`` data packets."""

    k: int  # data packets per group (the last group of an image may be shorter)
    m: int  # parity packets per group


@dataclass(frozen=True)
class SideInfo:
    """Where the quantizer's side information travels and what happens when it is lost.

    ``placement``: ``first-packet`` (in the header of the image's first data packet) or
    ``own-packet`` (a packet of its own, sent first). ``on_loss``: ``assume-delivered``
    (a reliable side channel), ``drop-image`` (nothing of the image can be decoded: every
    data packet counts as lost) or ``previous`` (decode with the last received image's
    min/max). ``bits``: the side information of a whole image, when the caller of
    :func:`~dfsim.transport.network.simulate` gives no size per image (a run always does:
    its codec's); not a scenario key."""

    placement: Placement = "first-packet"
    on_loss: OnLoss = "assume-delivered"
    bits: int = 64

    PLACEMENTS = get_args(Placement)
    POLICIES = get_args(OnLoss)

    def __post_init__(self):
        check_declared(self)


@dataclass(frozen=True)
class NetworkSettings:
    """A scenario's ``network`` section (docs/guide/network.md), held in the
    transport's own dataclasses: ``link`` and ``traffic`` hold their keys (:data:`KEYS`
    says which), the other fields are the section's own. Every key also reads flat, as
    the scenario writes it: ``settings.fps`` is ``settings.traffic.fps``,
    ``settings.bandwidth_mbps`` the link's bandwidth in Mbit/s."""

    link: Link = field(default_factory=Link)
    traffic: Traffic = field(default_factory=lambda: Traffic(fps=30.0))
    deadline_ms: Positive | None = None
    side_info: SideInfo = field(default_factory=SideInfo)  # its placement and on_loss
    cloud_ms: NonNegative = 0.0  # the cloud's service time per image (end-to-end latency)
    completion_time: Literal["none", "measured"] = "none"  # add completion's to cloud_ms

    # The section's keys, in the order the guide lists them: the part that declares each
    # (``""``: the section itself) and the field there.
    KEYS = {
        "bandwidth_mbps": ("link", "bandwidth_bps"),
        "propagation_ms": ("link", "propagation_ms"),
        "header_bytes": ("link", "header_bytes"),
        "fps": ("traffic", "fps"),
        "mtu_bytes": ("link", "mtu_bytes"),
        "buffer_bytes": ("link", "buffer_bytes"),
        "jitter": ("link", "jitter"),
        "deadline_ms": ("", "deadline_ms"),
        "devices": ("traffic", "devices"),
        "arrivals": ("traffic", "arrivals"),
        "edge_ms": ("traffic", "edge_ms"),
        "cloud_ms": ("", "cloud_ms"),
        "completion_time": ("", "completion_time"),
        "side_info": ("", "side_info"),
    }
    # A key's unit in its field's (Mbit/s -> bit/s); read back flat, the field divided by
    # the scale gives the decimal value a scenario wrote.
    SCALE = {"bandwidth_mbps": 1e6}
    SIDE_INFO_KEYS = ("placement", "on_loss")  # the scenario's keys of side_info

    @classmethod
    def param(cls, key: str) -> Param:
        """The declaration a key is checked against: its field's, under the key's name and
        with the section's default."""
        part, name = cls.KEYS[key]
        owner = {"link": Link, "traffic": Traffic, "": cls}[part]
        return replace(declared(owner)[name], name=key, default=getattr(cls(), key))

    @classmethod
    def from_keys(cls, **values) -> NetworkSettings:
        """The settings of a section given as (checked) key values; a key not given keeps
        the section's default."""
        default = cls()
        parts: dict[str, dict] = {"link": {}, "traffic": {}, "": {}}
        for key, value in values.items():
            part, name = cls.KEYS[key]
            parts[part][name] = value * cls.SCALE[key] if key in cls.SCALE else value
        return replace(
            default,
            link=replace(default.link, **parts["link"]),
            traffic=replace(default.traffic, **parts["traffic"]),
            **parts[""],
        )

    def __getattr__(self, key: str):
        """A key of the section, read flat (only called for names that are not fields)."""
        if key not in NetworkSettings.KEYS or NetworkSettings.KEYS[key][0] == "":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")
        part, name = NetworkSettings.KEYS[key]
        value = getattr(getattr(self, part), name)
        return value / NetworkSettings.SCALE[key] if key in NetworkSettings.SCALE else value

    def section(self) -> dict:
        """The section with every default filled in, as the scenario writes it (manifest)."""
        out = {key: getattr(self, key) for key in self.KEYS}
        out["jitter"] = None if self.jitter is None else asdict(self.jitter)
        out["side_info"] = {k: getattr(self.side_info, k) for k in self.SIDE_INFO_KEYS}
        return out
