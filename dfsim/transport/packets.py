"""Packetization: feature tensors <-> row packets, send order, loss mask.

A packet holds ``rows_per_packet`` consecutive rows of ONE channel of one image. When
the height H is not a multiple, the last packet of each channel is short (it still
travels, and its loss still counts). Every packet carries a header (image, channel,
first row, number of rows), so the receiver reassembles from headers alone, whatever
order or subset of packets arrives.

Send orders (which packets travel back to back decides what a loss burst destroys):

* ``channel-major``: all packets of channel 0, then channel 1, ... (a burst wipes
  consecutive row bands of one channel);
* ``row-major`` (default): row band 0 of every channel, then row band 1, ... (a burst
  wipes the same band in neighbouring channels, and leaves the bands above and below
  in each channel for completion to work from: on the default model's features under
  Gilbert-Elliott loss 0.3 / burst 4, linear interpolation's error on the lost entries
  is 0.28 row-major against 0.43 channel-major, where it is worse than zero-fill's 0.42).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from dfsim.errors import UserError
from dfsim.registry import Range

SEND_ORDERS = ("channel-major", "row-major")

HEADER_DTYPE = np.dtype(
    [("image", np.int32), ("channel", np.int32), ("row", np.int32), ("nrows", np.int32)]
)


@dataclass(frozen=True)
class PacketLayout:
    """How one C x H x W tensor is cut into packets and in which order they are sent."""

    channels: int
    height: int
    width: int
    rows_per_packet: int
    order: str = "row-major"

    def __post_init__(self):
        if self.order not in SEND_ORDERS:
            raise ValueError(f"order must be one of {SEND_ORDERS}, got {self.order!r}")
        if self.rows_per_packet < 1:
            raise ValueError(f"rows_per_packet must be >= 1, got {self.rows_per_packet}")
        if min(self.channels, self.height, self.width) < 1:
            raise ValueError("tensor dimensions must be positive")

    @classmethod
    def for_shape(cls, shape, rows_per_packet: int, order: str = "row-major") -> PacketLayout:
        """The layout of a C x H x W tensor."""
        c, h, w = shape
        return cls(int(c), int(h), int(w), int(rows_per_packet), order)

    @property
    def bands(self) -> int:
        """Packets per channel (row bands), the last one possibly short."""
        return -(-self.height // self.rows_per_packet)

    @property
    def packets_per_tensor(self) -> int:
        """Packets of one tensor: channels x bands."""
        return self.channels * self.bands

    def headers(self) -> np.ndarray:
        """(channel, first row, rows) of each packet of one tensor, in send order."""
        c_idx, b_idx = np.meshgrid(np.arange(self.channels), np.arange(self.bands), indexing="ij")
        if self.order == "row-major":
            c_idx, b_idx = c_idx.T, b_idx.T
        c_idx, b_idx = c_idx.ravel(), b_idx.ravel()
        h = np.zeros(self.packets_per_tensor, HEADER_DTYPE)
        h["channel"] = c_idx
        h["row"] = b_idx * self.rows_per_packet
        h["nrows"] = np.minimum(self.rows_per_packet, self.height - h["row"])
        return h

    def packet_values(self) -> np.ndarray:
        """Number of tensor values in each packet of one tensor, in send order."""
        return self.headers()["nrows"].astype(np.int64) * self.width

    def check(
        self, codec, header_bytes: int, mtu_bytes: int, side_info_bits: int, split: str
    ) -> None:
        """One-line errors for packets taller than the tensor or larger than the MTU
        (the first packet also carries ``side_info_bits``), with the rows that would fit.
        A codec whose sizes are known only once encoded (``max_payload_bits`` None) is
        checked against its encoded packets instead."""
        r, w = self.rows_per_packet, self.width
        if r > self.height:
            raise UserError(
                f"packets.rows_per_packet: {r} exceeds the feature height "
                f"{self.height} at split {split!r}"
            )
        if codec.max_payload_bits(r, w) is None:
            return

        def size(rows: int) -> int:
            """Bytes of a packet of ``rows`` rows, side information included."""
            return header_bytes + math.ceil((codec.max_payload_bits(rows, w) + side_info_bits) / 8)

        if size(r) > mtu_bytes:
            fit = next((k for k in range(r - 1, 0, -1) if size(k) <= mtu_bytes), 0)
            hint = f"use rows_per_packet <= {fit}" if fit else "fewer bits or a larger MTU"
            raise UserError(
                f"packets.rows_per_packet: {r} rows of {w} values {codec.describe_values()} make "
                f"{size(r)}-byte packets (with the {header_bytes}-byte header), over "
                f"network.mtu_bytes {mtu_bytes}; {hint}"
            )

    def lost_mask(self, lost_packets: np.ndarray) -> np.ndarray:
        """Boolean loss mask N x C x H x W from per-packet loss flags N x K (send order)."""
        lost_packets = np.asarray(lost_packets, dtype=bool).reshape(-1, self.packets_per_tensor)
        hdr = self.headers()
        per_band = np.empty((len(lost_packets), self.channels, self.bands), dtype=bool)
        per_band[:, hdr["channel"], hdr["row"] // self.rows_per_packet] = lost_packets
        rows = np.repeat(per_band, self.rows_per_packet, axis=2)[:, :, : self.height]
        return np.broadcast_to(rows[..., None], rows.shape + (self.width,)).copy()


@dataclass(frozen=True)
class Packetization:
    """The scenario's ``packets`` section: how every tensor is cut (each may be a grid).
    ``rows_per_packet: fill``: as many rows as every packet of the run can hold within the
    MTU once encoded (one number per tensor, resolved when the features are encoded)."""

    rows_per_packet: Annotated[int | Literal["fill"], Range(1)] = 4
    order: Literal["channel-major", "row-major"] = "row-major"

    @property
    def fill(self) -> bool:
        return self.rows_per_packet == "fill"

    def layout(self, shape, rows: int | None = None) -> PacketLayout:
        """The layout of one C x H x W tensor (``rows``: the resolved rows of ``fill``)."""
        r = rows if rows is not None else self.rows_per_packet
        if r == "fill":
            raise ValueError("rows_per_packet 'fill' is resolved on the encoded features")
        return PacketLayout.for_shape(shape, r, self.order)


@dataclass
class PacketBatch:
    """Packets of a batch of tensors, in send order: headers and padded payloads.

    ``payload[k]`` holds ``rows_per_packet x W`` codes; only the first ``nrows`` rows of
    a short packet are meaningful.
    """

    header: np.ndarray  # K, HEADER_DTYPE
    payload: np.ndarray  # K x rows_per_packet x W

    def __len__(self) -> int:
        return len(self.header)

    def subset(self, keep: np.ndarray) -> PacketBatch:
        """The packets flagged in ``keep``."""
        return PacketBatch(self.header[keep], self.payload[keep])


def packetize(codes: np.ndarray, layout: PacketLayout) -> PacketBatch:
    """Cut a batch N x C x H x W into packets; images follow each other in the stream."""
    n, c, h, w = codes.shape
    if (c, h, w) != (layout.channels, layout.height, layout.width):
        raise ValueError(f"tensor shape {(c, h, w)} does not match layout {layout}")
    r, bands = layout.rows_per_packet, layout.bands
    padded = np.zeros((n, c, bands * r, w), codes.dtype)
    padded[:, :, :h] = codes
    per_band = padded.reshape(n, c, bands, r, w)
    hdr1 = layout.headers()
    payload = per_band[:, hdr1["channel"], hdr1["row"] // r]  # N x K x r x w
    header = np.tile(hdr1, n)
    header["image"] = np.repeat(np.arange(n, dtype=np.int32), len(hdr1))
    return PacketBatch(header, payload.reshape(n * len(hdr1), r, w))


def depacketize(
    received: PacketBatch, n_images: int, layout: PacketLayout, dtype=None
) -> tuple[np.ndarray, np.ndarray]:
    """Reassemble received packets into (tensor N x C x H x W, lost mask of the same shape).

    Uses only the packet headers; entries no packet delivered are 0 and marked lost.
    """
    r, w = layout.rows_per_packet, layout.width
    dtype = dtype or received.payload.dtype
    hp = layout.bands * r  # height padded to whole packets
    out = np.zeros((n_images * layout.channels * hp, w), dtype)
    lost = np.ones((n_images * layout.channels * hp, w), bool)
    hdr = received.header
    first = (hdr["image"].astype(np.int64) * layout.channels + hdr["channel"]) * hp + hdr["row"]
    rows = (
        first[:, None] + np.arange(r)[None, :]
    )  # K x r flat row indices (short packets: pad rows)
    valid = np.arange(r)[None, :] < hdr["nrows"][:, None]
    idx = rows[valid]
    out[idx] = received.payload[valid]
    lost[idx] = False
    out = out.reshape(n_images, layout.channels, hp, w)
    lost = lost.reshape(n_images, layout.channels, hp, w)
    h = layout.height
    return np.ascontiguousarray(out[:, :, :h]), np.ascontiguousarray(lost[:, :, :h])
