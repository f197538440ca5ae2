"""Reference coders for comparisons only (never used on the network): lossless image codecs
on the tiled feature image, and general-purpose byte compressors on the raw code bytes.

Image anchors (:func:`image_anchors`) code one 2-D image, normally
:func:`dfsim.codecs.tiling.tile` of a quantized C x H x W tensor, the way Choi & Bajić
compare their palette codec with HEVC, PNG, JPEG2000 and JPEG:

* ``png``: OpenCV's PNG writer, zlib level 9 (8 and 16 bits).
* ``jpeg-xl``: libjxl through imagecodecs, ``lossless=True`` (modular mode), effort 7
  (libjxl's default), bare codestream without the ISO-BMFF container (8 and 16 bits).
* ``jpeg2000``: OpenJPEG through imagecodecs, reversible 5/3 wavelet, one J2K codestream
  without the JP2 boxes (8 and 16 bits).
* ``hevc``: x265 through pillow-heif with ``quality=-1`` (x265's lossless mode: transform
  and quantization bypassed), one monochrome (4:0:0) picture, no grid tiling. What is
  counted is the HEVC elementary stream (Annex B: parameter sets plus the picture's NAL
  units, 4-byte start codes) taken out of the HEIF file; the HEIF boxes (about 360 bytes)
  are left out. The round trip is checked by decoding the HEIF file (libde265). 8 bits;
  9 to 12 bits through x265's 12-bit profile (codes shifted into the top bits of a 16-bit
  image, which libheif shifts back down); more than 12 bits is not supported.
* ``jpeg-lossless``: lossless JPEG (ITU-T T.81 process 14, predictive + Huffman) through
  imagecodecs' ljpeg coder (2 to 16 bits).

Byte compressors (:func:`byte_compressors`, Chen et al.'s lossless baselines) code the
tensor's bytes as they lie in memory (C x H x W order; little-endian uint16 above 8 bits)
at their highest level: ``gzip`` (level 9, no file name, mtime 0), ``zlib`` (level 9),
``bz2`` (level 9) and ``lzma`` (xz container, LZMA2 preset 9 with the dictionary no larger
than the input, which gives the same stream size as plain preset 9, only faster).

Every :meth:`Anchor.encode` decodes what it produced and raises :class:`LosslessError`
unless the round trip is bit-exact, so every number quoted from an anchor is from a
verified lossless coding.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib

import numpy as np

from dfsim.codecs.pictures import boxes, hvcc, imagecodecs_missing
from dfsim.codecs.tiling import tile


class LosslessError(RuntimeError):
    """An anchor's output did not decode to exactly its input."""


class AnchorUnavailable(RuntimeError):
    """The library an anchor needs is not installed, or it cannot code this bit depth."""


def _code_bits(image: np.ndarray, bits: int | None) -> int:
    """The bit depth of the codes: ``bits`` if given, else 8 for uint8 and 16 for uint16."""
    if bits is not None:
        return int(bits)
    return 8 if image.dtype == np.uint8 else 16


def _check_image(image: np.ndarray, bits: int | None) -> tuple[np.ndarray, int]:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"an image anchor codes one 2-D image, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image anchors code uint8 or uint16 images, got {image.dtype}")
    b = _code_bits(image, bits)
    if not 1 <= b <= 8 * image.itemsize:
        raise ValueError(f"bits={b} does not fit a {image.dtype} image")
    if b < 8 * image.itemsize and image.size and int(image.max()) >> b:
        raise ValueError(f"image values exceed {b} bits")
    return np.ascontiguousarray(image), b


class Anchor:
    """A lossless reference coder. ``encode`` returns the bytes that are counted and
    checks the round trip; ``max_bits``: the deepest codes it takes."""

    name = "anchor"
    description = ""
    max_bits = 16

    def available(self) -> str | None:
        """None when the anchor can run, else why not."""
        return None

    def supports(self, bits: int) -> bool:
        """Whether codes of ``bits`` bits can be coded losslessly."""
        return 1 <= bits <= self.max_bits and self.available() is None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ImageAnchor(Anchor):
    """A lossless image codec applied to one 2-D uint8/uint16 image."""

    def encode(self, image: np.ndarray, bits: int | None = None) -> bytes:
        """Code ``image`` (2-D; ``bits``: its code depth, default the dtype's), decode the
        result and raise :class:`LosslessError` unless it is bit-exact."""
        image, b = _check_image(image, bits)
        why = self.available()
        if why:
            raise AnchorUnavailable(f"{self.name}: {why}")
        if b > self.max_bits:
            raise AnchorUnavailable(f"{self.name}: codes of {b} bits (at most {self.max_bits})")
        data, check = self._encode(image, b)
        got = self._decode_check(check)
        if got.shape != image.shape or got.dtype != image.dtype or not np.array_equal(got, image):
            raise LosslessError(f"{self.name}: the round trip is not bit-exact")
        return data

    def decode(self, data: bytes) -> np.ndarray:
        """The image coded in ``data`` (what :meth:`encode` returned)."""
        return self._decode_check(data)

    # subclasses: (counted bytes, bytes to decode for the check) and the decoder
    def _encode(self, image: np.ndarray, bits: int) -> tuple[bytes, bytes]:
        raise NotImplementedError

    def _decode_check(self, data: bytes) -> np.ndarray:
        raise NotImplementedError


