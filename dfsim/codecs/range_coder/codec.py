"""The ``range`` codec as dfsim runs it: :class:`RangeCodec`, registered by name, codes
each packet with rANS (:mod:`dfsim.codecs.range_coder.batches`) under each image's table,
sent as side information (``model: tensor``), or one table learned from training codes
(``model: calibrated``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from dfsim.codecs.base import PacketBytes, PacketCodec, PayloadError, TensorCode
from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS
from dfsim.codecs.range_coder.batches import BAD_TABLE, decode_batch, encode_batch
from dfsim.codecs.range_coder.models import (
    MAX_CALIBRATED_SCALE,
    calibrated_scale,
    calibrated_table,
    tensor_tables,
)
from dfsim.codecs.range_coder.side_info import SIDE_KEY, parse_tables, worst_table_bits
from dfsim.registry import Range, register
from dfsim.stages import Encoded
from dfsim.transport.packets import PacketLayout


@register("codec", "range")
class RangeCodec(PacketCodec):
    """rANS entropy coding of the ``bits``-bit codes, each packet on its own, with the
    image's histogram sent as side information (``model: tensor``) or a histogram learned
    from training features (``model: calibrated``); ``max_table_bits``: the most bits an
    image's table may take (side information; coarser tables are chosen to fit)."""

    def __init__(
        self,
        bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8,
        model: Literal["tensor", "calibrated"] = "tensor",
        max_table_bits: Annotated[int, Range(64, 1 << 24)] = 8192,
    ):
        super().__init__(bits)
        if model not in ("tensor", "calibrated"):
            raise ValueError(f"model must be 'tensor' or 'calibrated', got {model!r}")
        if not (isinstance(max_table_bits, (int, np.integer)) and max_table_bits >= 64):
            raise ValueError(f"max_table_bits must be an integer >= 64, got {max_table_bits!r}")
        self.model = model
        self.max_table_bits = int(max_table_bits)
        self.needs_fit = model == "calibrated"
        self.model_side_info_bits = (
            min(self.max_table_bits, worst_table_bits(self.bits)) if model == "tensor" else 0
        )
        self._calibrated: tuple | None = None  # flat table arrays, one table
        self._rows: int | None = None  # rows per packet of the layout last encoded with
        self._whole_tensor = False

    # ------------------------------------------------------------ models
    def fit_codes(self, codes: np.ndarray, layout: PacketLayout | None = None) -> None:
        """Learn the calibrated table from training codes N x C x H x W, add-one
        smoothed; its precision ``s`` minimises the training images' bits in ``layout``'s
        packets (default: 4-row packets)."""
        codes = np.asarray(codes)
        if codes.ndim != 4 or not codes.size:
            raise ValueError(f"training codes must be N x C x H x W, got shape {codes.shape}")
        if int(codes.max()) >= 1 << self.bits:
            raise ValueError(f"training codes exceed {self.bits} bits")
        counts = np.bincount(codes.reshape(-1).astype(np.int64), minlength=1 << self.bits) + 1
        packets = self._packets_per_image(codes.shape[1:], layout)
        scale = calibrated_scale(counts, self.bits, len(codes), packets)
        self.load_fitted_state({"counts": counts, "scale": np.array(scale)})

    def fitted_state(self) -> dict[str, np.ndarray]:
        """The calibrated table's (smoothed) training counts and precision."""
        if self._calibrated is None:
            return {}
        return {"counts": self._calibrated[-1], "scale": self._calibrated[1][:1].copy()}

    def load_fitted_state(self, state: dict[str, np.ndarray]) -> RangeCodec:
        """Restore the calibrated table from :meth:`fitted_state`'s arrays."""
        counts = np.asarray(state["counts"], np.int64)
        scale = int(np.asarray(state["scale"]).reshape(-1)[0])
        if counts.shape != (1 << self.bits,) or (counts < 1).any():
            raise ValueError(f"counts must be {1 << self.bits} positive integers")
        if not self.bits < scale <= MAX_CALIBRATED_SCALE:
            raise ValueError(f"scale must be in ({self.bits}, {MAX_CALIBRATED_SCALE}]")
        self._calibrated = (*calibrated_table(counts, scale), counts)
        return self

    def _packets_per_image(self, shape, layout: PacketLayout | None = None) -> int:
        """Packets of one C x H x W tensor: ``layout``'s, else those of the layout last
        encoded with, else 4-row packets; 1 in whole-tensor mode."""
        if self._whole_tensor:
            return 1
        c, h = int(shape[0]), int(shape[1])
        if layout is not None:
            return layout.packets_per_tensor
        rows = self._rows or 4
        return c * -(-h // rows)

    def tensor_side_info(
        self, codes: np.ndarray, packets_per_image: int | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``model: tensor``: each image's table as a bit string (``range_table``, N x B
        bytes, zero-padded) and its exact length in bits; nothing for ``calibrated``.
        ``packets_per_image`` (default: as in :meth:`_packets_per_image`) weighs the
        coder's start-up cost in the choice of the table's precision."""
        n = len(codes)
        if self.model == "calibrated":
            return {}, np.zeros(n, np.int64)
        flat = np.ascontiguousarray(codes.reshape(n, -1))
        self._check_codes(flat)
        if packets_per_image is None:
            packets_per_image = self._packets_per_image(codes.shape[1:])
        raw, tbits = tensor_tables(flat, self.bits, self.max_table_bits, int(packets_per_image))
        return {SIDE_KEY: raw}, tbits

    def encode(self, features: np.ndarray, layout: PacketLayout) -> Encoded:
        """As :meth:`PacketCodec.encode`; the layout's packet count tunes the tables."""
        self._rows = layout.rows_per_packet
        return super().encode(features, layout)

    def encode_tensor(self, codes: np.ndarray) -> TensorCode:
        """As :meth:`PacketCodec.encode_tensor` (one packet: tables tuned for it)."""
        self._whole_tensor = True
        try:
            return super().encode_tensor(codes)
        finally:
            self._whole_tensor = False

    def _check_codes(self, flat: np.ndarray) -> None:
        if flat.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"codes must be uint8 or uint16, got {flat.dtype}")
        if flat.size and int(flat.max()) >= 1 << self.bits:
            raise ValueError(f"a code exceeds {self.bits} bits")

    def _tables(self, image: np.ndarray, side: dict) -> tuple[np.ndarray, tuple]:
        """(table index per packet, flat tables) for packets of images ``image``."""
        if self.model == "calibrated":
            if self._calibrated is None:
                raise RuntimeError("range codec, model calibrated: fit() on training codes first")
            return np.zeros(len(image), np.int64), self._calibrated[:6]
        raw = np.asarray(side[SIDE_KEY])
        if raw.ndim == 1:
            raw = raw[None]
        uniq, inv = np.unique(np.asarray(image, np.int64), return_inverse=True)
        raw = np.ascontiguousarray(raw, np.uint8)
        if len(uniq) and (uniq[0] < 0 or uniq[-1] >= len(raw)):
            raise ValueError("packet image index outside the side information")
        return inv.astype(np.int64), parse_tables(raw, uniq, self.bits)

    # ------------------------------------------------------------ batched coding
    def encode_packets(
        self, packets: np.ndarray, nrows: np.ndarray, image: np.ndarray, side: dict
    ) -> tuple[PacketBytes, np.ndarray]:
        """P packets (P x r x w codes, padded) -> payloads and ideal bits per packet."""
        p, r, w = packets.shape
        flat = np.ascontiguousarray(packets.reshape(p, r * w))
        self._check_codes(flat)
        nsym = np.asarray(nrows, np.int64) * w
        tab, tables = self._tables(image, side)
        data, offsets, ideal, status = encode_batch(flat, nsym, tab, *tables, self.bits)
        if status == BAD_TABLE:
            raise ValueError("range codec: the side information does not parse")
        if status < 0:
            raise ValueError("range codec: a value has probability 0 under the model")
        return PacketBytes(data, offsets), ideal

    def decode_packets(
        self,
        payloads: PacketBytes,
        which: np.ndarray,
        nrows: np.ndarray,
        width: int,
        image: np.ndarray,
        side: dict,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode packets ``which`` -> codes len(which) x max(nrows) x width and ``ok``."""
        which = np.asarray(which, np.int64)
        nrows = np.asarray(nrows, np.int64)
        r = int(nrows.max()) if len(nrows) else 0
        out = np.zeros((len(which), r * width), self.code_dtype)
        if not len(which):
            return out.reshape(0, r, width), np.zeros(0, bool)
        tab, tables = self._tables(image, side)
        ok = decode_batch(
            payloads.data, payloads.offsets, which, nrows * width, tab, *tables, self.bits, out
        )
        return out.reshape(len(which), r, width), ok

    # ------------------------------------------------------------ one packet
    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One packet's codes (rows x width) -> its payload (``side``: this image's)."""
        one = {k: np.asarray(v)[None] for k, v in side.items()}
        codes = np.asarray(codes, self.code_dtype)
        zero = np.zeros(1, np.int64)
        pb, _ = self.encode_packets(codes[None], zero + codes.shape[0], zero, one)
        return pb.payload(0)

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """A payload -> its codes (rows x width); :class:`PayloadError` if invalid."""
        one = {k: np.asarray(v)[None] for k, v in side.items()}
        data = np.frombuffer(bytes(payload), np.uint8)
        pb = PacketBytes(data, np.array([0, len(data)], np.int64), np.zeros(1, np.uint32))
        zero = np.zeros(1, np.int64)
        codes, ok = self.decode_packets(pb, zero, zero + rows, width, zero, one)
        if not ok[0]:
            raise PayloadError(f"range: packet of {rows}x{width} values does not decode")
        return codes[0]

    def ideal_packet_bits(self, codes: np.ndarray, side: dict) -> float:
        """-sum log2 p of one packet's codes under the model used."""
        one = {k: np.asarray(v)[None] for k, v in side.items()}
        codes = np.asarray(codes, self.code_dtype)
        zero = np.zeros(1, np.int64)
        _, ideal = self.encode_packets(codes[None], zero + codes.shape[0], zero, one)
        return float(ideal[0])

    def max_payload_bits(self, rows: int, width: int) -> int:
        """No packet is longer than its raw form (the coder falls back to it)."""
        return 8 * ((rows * width * self.bits + 7) // 8)

    def describe_values(self) -> str:
        """How values are coded, for messages."""
        return f"at {self.bits} bits, rANS-coded ({self.model} model)"

    def __repr__(self) -> str:
        return (
            f"RangeCodec(bits={self.bits}, model={self.model!r}, "
            f"max_table_bits={self.max_table_bits})"
        )
