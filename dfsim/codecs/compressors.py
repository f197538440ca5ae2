"""General-purpose lossless compressors, packet by packet: ``deflate``, ``zstd``,
``brotli``, ``lz4``.

Each packet's quantized codes (one byte per value up to 8 bits, two little-endian bytes
above) are compressed on their own, so packets decode independently. The compressors'
framing is kept to what decoding needs, since a 4-row packet is only a few hundred bytes:
raw deflate (no zlib header or Adler-32), magic-less zstd frames without content size or
checksum, raw brotli streams, and lz4 blocks without a size prefix (the decoder knows a
packet's value count from its header). Integrity is the transport checksum's job
(:mod:`dfsim.codecs.base`); a payload the library rejects, or one that decodes to the
wrong number of bytes or leaves bytes unused, raises :class:`PayloadError`.

Every decompressor is bounded by the packet's raw size (rows x width x bytes per value,
which the receiver knows from the header): it never inflates more than that (plus one
byte, or brotli's one internal block), so a payload of a few hundred bytes that would
inflate to hundreds of megabytes is refused as fast as any other bad payload.

``zstd`` can use a dictionary trained on the training images' packets
(``dictionary: 4096``: its size in bytes); encoder and decoder share it, it is not sent.
"""

from __future__ import annotations

import zlib
from typing import Annotated

import brotli
import lz4.block
import numpy as np
import zstandard

from dfsim.codecs.base import PacketCodec, PayloadError
from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS, quantize
from dfsim.errors import UserError, note
from dfsim.registry import Range, register
from dfsim.transport.packets import PacketLayout, packetize


class _ByteCodec(PacketCodec):
    """Shared by the compressors: codes <-> bytes, length checks."""

    def _raw(self, codes: np.ndarray) -> bytes:
        return np.ascontiguousarray(codes, dtype=self.code_dtype).tobytes()

    def _codes(self, raw: bytes, rows: int, width: int) -> np.ndarray:
        n = rows * width * np.dtype(self.code_dtype).itemsize
        if len(raw) != n:
            raise PayloadError(f"{self.name}: payload decodes to {len(raw)} bytes, expected {n}")
        codes = np.frombuffer(raw, self.code_dtype).reshape(rows, width)
        if self.bits not in (8, 16) and int(codes.max(initial=0)) >= 1 << self.bits:
            raise PayloadError(f"{self.name}: a decoded value exceeds {self.bits} bits")
        return codes

    def _expected(self, rows: int, width: int) -> int:
        return rows * width * np.dtype(self.code_dtype).itemsize


@register("codec", "deflate")
class DeflateCodec(_ByteCodec):
    """Raw deflate (zlib) per packet at ``level`` (1-9)."""

    def __init__(
        self,
        bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8,
        level: Annotated[int, Range(1, 9)] = 9,
    ):
        super().__init__(bits)
        self.level = level

    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """Raw deflate of the packet's code bytes."""
        return zlib.compress(self._raw(codes), self.level, wbits=-15)

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """Inflate; the stream must end exactly at the payload's end."""
        d = zlib.decompressobj(-15)
        try:
            raw = d.decompress(payload, self._expected(rows, width) + 1)
        except zlib.error as e:
            raise PayloadError(f"deflate: {e}") from None
        if not d.eof or d.unused_data or d.unconsumed_tail:
            raise PayloadError("deflate: truncated payload or bytes after the stream's end")
        return self._codes(raw, rows, width)

    def __repr__(self) -> str:
        return f"DeflateCodec(bits={self.bits}, level={self.level})"


