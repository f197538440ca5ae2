"""The base of codecs that quantize and then code each packet's values into real bytes.

A :class:`PacketCodec` quantizes every tensor with the uniform min/max quantizer
(:mod:`dfsim.codecs.quantizer`), cuts the codes into the layout's row packets and codes
each packet **independently**: a subclass's coder starts from the same state at every
packet and predicts only from values inside the packet or from per-image side
information (:meth:`PacketCodec.tensor_side_info`, e.g. a histogram or a palette), so any
subset of packets decodes to exactly those rows.

Payloads are real bytes (:class:`PacketBytes`), and the decoder really runs on the
packets that arrived. A payload it cannot decode (truncated, corrupted, left with unused
bytes, a value out of range) raises :class:`PayloadError` in :meth:`decode_packet`
(``ok`` False in :meth:`decode_packets`); the packet then counts as lost, like one the
network dropped. Before decoding, each packet's CRC-32 is checked: it stands for the
checksum the transport header carries (UDP's, within ``network.header_bytes``), so a
corrupted packet is discarded even when its payload happens to decode.

Subclasses implement :meth:`encode_packet` / :meth:`decode_packet` (one packet, plain
Python: the simplest way to add a codec), or the batched :meth:`encode_packets` /
:meth:`decode_packets` (numba coders do this for speed), and optionally
:meth:`tensor_side_info` and :meth:`fit`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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
from dfsim.kernels import njit
from dfsim.registry import Range
from dfsim.stages import Encoded
from dfsim.transport.packets import PacketBatch, PacketLayout, depacketize, packetize


class PayloadError(ValueError):
    """A packet's payload cannot be decoded: truncated, corrupted or malformed. The
    receiver counts the packet as lost."""


@njit(cache=True)
def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = np.uint32(i)
        for _ in range(8):
            if c & np.uint32(1):
                c = np.uint32(0xEDB88320) ^ (c >> np.uint32(1))
            else:
                c = c >> np.uint32(1)
        table[i] = c
    return table


@njit(cache=True)
def _crc32(data: np.ndarray, offsets: np.ndarray, which: np.ndarray, table: np.ndarray):
    """CRC-32 (zlib's polynomial) of packets ``which``."""
    out = np.empty(len(which), np.uint32)
    for n in range(len(which)):
        j = which[n]
        c = np.uint32(0xFFFFFFFF)
        for b in range(offsets[j], offsets[j + 1]):
            c = table[(c ^ np.uint32(data[b])) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
        out[n] = c ^ np.uint32(0xFFFFFFFF)
    return out


_TABLE = None


def crc32(data: np.ndarray, offsets: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
    """CRC-32 of each packet (equal to :func:`zlib.crc32` of its bytes)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _crc_table()
    if which is None:
        which = np.arange(len(offsets) - 1)
    return _crc32(data, offsets, np.asarray(which, np.int64), _TABLE)


@dataclass
class PacketBytes:
    """The payloads of P packets: their bytes concatenated (``data``), packet j is
    ``data[offsets[j]:offsets[j + 1]]``; ``crc``: each packet's CRC-32 as sent."""

    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64, P + 1
    crc: np.ndarray | None = None  # uint32, P

    def __post_init__(self):
        self.data = np.ascontiguousarray(self.data, dtype=np.uint8)
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        if self.crc is None:
            self.crc = crc32(self.data, self.offsets)

    @classmethod
    def from_list(cls, chunks: list[bytes]) -> PacketBytes:
        """Packets from a list of byte strings."""
        sizes = np.fromiter((len(c) for c in chunks), np.int64, len(chunks))
        offsets = np.zeros(len(chunks) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        data = np.frombuffer(b"".join(chunks), np.uint8)
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def payload(self, j: int) -> bytes:
        """Packet j's bytes."""
        return self.data[self.offsets[j] : self.offsets[j + 1]].tobytes()

    def sizes_bits(self) -> np.ndarray:
        """Each packet's payload size in bits."""
        return np.diff(self.offsets) * 8

    def intact(self, which: np.ndarray) -> np.ndarray:
        """Whether packets ``which`` still match the CRC-32 they were sent with."""
        return crc32(self.data, self.offsets, which) == self.crc[which]


@dataclass
class TensorCode:
    """A whole tensor coded as one stream (for comparisons with image codecs, not for
    the network): the stream, the side information it needs and that side information's
    bits (the quantizer's min/max not included)."""

    payload: bytes
    side: dict
    side_bits: int

    @property
    def bits(self) -> int:
        """Stream plus side information."""
        return 8 * len(self.payload) + self.side_bits


class PacketCodec:
    """Uniform ``bits``-bit quantizer, then each packet coded independently into bytes.

    Side information per image: the quantizer's min and max (:data:`SIDE_INFO_BITS`) plus
    whatever :meth:`tensor_side_info` returns (at most ``model_side_info_bits``)."""

    name = "packet-codec"
    needs_fit = False
    lossless = True  # the codes come back exactly: values are the quantizer's
    model_side_info_bits = 0  # an upper bound on tensor_side_info's bits per image

    def __init__(self, bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8):
        if not (isinstance(bits, (int, np.integer)) and MIN_BITS <= bits <= MAX_BITS):
            raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
        self.bits = int(bits)

    @property
    def side_info_bits(self) -> int:
        """An upper bound on the side-information bits of one image."""
        return SIDE_INFO_BITS + self.model_side_info_bits

    @property
    def code_dtype(self):
        """The codes' dtype: uint8 up to 8 bits, else uint16."""
        return np.uint8 if self.bits <= 8 else np.uint16

    # ------------------------------------------------------------ what subclasses write
    def tensor_side_info(self, codes: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-image side information from the codes N x C x H x W: arrays with leading
        dimension N, and their bits per image (N). Default: none."""
        return {}, np.zeros(len(codes), np.int64)

    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One packet's codes (rows x width) -> its payload; ``side``: this image's side
        information (each array indexed by the image)."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither encode_packet nor encode_packets"
        )

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """A payload -> its codes (rows x width); :class:`PayloadError` if it cannot be."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither decode_packet nor decode_packets"
        )

    def ideal_packet_bits(self, codes: np.ndarray, side: dict) -> float:
        """-sum log2 p of one packet's codes under the codec's model (NaN: no model)."""
        return float("nan")

    def fit_codes(self, codes: np.ndarray, layout: PacketLayout) -> None:
        """Learn from quantized training codes N x C x H x W (codecs with ``needs_fit``)."""

    # ------------------------------------------------------------ batched (override for speed)
    def encode_packets(
        self, packets: np.ndarray, nrows: np.ndarray, image: np.ndarray, side: dict
    ) -> tuple[PacketBytes, np.ndarray]:
        """P packets (P x r x w codes, padded; ``nrows`` valid rows; ``image`` each one's
        image) -> payloads and ideal bits per packet."""
        chunks, ideal = [], np.empty(len(packets))
        for j in range(len(packets)):
            one = {k: v[image[j]] for k, v in side.items()}
            codes = packets[j, : nrows[j]]
            chunks.append(self.encode_packet(codes, one))
            ideal[j] = self.ideal_packet_bits(codes, one)
        return PacketBytes.from_list(chunks), ideal

    def decode_packets(
        self,
        payloads: PacketBytes,
        which: np.ndarray,
        nrows: np.ndarray,
        width: int,
        image: np.ndarray,
        side: dict,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode packets ``which`` (with their ``nrows`` and ``image``) -> codes
        len(which) x max(nrows) x width and a per-packet ``ok`` flag."""
        r = int(nrows.max()) if len(nrows) else 0
        out = np.zeros((len(which), r, width), self.code_dtype)
        ok = np.ones(len(which), bool)
        for n, j in enumerate(which):
            one = {k: v[image[n]] for k, v in side.items()}
            try:
                codes = self.decode_packet(payloads.payload(j), int(nrows[n]), width, one)
            except PayloadError:
                ok[n] = False
                continue
            out[n, : nrows[n]] = codes
        return out, ok

    # ------------------------------------------------------------ the Codec stage
    def fit(self, features: np.ndarray, layout: PacketLayout) -> PacketCodec:
        """Learn from loss-free training features (quantized like the test features)."""
        if self.needs_fit:
            self.fit_codes(quantize(features, self.bits).codes, layout)
        return self

    def encode(self, features: np.ndarray, layout: PacketLayout) -> Encoded:
        """Quantize each tensor, add the side information, code every packet."""
        t0 = time.perf_counter()
        q = quantize(features, self.bits)
        n = len(q.codes)
        batch = packetize(q.codes, layout)
        side, side_bits = self.tensor_side_info(q.codes)
        hdr = batch.header
        payloads, ideal = self.encode_packets(
            batch.payload, hdr["nrows"].astype(np.int64), hdr["image"].astype(np.int64), side
        )
        k = layout.packets_per_tensor
        ideal = np.asarray(ideal, np.float64).reshape(n, k).sum(axis=1)
        return Encoded(
            n_images=n,
            side_info={"vmin": q.vmin, "vmax": q.vmax, **side},
            side_info_bits=SIDE_INFO_BITS + np.asarray(side_bits, np.int64),
            payload_bits=payloads.sizes_bits().reshape(n, k),
            payloads=(payloads, hdr, layout),
            ideal_bits=None if np.isnan(ideal).all() else ideal,
            encode_s=time.perf_counter() - t0,
        )

    def decode(
        self, encoded: Encoded, received: np.ndarray, side_info: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Check and decode the received packets; a packet that fails counts as lost."""
        payloads, hdr, layout = encoded.payloads
        which = np.flatnonzero(np.asarray(received, bool).reshape(-1))
        which = which[payloads.intact(which)]
        model = {k: v for k, v in side_info.items() if k not in ("vmin", "vmax")}
        codes, ok = self.decode_packets(
            payloads,
            which,
            hdr["nrows"][which].astype(np.int64),
            layout.width,
            hdr["image"][which].astype(np.int64),
            model,
        )
        which, codes = which[ok], codes[ok]
        padded = np.zeros((len(which), layout.rows_per_packet, layout.width), self.code_dtype)
        padded[:, : codes.shape[1]] = codes[:, : layout.rows_per_packet]
        got, lost = depacketize(PacketBatch(hdr[which], padded), encoded.n_images, layout)
        values = dequantize(Quantized(got, side_info["vmin"], side_info["vmax"], self.bits))
        values[lost] = 0.0
        return values, lost

    def encode_tensor(self, codes: np.ndarray) -> TensorCode:
        """One quantized tensor C x H x W as one stream (whole-tensor mode: every row of
        every channel, channel after channel, coded like one tall packet)."""
        side, bits = self.tensor_side_info(codes[None])
        c, h, w = codes.shape
        one = np.zeros(1, np.int64)
        payloads, _ = self.encode_packets(codes.reshape(1, c * h, w), one + c * h, one, side)
        return TensorCode(payloads.payload(0), side, int(bits[0]))

    def decode_tensor(self, code: TensorCode, shape: tuple[int, int, int]) -> np.ndarray:
        """Inverse of :meth:`encode_tensor`; :class:`PayloadError` if it cannot be."""
        c, h, w = shape
        one = np.zeros(1, np.int64)
        stream = PacketBytes.from_list([code.payload])
        codes, ok = self.decode_packets(stream, one, one + c * h, w, one, code.side)
        if not ok[0]:
            raise PayloadError(f"{self.name}: the tensor's stream cannot be decoded")
        return codes[0].reshape(c, h, w)

    def max_payload_bits(self, rows: int, width: int) -> int | None:
        """Known only once encoded: the MTU is checked against the encoded packets."""
        return None

    def describe_values(self) -> str:
        """How values are coded, for messages."""
        return f"coded by {self.name} at {self.bits} bits"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bits={self.bits})"


def decode_all(codec, encoded) -> np.ndarray:
    """The values decoded when every packet arrives (what the cloud has without loss)."""
    received = np.ones((encoded.n_images, encoded.packets_per_image), bool)
    return codec.decode(encoded, received, encoded.side_info)[0]
