"""The network as a SimPy discrete-event model: edge devices -> shared uplink -> loss
channel -> receiver, with optional drop-tail buffer, jitter, deadline, ARQ and FEC.

Processes read like the protocol they model:

* each **device** captures its images (periodic at ``fps`` with devices evenly phased,
  Poisson at rate ``fps``, or all at t=0 when ``fps`` is None), runs its edge sub-model
  for ``edge_ms`` per image (one image at a time), and hands the image's packets to the
  uplink's transmit buffer;
* the **buffer** is drop-tail: a packet that does not fit in ``buffer_bytes`` (counting
  every byte not yet serialised) is dropped (*congestion* loss);
* the **link** serialises packets first-in first-out at ``bandwidth`` bit/s, then each
  packet propagates for ``propagation_ms`` plus an optional random **jitter**; the loss
  channel decides, packet by packet in the order packets go on the wire, which ones never
  arrive (*channel* loss; one continuous loss stream, so a burst can span images);
* the **receiver** collects what arrives. A packet arriving later than ``deadline_ms``
  after its image's capture is useless (*deadline* loss). With **FEC**, each group of up to
  ``k`` data packets of an image is followed by ``m`` parity packets (systematic MDS code,
  :mod:`dfsim.fec`): any ``k'`` of the group's ``k' + m`` packets recover it. With **ARQ**,
  ``timeout_ms`` after the last packet of a round was due the receiver NACKs what is still
  missing (and not recoverable); the NACK reaches the sender one propagation delay later,
  which retransmits each packet at most ``max_retries`` times, and only when its
  retransmission can still arrive before the deadline at the link's current backlog.

Events are per image burst, not per packet: within a burst the departure and arrival
times are a vectorised cumulative sum and the loss flags one vectorised draw, so the
per-packet cost is a few array operations. Random arrivals and jitter use their own
generator (``aux_rng``), so the loss stream is the same with or without them.

With the defaults (one device, no buffer limit, no jitter, deadline, ARQ or FEC, side
information in the first packet) the model is exactly the foundation's: same loss
flags, same latencies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy
from numba import njit

from dfsim.channels import LossChannel, LossStream

HEADER_BYTES = 40  # IPv4 (20) + UDP (8) + RTP-like sequence header (12)

# Why a data packet is missing at the receiver (Transmission.cause).
DELIVERED, CHANNEL, CONGESTION, DEADLINE = 0, 1, 2, 3
# Kinds of packet on the wire.
SIDE, DATA, PARITY = 0, 1, 2


@dataclass(frozen=True)
class Jitter:
    """Extra one-way delay per packet, in ms: ``uniform`` on [a, b], ``exponential`` with
    mean a, or ``normal`` with mean a and standard deviation b (negative draws -> 0)."""

    dist: str
    a: float
    b: float = 0.0

    DISTS = ("uniform", "exponential", "normal")

    def __post_init__(self):
        if self.dist not in self.DISTS:
            raise ValueError(f"jitter distribution must be one of {', '.join(self.DISTS)}, got {self.dist!r}")
        if self.a < 0 or self.b < 0 or (self.dist == "uniform" and self.b < self.a):
            raise ValueError(f"invalid {self.dist} jitter parameters ({self.a}, {self.b})")

    def sample_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.dist == "uniform":
            ms = rng.uniform(self.a, self.b, n)
        elif self.dist == "exponential":
            ms = rng.exponential(self.a, n)
        else:
            ms = np.maximum(rng.normal(self.a, self.b, n), 0.0)
        return ms / 1e3


@dataclass(frozen=True)
class Link:
    bandwidth_bps: float = 10e6
    propagation_ms: float = 5.0
    header_bytes: int = HEADER_BYTES
    buffer_bytes: int | None = None  # drop-tail transmit buffer; None = unlimited
    jitter: Jitter | None = None

    def __post_init__(self):
        if not self.bandwidth_bps > 0:
            raise ValueError(f"bandwidth must be > 0 bit/s, got {self.bandwidth_bps}")
        if self.propagation_ms < 0:
            raise ValueError(f"propagation delay must be >= 0 ms, got {self.propagation_ms}")
        if self.header_bytes < 0:
            raise ValueError(f"header_bytes must be >= 0, got {self.header_bytes}")
        if self.buffer_bytes is not None and self.buffer_bytes <= 0:
            raise ValueError(f"buffer_bytes must be > 0 or None, got {self.buffer_bytes}")


@dataclass(frozen=True)
class Traffic:
    """Who sends when: ``devices`` edge devices share the uplink; image i belongs to
    device ``i % devices``. ``arrivals`` is ``periodic`` (device d captures its j-th image
    at ``j/fps + d/(devices*fps)``) or ``poisson`` (rate ``fps`` per device)."""

    fps: float | None = None
    arrivals: str = "periodic"
    devices: int = 1
    edge_ms: float = 0.0  # edge sub-model time per image

    def __post_init__(self):
        if self.arrivals not in ("periodic", "poisson"):
            raise ValueError(f"arrivals must be 'periodic' or 'poisson', got {self.arrivals!r}")
        if self.arrivals == "poisson" and self.fps is None:
            raise ValueError("poisson arrivals need a rate (fps)")
        if self.devices < 1 or self.edge_ms < 0:
            raise ValueError("devices must be >= 1 and edge_ms >= 0")


@dataclass(frozen=True)
class Arq:
    max_retries: int = 2
    timeout_ms: float = 10.0


@dataclass(frozen=True)
class Fec:
    k: int  # data packets per group (the last group of an image may be shorter)
    m: int  # parity packets per group


@dataclass(frozen=True)
class SideInfo:
    """Where the quantizer's side information travels and what happens when it is lost.

    ``placement``: ``first-packet`` (in the header of the image's first data packet) or
    ``own-packet`` (a packet of its own, sent first). ``on_loss``: ``assume-delivered``
    (the foundation's assumption: a reliable side channel), ``drop-image`` (nothing of the
    image can be decoded: every data packet counts as lost) or ``previous`` (decode with the
    last received image's min/max)."""

    placement: str = "first-packet"
    on_loss: str = "assume-delivered"
    bits: int = 64

    PLACEMENTS = ("first-packet", "own-packet")
    POLICIES = ("assume-delivered", "drop-image", "previous")


@dataclass
class Transmission:
    """What the receiver saw. Data packets are indexed image-major in send order
    (image i's are ``[i*K, (i+1)*K)``), like the packetizer's stream."""

    lost: np.ndarray  # n*K bool: data packets missing at the decoder (after FEC/ARQ, deadline)
    cause: np.ndarray  # n*K int8: DELIVERED, CHANNEL, CONGESTION or DEADLINE
    arrival_s: np.ndarray  # n*K: when the data packet's last attempt reached (or would have reached) the cloud
    available_s: np.ndarray  # n*K: when the decoder had it (received or FEC-recovered in time; inf: never)
    capture_s: np.ndarray  # N
    delivered_s: np.ndarray  # N: when the receiver has all it will get of the image
    device: np.ndarray  # N: the device that sent the image
    side_info_lost: np.ndarray  # N bool
    bits_sent: int  # every packet put on the wire, retransmissions and parity included
    packets_sent: int
    retransmissions: int

    @property
    def latency_ms(self) -> np.ndarray:
        return (self.delivered_s - self.capture_s) * 1e3

    def loss_by_cause(self) -> dict[str, float]:
        n = max(len(self.cause), 1)
        return {name: float(np.count_nonzero(self.cause == code)) / n
                for name, code in (("channel", CHANNEL), ("congestion", CONGESTION), ("deadline", DEADLINE))}


def packet_bits(payload_bits: np.ndarray, link: Link, side_info_bits: int) -> np.ndarray:
    """On-the-wire bits of each data packet of one image: header + payload; side info
    rides in packet 0 (the ``first-packet`` placement)."""
    bits = payload_bits.astype(np.int64) + 8 * link.header_bytes
    bits[0] += side_info_bits
    return bits


@dataclass(frozen=True)
class WireLayout:
    """The packets of one image in the order they go on the wire."""

    kind: np.ndarray  # SIDE, DATA or PARITY
    data_index: np.ndarray  # index among the image's data packets (-1 otherwise)
    group: np.ndarray  # FEC group (-1: none)
    bits: np.ndarray  # on-the-wire size
    group_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # data packets per group

    @classmethod
    def build(cls, data_bits: np.ndarray, header_bytes: int, fec: Fec | None, side: SideInfo) -> "WireLayout":
        """``data_bits``: each data packet's size with its header (side info not included)."""
        k_data = len(data_bits)
        kind, index, group, bits = [], [], [], []
        if side.placement == "own-packet":
            kind.append(SIDE), index.append(-1), group.append(-1), bits.append(8 * header_bytes + side.bits)
        sizes = []
        step = fec.k if fec else k_data
        for g, start in enumerate(range(0, k_data, step)):
            idx = list(range(start, min(start + step, k_data)))
            sizes.append(len(idx))
            for j in idx:
                extra = side.bits if (j == 0 and side.placement == "first-packet") else 0
                kind.append(DATA), index.append(j), group.append(g if fec else -1)
                bits.append(int(data_bits[j]) + extra)
            if fec:  # parity blocks are as long as the group's longest payload
                parity = max(int(data_bits[j]) for j in idx)
                for _ in range(fec.m):
                    kind.append(PARITY), index.append(-1), group.append(g), bits.append(parity)
        return cls(np.array(kind, np.int8), np.array(index, np.int64), np.array(group, np.int64),
                   np.array(bits, np.int64), np.array(sizes if fec else [], np.int64))


@njit(cache=True)
def _drop_tail(bits: np.ndarray, backlog_bits: float, capacity_bits: float) -> np.ndarray:
    """Packets (in order) admitted to a drop-tail buffer holding ``backlog_bits``."""
    admitted = np.zeros(len(bits), np.bool_)
    for j in range(len(bits)):
        if backlog_bits + bits[j] <= capacity_bits:
            admitted[j] = True
            backlog_bits += bits[j]
    return admitted


class _WireLoss:
    """Channel loss flags assigned to packets in the order they go on the wire. The first
    draw covers one transmission of every image, so without retransmissions or extra
    packets the flags are exactly the foundation's single draw."""

    def __init__(self, stream: LossStream, first: int):
        self.stream, self.first = stream, first
        self.buf = np.zeros(0, bool)

    def take(self, n: int) -> np.ndarray:
        if len(self.buf) < n:
            more = max(n - len(self.buf), self.first) if self.first else max(n - len(self.buf), 256)
            self.first = 0
            self.buf = np.concatenate([self.buf, self.stream.take(more)])
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def simulate(
    n_images: int,
    bits_per_packet: np.ndarray,
    channel: LossChannel,
    rng: np.random.Generator,
    link: Link = Link(),
    fps: float | None = None,
    *,
    traffic: Traffic | None = None,
    deadline_ms: float | None = None,
    arq: Arq | None = None,
    fec: Fec | None = None,
    side_info: SideInfo | None = None,
    aux_rng: np.random.Generator | None = None,
) -> Transmission:
    """Send ``n_images`` images of ``len(bits_per_packet)`` data packets each.

    ``bits_per_packet`` are the data packets' sizes as :func:`packet_bits` gives them
    (side info included in packet 0). ``rng`` drives the loss channel only; ``aux_rng``
    (default: a generator spawned from ``rng``'s seed sequence at first use) the Poisson
    arrivals and jitter.
    """
    traffic = traffic or Traffic(fps=fps)
    side = side_info or SideInfo()
    bits_per_packet = np.asarray(bits_per_packet, np.int64)
    data_bits = bits_per_packet.copy()
    data_bits[0] -= side.bits  # header + payload only; the layout adds side info where it goes
    wire = WireLayout.build(data_bits, link.header_bytes, fec, side)
    k = len(bits_per_packet)
    w = len(wire.kind)
    bw = float(link.bandwidth_bps)
    prop = link.propagation_ms / 1e3
    deadline = math.inf if deadline_ms is None else deadline_ms / 1e3
    capacity = math.inf if link.buffer_bytes is None else 8.0 * link.buffer_bytes
    if aux_rng is None and (traffic.arrivals == "poisson" or link.jitter is not None):
        aux_rng = rng.spawn(1)[0]  # a child stream: draws nothing from rng
    losses = _WireLoss(channel.stream(rng), n_images * w)

    # Per (image, wire packet) state.
    arrival = np.full((n_images, w), np.inf)  # first successful arrival
    last_due = np.zeros((n_images, w))  # when the last attempt arrived or was due (dropped: when dropped)
    fate = np.zeros((n_images, w), np.int8)  # last attempt: DELIVERED, CHANNEL or CONGESTION
    attempts = np.zeros((n_images, w), np.int64)
    capture = np.empty(n_images)
    device = np.arange(n_images) % traffic.devices
    counters = {"bits": 0, "packets": 0, "retx": 0}

    env = simpy.Environment()
    queue = simpy.Store(env)
    link_state = {"queued": 0.0, "done": np.zeros(0), "bits": np.zeros(0)}  # admitted bits waiting; in service

    def backlog(now: float) -> float:
        done = link_state["done"]
        busy = float(link_state["bits"][done > now].sum()) if len(done) and done[-1] > now else 0.0
        return link_state["queued"] + busy

    def admit(i: int, pkts: np.ndarray):
        """Offer packets of image i to the buffer; enqueue what fits."""
        sizes = wire.bits[pkts]
        if capacity < math.inf:
            ok = _drop_tail(sizes.astype(np.float64), backlog(env.now), capacity)
            dropped = pkts[~ok]
            fate[i, dropped] = CONGESTION
            last_due[i, dropped] = env.now
            attempts[i, dropped] += 1
            pkts, sizes = pkts[ok], sizes[ok]
        if len(pkts):
            link_state["queued"] += float(sizes.sum())
            return queue.put((i, pkts))
        return None

    def device_proc(d: int):
        mine = np.arange(d, n_images, traffic.devices)
        if traffic.fps is None:
            times = np.zeros(len(mine))
        elif traffic.arrivals == "periodic":
            times = np.arange(len(mine)) / traffic.fps + d / (traffic.devices * traffic.fps)
        else:
            times = np.cumsum(aux_rng.exponential(1.0 / traffic.fps, len(mine)))
        ready = 0.0
        all_pkts = np.arange(w)
        for i, t in zip(mine, times):
            if t > env.now:
                yield env.timeout(t - env.now)
                capture[i] = env.now
            else:  # the edge is still busy with earlier images: the camera took this one at t
                capture[i] = t
            ready = max(capture[i], ready) + traffic.edge_ms / 1e3
            if ready > env.now:
                yield env.timeout(ready - env.now)
            ev = admit(i, all_pkts)
            if ev is not None:
                yield ev

    def link_proc():
        while True:
            i, pkts = yield queue.get()
            start = env.now
            sizes = wire.bits[pkts]
            offsets = np.cumsum(sizes / bw)  # serialisation complete, from the burst's start
            done = start + offsets
            link_state["queued"] -= float(sizes.sum())
            link_state["done"], link_state["bits"] = done, sizes.astype(np.float64)
            lost = losses.take(len(pkts))
            due = done + prop
            if link.jitter is not None:
                due = due + link.jitter.sample_s(aux_rng, len(pkts))
            attempts[i, pkts] += 1
            fate[i, pkts] = np.where(lost, CHANNEL, DELIVERED)
            last_due[i, pkts] = due
            got = pkts[~lost]
            arrival[i, got] = np.minimum(arrival[i, got], due[~lost])
            counters["bits"] += int(sizes.sum())
            counters["packets"] += len(pkts)
            yield env.timeout(float(offsets[-1]))
            if arq is not None:
                env.process(receiver_check(i, float(done[-1]) + prop + arq.timeout_ms / 1e3))

    def receiver_check(i: int, when: float):
        if when > env.now:
            yield env.timeout(when - env.now)
        have = arrival[i] <= env.now
        missing = ~have & (wire.kind != PARITY)
        if fec is not None:
            missing &= ~_recovered_groups(have, wire)[np.maximum(wire.group, 0)] | (wire.group < 0)
        missing &= attempts[i] <= arq.max_retries  # first attempt + max_retries retransmissions
        pkts = np.flatnonzero(missing)
        if not len(pkts):
            return
        yield env.timeout(prop)  # the NACK travels back to the sender
        # Retransmit only what can still arrive in time at the current backlog.
        eta = env.now + (backlog(env.now) + np.cumsum(wire.bits[pkts])) / bw + prop
        pkts = pkts[eta <= capture[i] + deadline]
        if len(pkts):
            counters["retx"] += len(pkts)
            ev = admit(i, pkts)
            if ev is not None:
                yield ev

    for d in range(traffic.devices):
        env.process(device_proc(d))
    env.process(link_proc())
    env.run()

    # ---- what the decoder has, per image
    limit = (capture + deadline)[:, None]
    usable = np.isfinite(arrival) & (arrival <= limit)
    data_cols = np.flatnonzero(wire.kind == DATA)
    data_ok = usable[:, data_cols]
    data_time = np.where(data_ok, arrival[:, data_cols], np.inf)
    if fec is not None:
        rec, rec_time = _recover(usable, arrival, wire)
        g = wire.group[data_cols]
        recovered = rec[:, g] & ~data_ok
        data_ok = data_ok | recovered
        data_time = np.where(recovered, rec_time[:, g], data_time)
    cause = np.where(data_ok, DELIVERED,
                     np.where(np.isfinite(arrival[:, data_cols]), DEADLINE, fate[:, data_cols])).astype(np.int8)
    # data packets back in data order (wire order may interleave parity)
    order = np.argsort(wire.data_index[data_cols], kind="stable")
    cause, data_time, data_ok = cause[:, order], data_time[:, order], data_ok[:, order]
    due = last_due[:, data_cols][:, order]

    if side.placement == "own-packet":
        side_lost = ~usable[:, 0]
    else:
        side_lost = ~data_ok[:, 0]
    if side.on_loss == "drop-image":
        dropped = side_lost[:, None] & data_ok
        data_ok = data_ok & ~side_lost[:, None]
        cause = np.where(dropped, np.where(np.isfinite(arrival[:, 0:1]), DEADLINE, fate[:, 0:1]), cause)

    complete = data_ok.all(axis=1)
    waited = np.minimum(last_due.max(axis=1), capture + deadline)
    delivered = np.where(complete, data_time.max(axis=1) if k else capture, waited)
    return Transmission(
        lost=~data_ok.reshape(-1), cause=cause.reshape(-1), arrival_s=due.reshape(-1),
        available_s=data_time.reshape(-1),
        capture_s=capture, delivered_s=delivered, device=device, side_info_lost=side_lost,
        bits_sent=counters["bits"], packets_sent=counters["packets"], retransmissions=counters["retx"],
    )


def _recovered_groups(have: np.ndarray, wire: WireLayout) -> np.ndarray:
    """Per FEC group of one image: can it be decoded from the packets in ``have``?"""
    member = wire.group >= 0
    counts = np.bincount(wire.group[member], weights=have[member], minlength=len(wire.group_sizes))
    return counts >= wire.group_sizes


def _recover(usable: np.ndarray, arrival: np.ndarray, wire: WireLayout) -> tuple[np.ndarray, np.ndarray]:
    """For every image and FEC group: recoverable (any k' of its k'+m packets usable) and
    when (the k'-th usable arrival)."""
    n = usable.shape[0]
    groups = len(wire.group_sizes)
    ok = np.zeros((n, groups), bool)
    when = np.full((n, groups), np.inf)
    for g in range(groups):
        cols = np.flatnonzero(wire.group == g)
        need = int(wire.group_sizes[g])
        t = np.sort(np.where(usable[:, cols], arrival[:, cols], np.inf), axis=1)
        when[:, g] = t[:, need - 1]
        ok[:, g] = np.isfinite(when[:, g])
    return ok, when


def per_device(tx: Transmission, packets_per_image: int) -> list[dict]:
    """Latency and loss by device."""
    out = []
    cause = tx.cause.reshape(-1, packets_per_image)
    lat = tx.latency_ms
    for d in np.unique(tx.device):
        sel = tx.device == d
        c = cause[sel]
        out.append({
            "device": int(d), "images": int(sel.sum()),
            "latency_mean_ms": float(lat[sel].mean()), "latency_p95_ms": float(np.percentile(lat[sel], 95)),
            "loss_rate": float((c != DELIVERED).mean()), "channel_loss": float((c == CHANNEL).mean()),
            "congestion_loss": float((c == CONGESTION).mean()), "deadline_loss": float((c == DEADLINE).mean()),
        })
    return out
