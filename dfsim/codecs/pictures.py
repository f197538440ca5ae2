"""Image codecs that code one picture: the engines behind the lossy feature codecs and the
cloud-only baseline (:mod:`dfsim.codecs.lossy`).

Each :class:`PictureCoder` codes one picture (H x W monochrome, or H x W x 3 RGB for a
camera's colour image) at a bit depth and a rate setting (its *knob*), and decodes the
bytes a receiver got back into a picture. What is counted is the codestream; container
boxes are not:

* ``hevc``: x265 through pillow-heif, intra, monochrome 4:0:0 (RGB: 4:2:0), constant QP
  (``x265:qp``), CTU 16 as in Choi & Bajić, preset ``ultrafast`` and no thread pool
  (``x265:pools=none``: x265's thread-pool start-up otherwise dominates a small picture's
  time). 8 bits; 9 to 12 through x265's 12-bit profile. Counted: the parameter-set NAL
  units (with their 2-byte lengths) and the picture's length-prefixed NAL units; the HEIF
  boxes around them are not sent.
* ``avif``: AV1 intra through imagecodecs (libavif + libaom), ``quality`` 0-100, speed 8.
  A monochrome picture is coded as YUV 4:0:0 (given to libavif as grey RGB, which it
  converts without loss of the luma). Counted: the AV1 OBUs in the file's ``mdat``.
* ``jpeg-xl``: libjxl through imagecodecs, ``quality`` 0-100 (100: lossless), effort 3,
  bare codestream (no ISO-BMFF container).
* ``jpeg``: baseline JPEG (libjpeg-turbo through imagecodecs), ``quality`` 1-100, 8 bits
  only; the whole JFIF file is the codestream.
* ``png``: lossless PNG (OpenCV, zlib level 9), 8 and 16 bits; the whole file is counted.

For HEVC and AVIF the receiver gets the container from the encoder (the boxes a real
receiver would rebuild from the picture's size) and the received codestream is written
back into it before the real decoder (libde265, dav1d/libaom) runs: a codestream of the
wrong length, or one the decoder rejects, raises :class:`~dfsim.codecs.base.PayloadError`.
"""

from __future__ import annotations

import contextlib
import io
import struct
from dataclasses import dataclass

import numpy as np

from dfsim.codecs.base import PayloadError


@dataclass
class CodedPicture:
    """One coded picture: ``stream``, the counted bytes that travel; ``container``, the
    file the counted bytes were cut from (None when the stream is the whole file);
    ``slices``: where in ``container`` the stream's bytes lie, in order."""

    stream: bytes
    container: bytes | None = None
    slices: tuple[tuple[int, int], ...] = ()

    def rebuild(self, received: bytes) -> bytes:
        """The file to decode: ``received`` written back into the container."""
        if self.container is None:
            return received
        need = sum(e - s for s, e in self.slices)
        if len(received) != need:
            raise PayloadError(f"codestream of {len(received)} bytes, the container holds {need}")
        out, at = bytearray(self.container), 0
        for s, e in self.slices:
            out[s:e] = received[at : at + e - s]
            at += e - s
        return bytes(out)


class PictureCoder:
    """One picture codec. ``knob``: the name of its rate setting, with its range and
    default; ``depths``: the code bit depths it takes; ``lossless``: it never loses."""

    name = "picture"
    knob: str | None = None
    knob_range: tuple[int, int] = (0, 0)
    knob_default: int = 0
    depths: tuple[int, ...] = (8,)
    lossless = False
    colour = True  # can code an H x W x 3 camera image

    def available(self) -> str | None:
        """None when the library is there, else why not."""
        return None

    def encode(self, picture: np.ndarray, bits: int, knob: int | None) -> CodedPicture:
        raise NotImplementedError

    def decode_file(self, data: bytes, bits: int) -> np.ndarray:
        raise NotImplementedError

    def decode(self, coded: CodedPicture, received: bytes, bits: int, shape) -> np.ndarray:
        """The picture of ``received`` (the bytes that arrived for ``coded``); any failure
        of the decoder, or a picture of another shape, is a :class:`PayloadError`."""
        data = coded.rebuild(received)
        try:
            out = np.asarray(self.decode_file(data, bits))
        except PayloadError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged codestream: the packet is lost
            raise PayloadError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        if out.ndim == 3 and len(shape) == 2:
            out = out[..., 0]
        if out.shape != tuple(shape):
            raise PayloadError(f"{self.name}: decoded {out.shape}, expected {tuple(shape)}")
        return out


