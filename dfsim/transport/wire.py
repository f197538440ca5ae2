"""The packets of an image on the wire: their order, kinds and sizes (:class:`WirePlan`),
and the loss channel's flags handed out in wire order (:class:`WireLoss`).

Every packet carries a ``header_bytes`` header; the side information is added exactly
once per image (in data packet 0, or as a packet of its own sent first); with FEC each
group of up to ``k`` data packets is followed by its ``m`` parity packets. Where several
tensors cross the cut, each one's data packets (a *stream*, one after the other on the wire)
may have an FEC code of its own, or none: its groups then never span two streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dfsim.transport.channels import LossStream
from dfsim.transport.settings import Fec, SideInfo

# Kinds of packet on the wire.
SIDE, DATA, PARITY = 0, 1, 2


@dataclass(frozen=True)
class WirePlan:
    """The packets of an image in the order they go on the wire: the side-information
    packet (``own-packet`` placement), then each FEC group's data packets followed by its
    parity packets (without FEC: the data packets, one group of none). The order is the
    same for every image; the sizes (``bits``, N x packets) are each image's own, since a
    codec's packets differ in size from image to image."""

    kind: np.ndarray  # SIDE, DATA or PARITY
    data_index: np.ndarray  # index among the image's data packets (-1 otherwise)
    group: np.ndarray  # FEC group (-1: none)
    bits: np.ndarray  # N x len: on-the-wire size of each image's packets
    group_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # data per group
    stream: np.ndarray | None = None  # the stream of each packet (-1: the side packet)

    @classmethod
    def build(
        cls,
        payload_bits: np.ndarray,
        header_bytes: int,
        fec: Fec | None,
        side: SideInfo,
        n_images: int = 1,
        side_bits: np.ndarray | int | None = None,
        segments=None,
    ) -> WirePlan:
        """The plan for data packets of ``payload_bits`` each (N x K, or K for every image
        alike): every packet gets a ``header_bytes`` header, the image's side information
        (``side_bits``, default ``side.bits``; per image or one for all) goes in data
        packet 0 or a packet of its own, and parity packets are as long as their group's
        longest data packet.

        ``segments``: the data packets of each stream (summing to K); ``fec`` is then one
        code (or None) per stream. Without it the K data packets are one stream and ``fec``
        one code (or None)."""
        pb = np.asarray(payload_bits, np.int64)
        k_data = pb.shape[-1]
        if k_data == 0:
            raise ValueError("an image needs at least one data packet")
        codes, bounds = _segments(k_data, fec, segments)
        data_bits = np.broadcast_to(pb, (n_images, k_data)) + 8 * header_bytes
        sb = np.broadcast_to(np.asarray(side.bits if side_bits is None else side_bits), n_images)
        kind, index, group, cols, sizes, stream = [], [], [], [], [], []
        if side.placement == "own-packet":
            kind.append(SIDE), index.append(-1), group.append(-1), stream.append(-1)
            cols.append(8 * header_bytes + sb)
        for s, (code, (first, end)) in enumerate(zip(codes, bounds, strict=True)):
            for start in range(first, end, code.k if code else end - first):
                stop = min(start + (code.k if code else end), end)
                g = len(sizes) if code else -1
                if code:
                    sizes.append(stop - start)
                for j in range(start, stop):
                    extra = sb if (j == 0 and side.placement == "first-packet") else 0
                    kind.append(DATA), index.append(j), group.append(g), stream.append(s)
                    cols.append(data_bits[:, j] + extra)
                if code:  # as long as the group's longest packet, side information included
                    parity = data_bits[:, start:stop].max(axis=1)
                    if start == 0 and side.placement == "first-packet":
                        parity = np.maximum(parity, data_bits[:, 0] + sb)
                    for _ in range(code.m):
                        kind.append(PARITY), index.append(-1), group.append(g), stream.append(s)
                        cols.append(parity)
        return cls(
            np.array(kind, np.int8),
            np.array(index, np.int64),
            np.array(group, np.int64),
            np.stack([np.broadcast_to(c, n_images) for c in cols], axis=1).astype(np.int64),
            np.array(sizes, np.int64),
            np.array(stream, np.int64),
        )

    def __len__(self) -> int:
        return len(self.kind)


def _segments(k_data: int, fec, segments) -> tuple[list, list[tuple[int, int]]]:
    """Each stream's FEC code and its data packets' [first, end) range."""
    if segments is None:
        return [fec], [(0, k_data)]
    counts = [int(c) for c in segments]
    codes = list(fec) if isinstance(fec, list | tuple) else [fec] * len(counts)
    if sum(counts) != k_data or min(counts, default=0) < 1 or len(codes) != len(counts):
        raise ValueError(
            f"segments {counts} must be positive, sum to the {k_data} data packets and "
            f"match the {len(codes)} FEC settings"
        )
    ends = np.cumsum(counts).tolist()
    return codes, list(zip([0, *ends[:-1]], ends, strict=True))


class WireLoss:
    """Channel loss flags assigned to packets in the order they go on the wire. The first
    draw covers one transmission of every image, so without retransmissions or extra
    packets the flags are those of a single draw for the whole run."""

    def __init__(self, stream: LossStream, first: int):
        self.stream, self.first = stream, first
        self.buf = np.zeros(0, bool)

    def take(self, n: int) -> np.ndarray:
        """The loss flags of the next ``n`` packets on the wire."""
        if len(self.buf) < n:
            short = n - len(self.buf)
            more = max(short, self.first) if self.first else max(short, 256)
            self.first = 0
            self.buf = np.concatenate([self.buf, self.stream.take(more)])
        out, self.buf = self.buf[:n], self.buf[n:]
        return out