@register("codec", "zstd")
class ZstdCodec(_ByteCodec):
    """Zstandard per packet at ``level`` (1-22); ``dictionary``: the size in bytes of a
    dictionary trained on training features (0: none)."""

    def __init__(
        self,
        bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8,
        level: Annotated[int, Range(1, 22)] = 19,
        dictionary: Annotated[int, Range(0, 1 << 20)] = 0,
    ):
        super().__init__(bits)
        self.level, self.dictionary = level, dictionary
        self.needs_fit = dictionary > 0
        self._dict: zstandard.ZstdCompressionDict | None = None
        self._make()

    def _compressor(self, dictionary) -> zstandard.ZstdCompressor:
        params = zstandard.ZstdCompressionParameters.from_level(
            self.level,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_checksum=0,
            write_content_size=0,
            write_dict_id=0,
        )
        return zstandard.ZstdCompressor(compression_params=params, dict_data=dictionary)

    def _make(self) -> None:
        self._c = self._compressor(self._dict)
        self._d = zstandard.ZstdDecompressor(
            format=zstandard.FORMAT_ZSTD1_MAGICLESS, dict_data=self._dict
        )

    def _samples(self, codes: np.ndarray, layout: PacketLayout) -> list[bytes]:
        batch = packetize(codes, layout)
        nrows = batch.header["nrows"]
        return [self._raw(p[:r]) for p, r in zip(batch.payload, nrows, strict=True)]

    def _train(self, samples: list[bytes]) -> zstandard.ZstdCompressionDict:
        try:
            return zstandard.train_dictionary(self.dictionary, samples, level=self.level)
        except zstandard.ZstdError as e:
            raise UserError(
                f"encoding.dictionary: zstd cannot train a {self.dictionary}-byte dictionary "
                f"on these features ({e}); try 0 (none) or a few kilobytes"
            ) from None

    def fit_codes(self, codes: np.ndarray, layout: PacketLayout) -> None:
        """Train the dictionary on the training codes' packets, after checking on held-out
        training tensors (the last fifth) that a dictionary trained on the others makes
        their packets smaller: where it does not, a one-line note says so (the dictionary
        is still used, as asked)."""
        held = len(codes) // 5
        if held:
            trial = self._compressor(self._train(self._samples(codes[:-held], layout)))
            plain = self._compressor(None)
            test = self._samples(codes[-held:], layout)
            with_dict = sum(len(trial.compress(p)) for p in test)
            without = sum(len(plain.compress(p)) for p in test)
            if with_dict >= without:
                note(
                    f"zstd: a {self.dictionary}-byte dictionary does not shrink held-out "
                    f"training packets ({with_dict} bytes with it, {without} without): "
                    "consider dictionary: 0"
                )
        self._dict = self._train(self._samples(codes, layout))
        self._make()

    def fit(self, features: np.ndarray, layout: PacketLayout) -> ZstdCodec:
        """Train the dictionary (when ``dictionary`` > 0) on quantized training features."""
        if self.needs_fit:
            self.fit_codes(quantize(features, self.bits).codes, layout)
        return self

    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One magic-less zstd frame."""
        if self.needs_fit and self._dict is None:
            raise RuntimeError("zstd with a dictionary: fit() on training features first")
        return self._c.compress(self._raw(codes))

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """Decompress one frame into at most the packet's bytes; nothing may follow it.
        The frame header is read first: a frame declaring another size (zstd would
        allocate what it declares), or a window larger than this packet and the dictionary
        can need, is refused before anything is allocated for it."""
        n = self._expected(rows, width)
        try:
            frame = zstandard.get_frame_parameters(payload, format=zstandard.FORMAT_ZSTD1_MAGICLESS)
        except zstandard.ZstdError as e:
            raise PayloadError(f"zstd: {e}") from None
        if frame.content_size not in (n, zstandard.CONTENTSIZE_UNKNOWN):
            raise PayloadError(f"zstd: the frame declares {frame.content_size} bytes, expected {n}")
        if frame.window_size > 2 * max(n + self.dictionary, 1024):
            raise PayloadError(
                f"zstd: the frame's {frame.window_size}-byte window is larger than a "
                f"{n}-byte packet needs"
            )
        try:  # a truncated frame, a longer one or bytes after its end are errors
            raw = self._d.decompress(payload, max_output_size=n, allow_extra_data=False)
        except zstandard.ZstdError as e:
            raise PayloadError(f"zstd: {e}") from None
        if len(raw) != n:
            raise PayloadError(f"zstd: payload decodes to {len(raw)} bytes, expected {n}")
        return self._codes(raw, rows, width)

    def __repr__(self) -> str:
        return f"ZstdCodec(bits={self.bits}, level={self.level}, dictionary={self.dictionary})"


@register("codec", "brotli")
class BrotliCodec(_ByteCodec):
    """Brotli per packet at ``quality`` (0-11; the default is 9 because 11 is much slower
    on 4-row packets and no smaller), generic mode."""

    def __init__(
        self,
        bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8,
        quality: Annotated[int, Range(0, 11)] = 9,
    ):
        super().__init__(bits)
        self.quality = quality

    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One raw brotli stream (smallest window: packets are small)."""
        return brotli.compress(self._raw(codes), quality=self.quality, lgwin=10)

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """Decompress one stream, at most one byte more than the packet's; it must be
        complete."""
        n = self._expected(rows, width)
        d = brotli.Decompressor()
        try:
            raw = d.process(payload, output_buffer_limit=n + 1)
        except brotli.error as e:
            raise PayloadError(f"brotli: {e}") from None
        if len(raw) > n:
            raise PayloadError(f"brotli: payload inflates to more than the packet's {n} bytes")
        if not d.is_finished():
            raise PayloadError("brotli: truncated payload")
        return self._codes(raw, rows, width)

    def __repr__(self) -> str:
        return f"BrotliCodec(bits={self.bits}, quality={self.quality})"


@register("codec", "lz4")
class Lz4Codec(_ByteCodec):
    """LZ4 blocks per packet, high-compression mode at level 12."""

    def __init__(self, bits: Annotated[int, Range(MIN_BITS, MAX_BITS)] = 8):
        super().__init__(bits)

    def encode_packet(self, codes: np.ndarray, side: dict) -> bytes:
        """One LZ4 block, high-compression mode, without a size prefix."""
        return lz4.block.compress(
            self._raw(codes), mode="high_compression", compression=12, store_size=False
        )

    def decode_packet(self, payload: bytes, rows: int, width: int, side: dict) -> np.ndarray:
        """Decompress one block to exactly the packet's bytes."""
        n = self._expected(rows, width)
        try:
            raw = lz4.block.decompress(payload, uncompressed_size=n)
        except lz4.block.LZ4BlockError as e:
            raise PayloadError(f"lz4: {e}") from None
        return self._codes(raw, rows, width)