class Png(ImageAnchor):
    """PNG through OpenCV at compression level 9."""

    name = "png"
    description = "PNG (OpenCV, zlib level 9)"

    def _encode(self, image, bits):
        import cv2

        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise LosslessError("png: OpenCV could not encode the image")
        data = buf.tobytes()
        return data, data

    def _decode_check(self, data):
        import cv2

        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


class JpegXl(ImageAnchor):
    """JPEG XL lossless (libjxl modular mode), effort 7, bare codestream."""

    name = "jpeg-xl"
    description = "JPEG XL lossless (libjxl, effort 7, codestream)"
    effort = 7

    def available(self):
        return imagecodecs_missing("JPEGXL")

    def _encode(self, image, bits):
        import imagecodecs

        data = imagecodecs.jpegxl_encode(
            image,
            lossless=True,
            effort=self.effort,
            usecontainer=False,
            bitspersample=bits if image.dtype == np.uint16 else None,
            numthreads=1,
        )
        return data, data

    def _decode_check(self, data):
        import imagecodecs

        return imagecodecs.jpegxl_decode(data)


class Jpeg2000(ImageAnchor):
    """JPEG 2000 with the reversible 5/3 wavelet (OpenJPEG), J2K codestream."""

    name = "jpeg2000"
    description = "JPEG 2000 reversible 5/3 (OpenJPEG, J2K codestream)"

    def available(self):
        return imagecodecs_missing("JPEG2K")

    def _encode(self, image, bits):
        import imagecodecs

        data = imagecodecs.jpeg2k_encode(
            image,
            reversible=True,
            codecformat="j2k",
            bitspersample=bits if image.dtype == np.uint16 else None,
            numthreads=1,
        )
        return data, data

    def _decode_check(self, data):
        import imagecodecs

        return imagecodecs.jpeg2k_decode(data)


class JpegLossless(ImageAnchor):
    """Lossless JPEG (ITU-T T.81 process 14: DPCM prediction + Huffman)."""

    name = "jpeg-lossless"
    description = "lossless JPEG (T.81 process 14, imagecodecs ljpeg)"

    def available(self):
        return imagecodecs_missing("LJPEG")

    def _encode(self, image, bits):
        import imagecodecs

        data = imagecodecs.ljpeg_encode(image, bitspersample=max(bits, 2))
        return data, data

    def _decode_check(self, data):
        import imagecodecs

        return imagecodecs.ljpeg_decode(data)


def heif_to_annexb(heif: bytes) -> bytes:
    """The HEVC elementary stream (Annex B, 4-byte start codes) of a single-image HEIF file
    written by libheif: the parameter sets from its ``hvcC`` box, then the picture's NAL
    units from ``mdat``."""
    try:
        top = {k: (s, e) for k, s, e in boxes(heif)}
        if "meta" not in top or "mdat" not in top:
            raise ValueError("HEIF file without meta or mdat box")
        length_size, units = hvcc(heif)
    except ValueError as exc:
        raise LosslessError(f"hevc: {exc}") from None
    start = b"\x00\x00\x00\x01"
    out = []
    for p, e in units:  # the parameter sets
        out += [start, heif[p + 2 : e]]
    s, e = top["mdat"]
    while s < e:  # length-prefixed NAL units of the one picture
        ln = int.from_bytes(heif[s : s + length_size], "big")
        s += length_size
        if ln == 0 or s + ln > e:
            raise LosslessError("hevc: malformed NAL units in mdat")
        out += [start, heif[s : s + ln]]
        s += ln
    return b"".join(out)


def hevc_config(heif: bytes) -> dict:
    """The chroma format (0: monochrome 4:0:0) and luma bit depth recorded in a HEIF
    file's ``hvcC`` box."""
    i = heif.find(b"hvcC")
    cfg = heif[i + 4 :]
    return {"chroma_format": cfg[16] & 3, "bit_depth": (cfg[17] & 7) + 8}


