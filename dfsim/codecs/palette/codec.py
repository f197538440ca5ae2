"""The ``palette`` codec as dfsim runs it: :class:`PaletteCodec`, registered by name, codes
each packet on its own (:mod:`dfsim.codecs.palette.api`) and sends each image's palette as
side information.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from dfsim.codecs.base import PacketBytes, PacketCodec, TensorCode
from dfsim.codecs.palette.api import (
    decode_packet,
    decode_ranges,
    decode_tensor,
    encode_packet,
    encode_packets,
    encode_tensor,
    palette_side_bits,
    tensor_palette,
    valid_check_bits,
)
from dfsim.codecs.palette.syntax import MAX_CHECK_BITS
from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS
from dfsim.registry import Range, register


@register("codec", "palette")
class PaletteCodec(PacketCodec):
    """Choi & Bajić's palette / 4x4-prediction / CABAC codec, each packet coded
    independently. Per image side information: the quantizer's min/max and the 8-value
    palette (``8 * bits`` bits). ``check_bits``: a hash of each packet's values at the
    end of its stream (0: none; the transport's CRC-32 already rejects damaged packets,
    the hash makes the decoder itself reject them with probability 1 - 2^-check_bits)."""

    def __init__(
        self,
        bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8,
        check_bits: Annotated[int, Range(0, MAX_CHECK_BITS)] = 0,
    ):
        super().__init__(bits)
        self.check_bits = valid_check_bits(check_bits)
        self.model_side_info_bits = palette_side_bits(self.bits)

    def tensor_side_info(self, codes: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The palette of each image (N x 8) and its bits (8 * bits each)."""
        pal = tensor_palette(codes, self.bits)
        return {"palette": pal}, np.full(len(pal), palette_side_bits(self.bits), np.int64)

    def encode_packets(self, packets, nrows, image, side):
        """Code every packet (numba, batched) -> (payloads, ideal bits per packet)."""
        pal = np.asarray(side["palette"])[np.asarray(image, np.int64)]
        data, offsets, ideal = encode_packets(packets, nrows, pal, self.bits, self.check_bits)
        return PacketBytes(data, offsets), ideal

    def decode_packets(self, payloads, which, nrows, width, image, side):
        """Decode packets ``which`` -> (codes len(which) x max(nrows) x width, ok)."""
        which = np.asarray(which, np.int64)
        pal = np.asarray(side["palette"])[np.asarray(image, np.int64)]
        return decode_ranges(
            payloads.data,
            payloads.offsets[which],
            payloads.offsets[which + 1],
            nrows,
            width,
            pal,
            self.bits,
            self.check_bits,
        )

    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One packet (rows x width) with this image's side information -> payload."""
        return encode_packet(codes, side["palette"], self.bits, self.check_bits)

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """One payload -> codes (rows x width); :class:`PayloadError` if it cannot be."""
        return decode_packet(payload, rows, width, side["palette"], self.bits, self.check_bits)

    def ideal_packet_bits(self, codes: np.ndarray, side: dict) -> float:
        """-sum log2 p of the packet's bins under the adaptive model."""
        c = np.asarray(codes)
        pal = np.asarray(side["palette"])[None]
        return float(encode_packets(c[None], [c.shape[0]], pal, self.bits, self.check_bits)[2][0])

    def encode_tensor(self, codes: np.ndarray) -> TensorCode:
        """The paper's whole-tensor mode: tiles in raster order, one stream (the palette
        is inside the stream, so no side information beyond the quantizer's)."""
        return TensorCode(encode_tensor(codes, self.bits, self.check_bits), {}, 0)

    def decode_tensor(self, code: TensorCode, shape: tuple[int, int, int]) -> np.ndarray:
        """Inverse of :meth:`encode_tensor`; :class:`PayloadError` if it cannot be."""
        return decode_tensor(code.payload, shape, self.bits, self.check_bits)

    def __repr__(self) -> str:
        return f"PaletteCodec(bits={self.bits}, check_bits={self.check_bits})"
