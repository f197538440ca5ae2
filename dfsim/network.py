"""The network as a SimPy discrete-event model: edge sender -> link -> loss channel -> receiver.

Processes read like the protocol they model:

* the **edge** captures image *i* at ``i / fps`` (or all at t=0 for a batch upload when
  ``fps`` is None) and hands the image's packets to the link queue;
* the **link** serialises packets one after another at ``bandwidth`` bit/s (a FIFO:
  an image waits for the previous one), then each packet propagates for
  ``propagation_ms``; the loss channel decides, packet by packet in send order, which
  ones never arrive (one continuous loss stream for the whole transmission, so a
  Gilbert-Elliott burst can span two images);
* the **receiver** collects what arrives and declares an image delivered when its last
  packet is due; its delivery latency is that time minus the capture time.

To keep the simulation off the critical path, events are per image: within an image the
packet departure and arrival times are computed with a vectorised cumulative sum, and
the loss flags come from one vectorised draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from dfsim.channels import LossChannel

HEADER_BYTES = 40  # IPv4 (20) + UDP (8) + RTP-like sequence header (12)


@dataclass(frozen=True)
class Link:
    bandwidth_bps: float = 10e6
    propagation_ms: float = 5.0
    header_bytes: int = HEADER_BYTES

    def __post_init__(self):
        if not self.bandwidth_bps > 0:
            raise ValueError(f"bandwidth must be > 0 bit/s, got {self.bandwidth_bps}")
        if self.propagation_ms < 0:
            raise ValueError(f"propagation delay must be >= 0 ms, got {self.propagation_ms}")
        if self.header_bytes < 0:
            raise ValueError(f"header_bytes must be >= 0, got {self.header_bytes}")


@dataclass
class Transmission:
    """What the receiver saw: per packet (stream order) loss and arrival; per image latency."""

    lost: np.ndarray  # K_total bool, True = never arrived
    arrival_s: np.ndarray  # K_total float64, when the packet reached (or would have reached) the cloud
    capture_s: np.ndarray  # N
    delivered_s: np.ndarray  # N, time the image's last packet is due at the receiver
    bits_sent: int

    @property
    def latency_ms(self) -> np.ndarray:
        return (self.delivered_s - self.capture_s) * 1e3


def packet_bits(payload_bits: np.ndarray, link: Link, side_info_bits: int) -> np.ndarray:
    """On-the-wire bits of each packet of one image: header + payload; side info rides in packet 0."""
    bits = payload_bits.astype(np.int64) + 8 * link.header_bytes
    bits[0] += side_info_bits
    return bits


def simulate(
    n_images: int,
    bits_per_packet: np.ndarray,
    channel: LossChannel,
    rng: np.random.Generator,
    link: Link = Link(),
    fps: float | None = None,
) -> Transmission:
    """Send ``n_images`` images of ``len(bits_per_packet)`` packets each through the link."""
    k = len(bits_per_packet)
    lost = channel.stream(rng).take(n_images * k)
    serial = bits_per_packet / link.bandwidth_bps  # seconds per packet on the wire
    offsets = np.cumsum(serial)  # departure-complete offsets within one image's burst
    burst_s = float(offsets[-1])
    prop = link.propagation_ms / 1e3

    env = simpy.Environment()
    queue = simpy.Store(env)  # the link's transmit queue, one item per image burst
    in_flight = simpy.Store(env)
    arrival = np.empty(n_images * k)
    capture = np.empty(n_images)
    delivered = np.empty(n_images)

    def edge():
        for i in range(n_images):
            if fps is not None:
                wait = i / fps - env.now
                if wait > 0:
                    yield env.timeout(wait)
            capture[i] = env.now
            yield queue.put(i)

    def link_tx():
        while True:
            i = yield queue.get()
            start = env.now
            arrival[i * k : (i + 1) * k] = start + offsets + prop
            yield env.timeout(burst_s)  # serialisation of the whole burst
            env.process(propagate(i))

    def propagate(i):
        yield env.timeout(prop)
        yield in_flight.put(i)

    def receiver():
        for _ in range(n_images):
            i = yield in_flight.get()
            delivered[i] = env.now  # last packet of image i is due now (received or not)

    env.process(edge())
    env.process(link_tx())
    done = env.process(receiver())
    env.run(until=done)
    return Transmission(lost, arrival, capture, delivered, int(bits_per_packet.sum()) * n_images)
