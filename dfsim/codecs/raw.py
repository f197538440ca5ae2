"""``raw``: the uniform min/max quantizer with fixed-length n-bit payloads.

Each value of a packet costs ``bits`` bits; the per-tensor min and max (two float32) are
the side information. Decoding a packet needs only the packet and the side information,
so any subset of packets decodes to exactly those rows.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np

from dfsim.codecs.quantizer import (
    MAX_BITS,
    MIN_BITS,
    SIDE_INFO_BITS,
    Quantized,
    dequantize,
    quantize,
)
from dfsim.registry import Range, register
from dfsim.stages import Encoded
from dfsim.transport.packets import PacketLayout, depacketize, packetize


@register("codec", "raw")
class RawCodec:
    """Uniform ``bits``-bit quantizer, each value sent as ``bits`` raw bits."""

    side_info_bits = SIDE_INFO_BITS  # per tensor: float32 min and max
    needs_fit = False

    def __init__(self, bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8):
        if not (isinstance(bits, int) and MIN_BITS <= bits <= MAX_BITS):
            raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
        self.bits = bits

    def encode(self, features: np.ndarray, layout: PacketLayout) -> Encoded:
        """Quantize each tensor with its own min/max and cut the codes into packets."""
        t0 = time.perf_counter()
        q = quantize(features, self.bits)
        payload_bits = layout.packet_values() * self.bits
        return Encoded(
            n_images=len(q.codes),
            side_info={"vmin": q.vmin, "vmax": q.vmax},
            side_info_bits=self.side_info_bits,
            payload_bits=payload_bits,
            payloads=(packetize(q.codes, layout), layout),
            # each of the 2^bits codes has probability 2^-bits under the coder's model
            ideal_bits=np.full(len(q.codes), float(payload_bits.sum())),
            encode_s=time.perf_counter() - t0,
        )

    def fit(self, features: np.ndarray, layout: PacketLayout) -> RawCodec:
        """Nothing to learn."""
        return self

    def decode(
        self, encoded: Encoded, received: np.ndarray, side_info: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reassemble the received packets' codes and dequantize them with ``side_info``."""
        packets, layout = encoded.payloads
        codes, lost = depacketize(
            packets.subset(np.asarray(received).reshape(-1)), encoded.n_images, layout
        )
        values = dequantize(Quantized(codes, side_info["vmin"], side_info["vmax"], self.bits))
        values[lost] = 0.0
        return values, lost

    def max_payload_bits(self, rows: int, width: int) -> int:
        """Every value costs ``bits``: a packet of ``rows`` rows holds ``rows * width`` values."""
        return rows * width * self.bits

    def describe_values(self) -> str:
        """How values are coded, for messages."""
        return f"at {self.bits} bits"

    def __repr__(self) -> str:
        return f"RawCodec(bits={self.bits})"
