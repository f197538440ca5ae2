"""The network as a SimPy discrete-event model: edge devices -> shared uplink -> loss
channel -> cloud endpoint, with optional drop-tail buffer, jitter, deadline, ARQ and FEC.

Processes read like the protocol they model:

* each **device** (:func:`device`) captures its images (periodic at ``fps`` with devices
  evenly phased, Poisson at rate ``fps``, or all at t=0 when ``fps`` is None), runs its
  edge sub-model for ``edge_ms`` per image (one image at a time), and hands the image's
  packets to the uplink;
* the **uplink** (:class:`Uplink`) has a drop-tail transmit buffer: a packet that does not
  fit in ``buffer_bytes`` (counting every byte not yet serialised) is dropped (*congestion*
  loss). It serialises packets first-in first-out at ``bandwidth`` bit/s, then each packet
  propagates for ``propagation_ms`` plus an optional random **jitter**
  (:mod:`dfsim.transport.jitter`); the loss channel decides, packet by packet in the order
  packets go on the wire, which ones never arrive (*channel* loss; one continuous loss
  stream, so a burst can span images);
* the **cloud endpoint** (:class:`CloudEndpoint`) records what arrives. With **ARQ**,
  ``timeout_ms`` after the last packet of a round was due it NACKs what is still missing
  (and not recoverable); the NACK reaches the sender one propagation delay later, which
  retransmits each packet at most ``max_retries`` times, and only when its retransmission
  can still arrive before the deadline at the link's current backlog.

What the decoder can use is then a pure function of the endpoint's record
(:func:`decoder_view`): a packet arriving later than ``deadline_ms`` after its image's
capture is useless (*deadline* loss); with **FEC**, each group of up to ``k`` data packets
of an image is followed by ``m`` parity packets (systematic MDS code,
:mod:`dfsim.transport.fec`): any ``k'`` of the group's ``k' + m`` packets recover it; lost
side information is handled by the :class:`~dfsim.transport.settings.SideInfo` policy.
The result is a :class:`~dfsim.stages.Transmission`; the cloud's
:class:`~dfsim.transport.receiver.Reassembler` decodes it.

The packets of an image go on the wire as its :class:`~dfsim.transport.wire.WirePlan`
says. The model's parameters are declared in :mod:`dfsim.transport.settings`.

Events are per image burst, not per packet: within a burst the departure and arrival
times are a vectorised cumulative sum and the loss flags one vectorised draw, so the
per-packet cost is a few array operations. Random arrivals and jitter use their own
generator (``aux_rng``), so the loss stream is the same with or without them.

With the defaults (one device, no buffer limit, no jitter, deadline, ARQ or FEC, side
information in the first packet) the loss flags are a single draw of the channel for the
whole run, in send order, and each image's latency is its serialisation plus propagation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from dfsim.kernels import njit

# An ``X as X`` import re-exports a name importers know from here, where it was first defined.
from dfsim.stages import CHANNEL, CONGESTION, DEADLINE, DELIVERED, Metric, Transmission
from dfsim.transport import fec as fec_code
from dfsim.transport.channels import LossChannel
from dfsim.transport.jitter import Jitter as Jitter
from dfsim.transport.jitter import exponential_jitter as exponential_jitter
from dfsim.transport.jitter import normal_jitter as normal_jitter
from dfsim.transport.jitter import uniform_jitter as uniform_jitter
from dfsim.transport.settings import HEADER_BYTES as HEADER_BYTES
from dfsim.transport.settings import Arq, Fec, Link, SideInfo, Traffic
from dfsim.transport.wire import DATA, PARITY, WireLoss, WirePlan
from dfsim.transport.wire import SIDE as SIDE

# The transport's results columns (see dfsim.experiment.results): the same for every completion
# method of a trial, except the end-to-end latencies, which add the cloud's service time.
METRICS = (
    Metric(
        "realised_loss_rate", "packets missing at the decoder", "", False, per="trial", core=True
    ),
    Metric("latency_mean_ms", "mean latency", "ms", False, per="trial"),
    Metric(
        "latency_p95_ms", "95th-percentile latency", "ms", False, per="trial", alias="latency_p95"
    ),
    Metric("wire_bits_per_image", "bits on the wire per image", "", False, dtype=int, per="trial"),
    Metric("packets_per_image", "data packets per image", "", dtype=int, per="trial"),
    Metric("latency_p50_ms", "median latency", "ms", False, per="trial"),
    Metric(
        "latency_p99_ms", "99th-percentile latency", "ms", False, per="trial", alias="latency_p99"
    ),
    Metric("channel_loss_rate", "packets lost by the channel", "", False, per="trial"),
    Metric("congestion_loss_rate", "packets dropped by the buffer", "", False, per="trial"),
    Metric("deadline_loss_rate", "packets later than the deadline", "", False, per="trial"),
    Metric("side_info_loss_rate", "images without their side information", "", False, per="trial"),
    Metric("retransmissions_per_image", "retransmissions per image", "", False, per="trial"),
    Metric("e2e_latency_mean_ms", "mean end-to-end latency", "ms", False),
    Metric(
        "e2e_latency_p95_ms",
        "95th-percentile end-to-end latency",
        "ms",
        False,
        alias="e2e_latency_p95",
    ),
)


@njit(cache=True)
def _drop_tail(bits: np.ndarray, backlog_bits: float, capacity_bits: float) -> np.ndarray:
    """Packets (in order) admitted to a drop-tail buffer holding ``backlog_bits``."""
    admitted = np.zeros(len(bits), np.bool_)
    for j in range(len(bits)):
        if backlog_bits + bits[j] <= capacity_bits:
            admitted[j] = True
            backlog_bits += bits[j]
    return admitted


class CloudEndpoint:
    """The cloud end of the uplink: per (image, wire packet) what happened to it, and,
    with ARQ, the NACK process that asks the sender for what is missing.

    ``arrival``: first successful arrival (``inf``: none); ``fate``: the last attempt's
    outcome (DELIVERED, CHANNEL or CONGESTION); ``attempts``; ``last_due``: when the last
    attempt arrived or was due (dropped: when dropped). ``capture`` holds each image's
    capture time (stamped on its packets) and ``deadline_s`` is relative to it."""

    def __init__(
        self,
        env: simpy.Environment,
        wire: WirePlan,
        capture: np.ndarray,
        deadline_s: float,
        arq,
        propagation_s: float,
    ):
        n, w = len(capture), len(wire)
        self.env, self.wire, self.capture, self.deadline_s = env, wire, capture, deadline_s
        self.propagation_s = propagation_s
        # per wire packet: how often it may be retransmitted, and its NACK timeout (s)
        self.retries, self.timeout_s = _arq_per_packet(wire, arq)
        self.timeouts = np.unique(self.timeout_s[np.isfinite(self.timeout_s)])
        self.arrival = np.full((n, w), np.inf)
        self.last_due = np.zeros((n, w))
        self.fate = np.zeros((n, w), np.int8)
        self.attempts = np.zeros((n, w), np.int64)
        self.sender: Uplink | None = None  # where NACKs go; set once the uplink exists

    def dropped(self, i: int, pkts: np.ndarray, now: float) -> None:
        """Packets ``pkts`` of image i were dropped by the transmit buffer at ``now``."""
        self.fate[i, pkts] = CONGESTION
        self.last_due[i, pkts] = now
        self.attempts[i, pkts] += 1

    def sent(self, i: int, pkts: np.ndarray, due: np.ndarray, lost: np.ndarray) -> None:
        """Packets ``pkts`` of image i went on the wire, due at ``due``; ``lost`` never come."""
        self.attempts[i, pkts] += 1
        self.fate[i, pkts] = np.where(lost, CHANNEL, DELIVERED)
        self.last_due[i, pkts] = due
        got = pkts[~lost]
        self.arrival[i, got] = np.minimum(self.arrival[i, got], due[~lost])

    def round_due(self, i: int, due_s: float, pkts: np.ndarray) -> None:
        """The last packet of a round of image i (wire packets ``pkts``) was due at
        ``due_s``: with ARQ, NACK what is still missing ``timeout_ms`` later (where the
        streams' timeouts differ, one NACK per timeout of the round's packets, for those
        packets' streams)."""
        if len(self.timeouts) == 1:
            self.env.process(self.nack_after(i, due_s + self.timeouts[0], self.timeouts[0]))
            return
        sent = self.timeout_s[pkts]
        for t in np.unique(sent[np.isfinite(sent)]):
            self.env.process(self.nack_after(i, due_s + t, t))

    def missing(self, i: int, now: float, timeout_s: float | None = None) -> np.ndarray:
        """Wire packets of image i to NACK at ``now``: not yet arrived, not parity, not in
        a group FEC can already recover, and not yet sent ``1 + max_retries`` times (those
        whose NACK timeout is ``timeout_s``, when given)."""
        wire = self.wire
        have = self.arrival[i] <= now
        missing = ~have & (wire.kind != PARITY)
        if len(wire.group_sizes):
            member = wire.group >= 0
            counts = np.bincount(
                wire.group[member], weights=have[member], minlength=len(wire.group_sizes)
            )
            recovered = fec_code.recoverable_groups(counts, wire.group_sizes)
            missing &= ~recovered[np.maximum(wire.group, 0)] | (wire.group < 0)
        missing &= self.attempts[i] <= self.retries
        if timeout_s is not None and len(self.timeouts) > 1:
            missing &= self.timeout_s == timeout_s
        return np.flatnonzero(missing)

    def nack_after(self, i: int, when: float, timeout_s: float | None = None):
        """Process: at ``when``, NACK image i's missing packets (of NACK timeout
        ``timeout_s``); the NACK reaches the sender one propagation delay later."""
        env = self.env
        if when > env.now:
            yield env.timeout(when - env.now)
        pkts = self.missing(i, env.now, timeout_s)
        if not len(pkts):
            return
        yield env.timeout(self.propagation_s)  # the NACK travels back to the sender
        put = self.sender.retransmit(i, pkts, self.capture[i] + self.deadline_s)
        if put is not None:
            yield put


def _arq_per_packet(wire: WirePlan, arq) -> tuple[np.ndarray, np.ndarray]:
    """Each wire packet's retransmission limit (0: never) and NACK timeout in seconds
    (``inf``: none), from one :class:`Arq` (or None) for every packet or one per stream
    (``wire.stream``); the side packet takes the most retries and the shortest timeout
    among the streams."""
    per = list(arq) if isinstance(arq, list | tuple) else None
    if per is None:
        n = len(wire)
        if arq is None:
            return np.zeros(n, np.int64), np.full(n, np.inf)
        return np.full(n, arq.max_retries, np.int64), np.full(n, arq.timeout_ms / 1e3)
    retries = np.array([a.max_retries if a else 0 for a in per], np.int64)
    timeout = np.array([a.timeout_ms / 1e3 if a else np.inf for a in per])
    s = wire.stream
    side_r, side_t = retries.max(), timeout.min()
    return (
        np.where(s >= 0, retries[np.maximum(s, 0)], side_r),
        np.where(s >= 0, timeout[np.maximum(s, 0)], side_t),
    )


class Uplink:
    """The shared uplink: a drop-tail transmit queue served first-in first-out, one image
    burst at a time, and the loss channel behind it.

    ``queue`` holds ``(image, wire packets)`` bursts; ``queued`` the bits admitted but not
    yet in service; ``in_service`` the burst being serialised (completion times, bits)."""

    def __init__(
        self,
        env: simpy.Environment,
        link: Link,
        wire: WirePlan,
        losses: WireLoss,
        endpoint: CloudEndpoint,
        jitter_rng: np.random.Generator | None,
    ):
        self.env, self.wire, self.losses, self.endpoint = env, wire, losses, endpoint
        self.bandwidth = float(link.bandwidth_bps)
        self.propagation_s = link.propagation_ms / 1e3
        self.capacity = math.inf if link.buffer_bytes is None else 8.0 * link.buffer_bytes
        self.jitter, self.jitter_rng = link.jitter, jitter_rng
        self.queue = simpy.Store(env)
        self.queued = 0.0
        self.in_service = (np.zeros(0), np.zeros(0))
        self.bits_sent = self.packets_sent = self.retransmissions = 0

    def backlog(self, now: float) -> float:
        """Bits not yet serialised at ``now``: queued plus the rest of the burst in service."""
        done, bits = self.in_service
        busy = float(bits[done > now].sum()) if len(done) and done[-1] > now else 0.0
        return self.queued + busy

    def admit(self, i: int, pkts: np.ndarray):
        """Offer packets ``pkts`` of image i to the buffer; enqueue what fits. Returns the
        queue's put event, or None when nothing fitted."""
        sizes = self.wire.bits[i, pkts]
        if self.capacity < math.inf:
            now = self.env.now
            ok = _drop_tail(sizes.astype(np.float64), self.backlog(now), self.capacity)
            self.endpoint.dropped(i, pkts[~ok], now)
            pkts, sizes = pkts[ok], sizes[ok]
        if len(pkts):
            self.queued += float(sizes.sum())
            return self.queue.put((i, pkts))
        return None

    def retransmit(self, i: int, pkts: np.ndarray, latest: float):
        """On a NACK: resend the packets of image i that can still arrive by ``latest`` at
        the current backlog. Returns the put event, or None."""
        now = self.env.now
        eta = now + (self.backlog(now) + np.cumsum(self.wire.bits[i, pkts])) / self.bandwidth
        pkts = pkts[eta + self.propagation_s <= latest]
        if not len(pkts):
            return None
        self.retransmissions += len(pkts)
        return self.admit(i, pkts)

    def serve(self):
        """Process: serialise bursts FIFO; loss flags are drawn in wire order, arrival is
        completion + propagation (+ jitter)."""
        env = self.env
        while True:
            i, pkts = yield self.queue.get()
            sizes = self.wire.bits[i, pkts]
            offsets = np.cumsum(sizes / self.bandwidth)  # serialisation complete, from start
            done = env.now + offsets
            self.queued -= float(sizes.sum())
            self.in_service = (done, sizes.astype(np.float64))
            lost = self.losses.take(len(pkts))
            due = done + self.propagation_s
            if self.jitter is not None:
                due = due + self.jitter.sample_s(self.jitter_rng, len(pkts))
            self.endpoint.sent(i, pkts, due, lost)
            self.bits_sent += int(sizes.sum())
            self.packets_sent += len(pkts)
            yield env.timeout(float(offsets[-1]))
            self.endpoint.round_due(i, float(done[-1]) + self.propagation_s, pkts)


def capture_schedule(
    traffic: Traffic, d: int, n: int, rng: np.random.Generator | None
) -> np.ndarray:
    """When device d captures its ``n`` images (periodic, Poisson, or all at t=0)."""
    if traffic.fps is None:
        return np.zeros(n)
    if traffic.arrivals == "periodic":
        return np.arange(n) / traffic.fps + d / (traffic.devices * traffic.fps)
    return np.cumsum(rng.exponential(1.0 / traffic.fps, n))


def device(
    env: simpy.Environment,
    d: int,
    images: np.ndarray,
    traffic: Traffic,
    uplink: Uplink,
    capture: np.ndarray,
    rng: np.random.Generator | None,
):
    """Process of edge device d: capture each of its ``images`` (recorded in ``capture``),
    run the edge sub-model (one image at a time), hand the image's packets to the uplink."""
    times = capture_schedule(traffic, d, len(images), rng)
    ready = 0.0
    every = np.arange(len(uplink.wire))
    for i, t in zip(images, times, strict=False):
        if t > env.now:
            yield env.timeout(t - env.now)
            capture[i] = env.now
        else:  # the edge is still busy with earlier images: the camera took this one at t
            capture[i] = t
        ready = max(capture[i], ready) + traffic.edge_ms / 1e3
        if ready > env.now:
            yield env.timeout(ready - env.now)
        put = uplink.admit(i, every)
        if put is not None:
            yield put


def _data_view(
    endpoint: CloudEndpoint, wire: WirePlan, usable: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (image, data packet): usable by the decoder (received or FEC-recovered in
    time), since when, and why not."""
    cols = np.flatnonzero(wire.kind == DATA)  # in data order (parity interleaves)
    arrival = endpoint.arrival[:, cols]
    ok = usable[:, cols]
    when = np.where(ok, arrival, np.inf)
    if len(wire.group_sizes):
        times = np.where(usable, endpoint.arrival, np.inf)
        group_ok, group_when = fec_code.decodable_at(times, wire.group, wire.group_sizes)
        g = wire.group[cols]
        recovered = group_ok[:, np.maximum(g, 0)] & (g >= 0) & ~ok  # -1: a stream without FEC
        ok = ok | recovered
        when = np.where(recovered, group_when[:, np.maximum(g, 0)], when)
    cause = np.where(
        ok, DELIVERED, np.where(np.isfinite(arrival), DEADLINE, endpoint.fate[:, cols])
    )
    return ok, when, cause.astype(np.int8)


def decoder_view(
    endpoint: CloudEndpoint,
    wire: WirePlan,
    side: SideInfo,
    device_of: np.ndarray,
    *,
    bits_sent: int,
    packets_sent: int,
    retransmissions: int,
) -> Transmission:
    """What the decoder can use, from the endpoint's record: packets arriving after the
    deadline do not count, FEC recovers groups, and the side-information policy decides
    what a lost side information costs."""
    capture = endpoint.capture
    limit = (capture + endpoint.deadline_s)[:, None]
    usable = np.isfinite(endpoint.arrival) & (endpoint.arrival <= limit)
    data_ok, data_time, cause = _data_view(endpoint, wire, usable)
    if side.placement == "own-packet":
        side_lost = ~usable[:, 0]
    else:
        side_lost = ~data_ok[:, 0]
    if side.on_loss == "drop-image":
        dropped = side_lost[:, None] & data_ok
        data_ok = data_ok & ~side_lost[:, None]
        first = np.where(np.isfinite(endpoint.arrival[:, 0:1]), DEADLINE, endpoint.fate[:, 0:1])
        cause = np.where(dropped, first, cause)
    complete = data_ok.all(axis=1)
    waited = np.minimum(endpoint.last_due.max(axis=1), capture + endpoint.deadline_s)
    delivered = np.where(complete, data_time.max(axis=1), waited)
    return Transmission(
        lost=~data_ok.reshape(-1),
        cause=cause.reshape(-1),
        arrival_s=endpoint.last_due[:, wire.kind == DATA].reshape(-1),
        available_s=data_time.reshape(-1),
        capture_s=capture,
        delivered_s=delivered,
        device=device_of,
        side_info_lost=side_lost,
        bits_sent=bits_sent,
        packets_sent=packets_sent,
        retransmissions=retransmissions,
    )


def simulate(
    n_images: int,
    payload_bits: np.ndarray,
    channel: LossChannel,
    rng: np.random.Generator,
    link: Link | None = None,
    *,
    traffic: Traffic | None = None,
    deadline_ms: float | None = None,
    arq: Arq | None = None,
    fec: Fec | None = None,
    side_info: SideInfo | None = None,
    aux_rng: np.random.Generator | None = None,
    side_bits: np.ndarray | None = None,
    segments=None,
) -> Transmission:
    """Send ``n_images`` images of K data packets each.

    ``payload_bits``: each data packet's payload, without header or side information
    (N x K, or K when every image's packets have the same sizes); the :class:`WirePlan`
    adds the link's header to every packet and the side information once per image
    (``side_bits``: per image, default ``side_info.bits`` for every image). ``rng``
    drives the loss channel only; ``aux_rng`` (default: a generator spawned from ``rng``
    at first use) the Poisson arrivals and jitter.

    ``segments``: the data packets of each stream (several tensors crossing the cut, one
    after the other); ``arq`` and ``fec`` are then one setting (or None) per stream, and
    each stream's FEC groups are its own.
    """
    link = link or Link()
    traffic = traffic or Traffic()
    side = side_info or SideInfo()
    wire = WirePlan.build(payload_bits, link.header_bytes, fec, side, n_images, side_bits, segments)
    deadline_s = math.inf if deadline_ms is None else deadline_ms / 1e3
    if aux_rng is None and (traffic.arrivals == "poisson" or link.jitter is not None):
        aux_rng = rng.spawn(1)[0]  # a child stream: draws nothing from rng
    losses = WireLoss(channel.stream(rng), n_images * len(wire))

    env = simpy.Environment()
    capture = np.empty(n_images)
    endpoint = CloudEndpoint(env, wire, capture, deadline_s, arq, link.propagation_ms / 1e3)
    uplink = Uplink(env, link, wire, losses, endpoint, aux_rng)
    endpoint.sender = uplink
    for d in range(traffic.devices):
        mine = np.arange(d, n_images, traffic.devices)
        env.process(device(env, d, mine, traffic, uplink, capture, aux_rng))
    env.process(uplink.serve())
    env.run()
    return decoder_view(
        endpoint,
        wire,
        side,
        np.arange(n_images) % traffic.devices,
        bits_sent=uplink.bits_sent,
        packets_sent=uplink.packets_sent,
        retransmissions=uplink.retransmissions,
    )


@dataclass(frozen=True)
class Network:
    """The transport stage: a link, its traffic and error control, and where the side
    information travels. :meth:`send` runs :func:`simulate` for one batch of images."""

    link: Link = field(default_factory=Link)
    traffic: Traffic = field(default_factory=Traffic)
    deadline_ms: float | None = None
    arq: Arq | tuple | None = None  # a tuple: one (or None) per stream of ``segments``
    fec: Fec | tuple | None = None
    side_info: SideInfo = field(default_factory=SideInfo)
    segments: tuple[int, ...] | None = None  # data packets per stream, with per-stream control

    def send(
        self,
        n_images: int,
        payload_bits: np.ndarray,
        side_info_bits: int | np.ndarray,
        channel: LossChannel,
        rng: np.random.Generator,
        aux_rng: np.random.Generator | None = None,
    ) -> Transmission:
        """Send ``n_images`` images of data packets with ``payload_bits`` each (N x K, or
        K for every image), plus ``side_info_bits`` of side information per image (one
        number, or one per image)."""
        return simulate(
            n_images,
            payload_bits,
            channel,
            rng,
            self.link,
            traffic=self.traffic,
            deadline_ms=self.deadline_ms,
            arq=self.arq,
            fec=self.fec,
            side_info=self.side_info,
            aux_rng=aux_rng,
            side_bits=np.broadcast_to(np.asarray(side_info_bits, np.int64), n_images),
            segments=self.segments,
        )


def per_device(tx: Transmission, packets_per_image: int) -> list[dict]:
    """Latency and loss by device."""
    out = []
    cause = tx.cause.reshape(-1, packets_per_image)
    lat = tx.latency_ms
    for d in np.unique(tx.device):
        sel = tx.device == d
        c = cause[sel]
        out.append(
            {
                "device": int(d),
                "images": int(sel.sum()),
                "latency_mean_ms": float(lat[sel].mean()),
                "latency_p95_ms": float(np.percentile(lat[sel], 95)),
                "loss_rate": float((c != DELIVERED).mean()),
                "channel_loss": float((c == CHANNEL).mean()),
                "congestion_loss": float((c == CONGESTION).mean()),
                "deadline_loss": float((c == DEADLINE).mean()),
            }
        )
    return out