class Hevc(ImageAnchor):
    """HEVC lossless (x265 ``quality=-1`` through pillow-heif), monochrome, one picture."""

    name = "hevc"
    description = "HEVC lossless (x265 via pillow-heif, 4:0:0, Annex-B stream)"
    max_bits = 12

    def available(self):
        try:
            import pillow_heif
        except ImportError:
            return "needs pillow-heif (pip install pillow-heif)"
        if not pillow_heif.libheif_info().get("encoders", {}).get("x265"):
            return "pillow-heif was built without the x265 encoder"
        return None

    def heif(self, image: np.ndarray, bits: int) -> bytes:
        """The HEIF file x265 makes of ``image`` (lossless, monochrome, no grid)."""
        import pillow_heif

        if image.dtype == np.uint8:
            mode, data, deep = "L", image, False
        else:  # 9 to 12 bits: the top bits of a 16-bit image, stored at 12 bits
            mode, data, deep = "I;16", (image << np.uint16(16 - 12)).astype("<u2"), True
        heif = pillow_heif.from_bytes(mode, (image.shape[1], image.shape[0]), data.tobytes())
        buf = io.BytesIO()
        saved = pillow_heif.options.SAVE_HDR_TO_12_BIT
        pillow_heif.options.SAVE_HDR_TO_12_BIT = deep
        try:
            heif.save(buf, quality=-1, chroma=444, tile_size=0)
        finally:
            pillow_heif.options.SAVE_HDR_TO_12_BIT = saved
        return buf.getvalue()

    def _encode(self, image, bits):
        if image.dtype == np.uint16 and bits > 12:
            raise AnchorUnavailable(f"hevc: codes of {bits} bits (x265 codes at most 12)")
        heif = self.heif(image, bits)
        return heif_to_annexb(heif), heif

    def _decode_check(self, data):
        import pillow_heif

        f = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        out = np.asarray(f[0])
        if out.ndim == 3:
            out = out[..., 0]
        if out.dtype == np.uint16:
            out = out >> np.uint16(16 - 12)
        return np.ascontiguousarray(out)

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a HEIF file from :meth:`heif` (the counted Annex-B stream alone is not
        decodable here: pillow-heif reads HEIF files only)."""
        return self._decode_check(data)


class ByteCompressor(Anchor):
    """A general-purpose lossless compressor applied to an array's raw bytes."""

    def encode(self, codes: np.ndarray) -> bytes:
        """Compress ``codes.tobytes()`` (C order; uint16 little-endian), decompress and
        raise :class:`LosslessError` unless the bytes come back exactly."""
        raw = np.ascontiguousarray(codes, dtype=np.asarray(codes).dtype.newbyteorder("<")).tobytes()
        data = self._compress(raw)
        if self._decompress(data) != raw:
            raise LosslessError(f"{self.name}: the round trip is not bit-exact")
        return data

    def decode(self, data: bytes, shape, dtype) -> np.ndarray:
        """The array of ``shape`` and ``dtype`` compressed in ``data``."""
        dt = np.dtype(dtype).newbyteorder("<")
        return np.frombuffer(self._decompress(data), dt).reshape(shape).astype(dtype)

    def _compress(self, raw: bytes) -> bytes:
        raise NotImplementedError

    def _decompress(self, data: bytes) -> bytes:
        raise NotImplementedError


class Gzip(ByteCompressor):
    """GZIP (DEFLATE in the gzip container), level 9, mtime 0."""

    name = "gzip"
    description = "gzip level 9"

    def _compress(self, raw):
        return gzip.compress(raw, compresslevel=9, mtime=0)

    def _decompress(self, data):
        return gzip.decompress(data)


class Zlib(ByteCompressor):
    """ZLIB (DEFLATE in the zlib container), level 9."""

    name = "zlib"
    description = "zlib level 9"

    def _compress(self, raw):
        return zlib.compress(raw, 9)

    def _decompress(self, data):
        return zlib.decompress(data)


class Bzip2(ByteCompressor):
    """BZIP2 (Burrows-Wheeler), level 9."""

    name = "bz2"
    description = "bzip2 level 9"

    def _compress(self, raw):
        return bz2.compress(raw, 9)

    def _decompress(self, data):
        return bz2.decompress(data)


class Lzma(ByteCompressor):
    """LZMA2 in the xz container, preset 9 (dictionary sized to the input)."""

    name = "lzma"
    description = "lzma (xz) preset 9"

    def _compress(self, raw):
        # Preset 9's settings with the dictionary cut to the input's size: the same stream
        # (a dictionary larger than the input is never used), without allocating preset 9's
        # 64 MiB dictionary at every call.
        dict_size = min(max(len(raw), 1 << 12), 1 << 26)
        return lzma.compress(
            raw, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dict_size}]
        )

    def _decompress(self, data):
        return lzma.decompress(data)


_IMAGE_ANCHORS = (Png, JpegXl, Jpeg2000, Hevc, JpegLossless)
_BYTE_COMPRESSORS = (Gzip, Zlib, Bzip2, Lzma)


def image_anchors() -> dict[str, ImageAnchor]:
    """Every image anchor by name (including those whose library is missing: see
    :meth:`Anchor.available`)."""
    return {cls.name: cls() for cls in _IMAGE_ANCHORS}


def byte_compressors() -> dict[str, ByteCompressor]:
    """The four general-purpose compressors by name: gzip, zlib, bz2, lzma."""
    return {cls.name: cls() for cls in _BYTE_COMPRESSORS}


def anchor(name: str) -> Anchor:
    """One image anchor or byte compressor by name."""
    every = {**image_anchors(), **byte_compressors()}
    if name not in every:
        raise ValueError(f"unknown anchor {name!r} (one of {', '.join(every)})")
    return every[name]


def tiled_bits(anchor: ImageAnchor, codes: np.ndarray, bits: int | None = None) -> int:
    """Bits ``anchor`` spends on the tiled image of one quantized C x H x W tensor
    (verified lossless)."""
    return 8 * len(anchor.encode(tile(codes), bits))