def imagecodecs_missing(codec: str) -> str | None:
    """None when imagecodecs has ``codec``, else why not (for ``available``)."""
    try:
        import imagecodecs
    except ImportError:
        return "needs imagecodecs (pip install imagecodecs)"
    if not getattr(imagecodecs, codec).available:
        return f"imagecodecs was built without {codec}"
    return None


def boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, box end) of the ISO-BMFF boxes in ``data[start:end]``;
    ValueError when they do not tile it."""
    end = len(data) if end is None else end
    off = start
    while off + 8 <= end:
        size, kind = struct.unpack(">I4s", data[off : off + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[off + 8 : off + 16])[0], 16
        elif size == 0:
            size = end - off
        if size < head or off + size > end:
            raise ValueError("malformed ISO-BMFF box structure")
        yield kind.decode("latin-1"), off + head, off + size
        off += size


def top_box(data: bytes, kind: str) -> tuple[int, int]:
    """(payload start, end) of the top-level box ``kind``; ValueError when there is none."""
    for k, s, e in boxes(data):
        if k == kind:
            return s, e
    raise ValueError(f"no {kind} box")


def hvcc(heif: bytes) -> tuple[int, list[tuple[int, int]]]:
    """A libheif HEIF file's HEVC configuration: the NAL length size of its ``mdat`` and
    where each parameter-set NAL unit of its ``hvcC`` box lies, its 2-byte length
    included (``heif[s + 2:e]`` is the unit); ValueError when there is no ``hvcC`` box."""
    ms, me = top_box(heif, "meta")
    i = heif.find(b"hvcC", ms, me)
    if i < 4:
        raise ValueError("no hvcC box")
    cfg = i + 4
    length_size = (heif[cfg + 21] & 3) + 1
    units, p = [], cfg + 23
    for _ in range(heif[cfg + 22]):  # arrays of parameter-set NAL units
        n = struct.unpack(">H", heif[p + 1 : p + 3])[0]
        p += 3
        for _ in range(n):
            ln = struct.unpack(">H", heif[p : p + 2])[0]
            units.append((p, p + 2 + ln))
            p += 2 + ln
    return length_size, units


class Hevc(PictureCoder):
    """HEVC intra, constant QP (x265 through pillow-heif)."""

    name = "hevc"
    knob, knob_range, knob_default = "qp", (0, 51), 27
    depths = (8, 9, 10, 11, 12)
    preset = "ultrafast"  # x265's speed preset (x265's own default: "medium")

    def available(self):
        try:
            import pillow_heif
        except ImportError:
            return "needs pillow-heif (pip install pillow-heif)"
        if not pillow_heif.libheif_info().get("encoders", {}).get("x265"):
            return "pillow-heif was built without the x265 encoder"
        return None

    def encode(self, picture, bits, knob):
        import pillow_heif

        h, w = picture.shape[:2]
        if picture.ndim == 3:
            mode, data, deep, chroma = "RGB", picture, False, 420
        elif bits <= 8:
            mode, data, deep, chroma = "L", picture, False, 444
        else:  # 9 to 12 bits: the top bits of a 16-bit image, stored at 12 bits
            shifted = picture.astype(np.uint16) << np.uint16(12 - bits + 4)
            mode, data, deep, chroma = "I;16", shifted.astype("<u2"), True, 444
        heif = pillow_heif.from_bytes(mode, (w, h), np.ascontiguousarray(data).tobytes())
        buf = io.BytesIO()
        params = {
            "preset": self.preset,
            "x265:qp": str(int(knob)),
            "x265:ctu": "16",
            "x265:pools": "none",
            "x265:log-level": "none",
        }
        saved = pillow_heif.options.SAVE_HDR_TO_12_BIT
        pillow_heif.options.SAVE_HDR_TO_12_BIT = deep
        try:
            heif.save(buf, quality=50, chroma=chroma, tile_size=0, enc_params=params)
        finally:
            pillow_heif.options.SAVE_HDR_TO_12_BIT = saved
        file = buf.getvalue()
        slices = [*hvcc(file)[1], top_box(file, "mdat")]
        stream = b"".join(file[s:e] for s, e in slices)
        return CodedPicture(stream, file, tuple(slices))

    def decode_file(self, data, bits):
        import pillow_heif

        f = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        out = np.asarray(f[0])
        if out.dtype == np.uint16:
            out = out >> np.uint16(12 - bits + 4)
        return out


class Avif(PictureCoder):
    """AV1 intra (libavif + libaom through imagecodecs), speed 8."""

    name = "avif"
    knob, knob_range, knob_default = "quality", (0, 100), 50
    depths = (8, 10, 12)
    speed = 8

    def available(self):
        return imagecodecs_missing("AVIF")

    def encode(self, picture, bits, knob):
        import imagecodecs

        mono = picture.ndim == 2
        # a 2-D picture is always coded losslessly by imagecodecs: give libavif grey RGB
        # and ask for 4:0:0, which keeps the luma only
        data = np.repeat(picture[..., None], 3, axis=2) if mono else picture
        file = imagecodecs.avif_encode(
            data,
            level=int(knob),
            speed=self.speed,
            bitspersample=bits if bits > 8 else None,
            pixelformat="400" if mono else None,
            numthreads=1,
        )
        file = bytes(file)
        s, e = top_box(file, "mdat")
        return CodedPicture(file[s:e], file, ((s, e),))

    def decode_file(self, data, bits):
        import imagecodecs

        return imagecodecs.avif_decode(data, numthreads=1)


class JpegXl(PictureCoder):
    """JPEG XL (libjxl through imagecodecs), effort 3, bare codestream."""

    name = "jpeg-xl"
    knob, knob_range, knob_default = "quality", (0, 100), 75
    depths = tuple(range(8, 17))
    effort = 3

    def available(self):
        return imagecodecs_missing("JPEGXL")

    def encode(self, picture, bits, knob):
        import imagecodecs

        data = imagecodecs.jpegxl_encode(
            picture,
            level=int(knob),
            lossless=int(knob) >= 100,  # level 100 alone is VarDCT, off by a code or two
            effort=self.effort,
            usecontainer=False,
            bitspersample=bits if picture.dtype == np.uint16 else None,
            numthreads=1,
        )
        return CodedPicture(bytes(data))

    def decode_file(self, data, bits):
        import imagecodecs

        return imagecodecs.jpegxl_decode(data, numthreads=1)


class Jpeg(PictureCoder):
    """Baseline JPEG (libjpeg-turbo through imagecodecs), 8 bits."""

    name = "jpeg"
    knob, knob_range, knob_default = "quality", (1, 100), 75
    depths = (8,)

    def available(self):
        return imagecodecs_missing("JPEG8")

    def encode(self, picture, bits, knob):
        import imagecodecs

        return CodedPicture(bytes(imagecodecs.jpeg8_encode(picture, level=int(knob))))

    def decode_file(self, data, bits):
        import imagecodecs

        # libjpeg decodes a file that stops short (grey where the data ran out) with only a
        # warning: a file without its end-of-image marker was cut, and is not decoded
        if not data.endswith(b"\xff\xd9"):
            raise PayloadError("jpeg: the file lacks its end-of-image marker (truncated)")
        return imagecodecs.jpeg8_decode(data)


class Png(PictureCoder):
    """Lossless PNG (OpenCV, zlib level 9)."""

    name = "png"
    depths = tuple(range(2, 17))
    lossless = True

    def encode(self, picture, bits, knob):
        import cv2

        ok, buf = cv2.imencode(".png", picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise RuntimeError("png: OpenCV could not encode the picture")
        return CodedPicture(buf.tobytes())

    def decode_file(self, data, bits):
        import cv2

        with contextlib.suppress(Exception):
            out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if out is not None:
                return out
        raise PayloadError("png: OpenCV cannot decode the file")


CODERS = {c.name: c for c in (Hevc, Avif, JpegXl, Jpeg, Png)}
