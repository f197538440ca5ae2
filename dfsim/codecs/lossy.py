"""Picture codecs on the network: lossy feature coding (HEVC, AVIF, JPEG XL, JPEG) and
lossless PNG, for features and for the camera's image (the cloud-only baseline).

Each codec has one rate knob, a grid key like every codec parameter (``hevc``: ``qp``,
0-51; the others: ``quality``), and ``bits``, the uniform quantizer's depth (the depths
the picture codec takes: see :mod:`dfsim.codecs.pictures`). Features are quantized per
tensor (min/max side information, as every codec) and then coded in one of two modes:

* ``mode: tensor`` (default): the whole tensor as one picture, its channels tiled
  (:mod:`dfsim.codecs.tiling`, Choi & Bajić's eq. 2), as in the paper. The codestream does
  not survive the loss of any of its parts, so it is cut into **fragments** that fit the
  MTU: every image's codestream into the same number K of near-equal fragments, K the
  fewest that fit every image of the run (the first fragment also carries the side
  information). ARQ and FEC work on fragments like on any packet. When a fragment is
  missing at the decoder (lost, late or corrupted), the tensor cannot be decoded:
  ``on_fragment_loss: lose-tensor`` marks all of it lost (the completion methods get
  nothing to work from), ``drop-image`` drops the image (the cloud gives no answer for it:
  a miss for every task metric).
* ``mode: packet``: packet-independent lossy coding. Each packet's rows (the layout of the
  ``packets`` section) are coded as their own small picture, so a lost packet loses only
  its rows, and completion works as with the lossless codecs; the rate this costs against
  whole-tensor coding is in the ``kbpi`` column of the two modes.

At the split point ``input`` (the cloud-only baseline) the codec codes the camera's image
itself: 8 bits, its own channels (one grey, or three RGB channels coded as a colour
picture), no quantizer and no side information.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Annotated, Literal

import numpy as np

from dfsim import cache
from dfsim.codecs.base import PacketBytes, PayloadError
from dfsim.codecs.pictures import CODERS, CodedPicture
from dfsim.codecs.quantizer import SIDE_INFO_BITS, Quantized, dequantize, quantize
from dfsim.codecs.tiling import tile, untile
from dfsim.registry import Range, register
from dfsim.stages import Encoded
from dfsim.transport.packets import PacketBatch, PacketLayout, depacketize, packetize

MODES = ("tensor", "packet")
ON_FRAGMENT_LOSS = ("lose-tensor", "drop-image")
DEFAULT_FRAGMENT_BYTES = 1460  # 1500-byte MTU less the default 40-byte header


class CameraImageError(ValueError):
    """What reached a codec at the split point ``input`` is not an 8-bit image."""


class PictureCodec:
    """Quantizer, then a picture codec, in ``tensor`` or ``packet`` mode (module docstring)."""

    coder_name = "picture"
    needs_fit = False

    def __init__(self, bits: int, knob: int | None, mode: str, on_fragment_loss: str):
        self.coder = CODERS[self.coder_name]()
        why = self.coder.available()
        if why:
            raise ValueError(f"codec {self.coder_name} {why}")
        if bits not in self.coder.depths:
            d = self.coder.depths
            depths = (
                f"{d[0]}-bit pictures only"
                if len(d) == 1
                else f"{d[0]}- to {d[-1]}-bit pictures"
                if d == tuple(range(d[0], d[-1] + 1))
                else f"{', '.join(map(str, d[:-1]))} or {d[-1]}-bit pictures"
            )
            raise ValueError(f"bits: {self.coder_name} codes {depths}, not {bits}-bit features")
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        if mode == "packet" and on_fragment_loss == "drop-image":
            raise ValueError(
                "on_fragment_loss: drop-image applies to mode tensor (in mode packet a lost "
                "packet loses only its rows, which completion fills)"
            )
        self.bits, self.knob, self.mode = int(bits), knob, mode
        self.on_fragment_loss = on_fragment_loss
        self.lossless = self.coder.lossless
        self.camera = False  # set by for_camera(): code the camera's image as it is
        self.fragment_bytes = DEFAULT_FRAGMENT_BYTES
        self.first_fragment_bytes = DEFAULT_FRAGMENT_BYTES - SIDE_INFO_BITS // 8

    # ---------------------------------------------------------------- configuration
    def for_camera(self) -> PictureCodec:
        """Code the camera's 8-bit image natively (split point ``input``)."""
        if self.bits != 8:
            raise ValueError(
                f"bits: the camera's images are 8-bit, coded as they are (got bits {self.bits})"
            )
        self.camera = True
        return self

    def set_fragments(self, payload_bytes: int, first_payload_bytes: int) -> None:
        """Fragment payload sizes: ``payload_bytes`` (the MTU less the header), and less
        for the first fragment, which also carries the side information."""
        self.fragment_bytes = int(payload_bytes)
        self.first_fragment_bytes = int(first_payload_bytes)

    @property
    def side_info_bits(self) -> int:
        return 0 if self.camera else SIDE_INFO_BITS

    @property
    def whole_tensor(self) -> bool:
        """Its packets are fragments of one codestream per image (``mode: tensor``): a
        missing one loses the whole tensor (what :func:`dfsim.testing.check_codec` holds
        the codec to)."""
        return self.mode == "tensor"

    @property
    def drops_images(self) -> bool:
        """An image whose tensor cannot be decoded is dropped (no answer from the cloud)."""
        return self.whole_tensor and self.on_fragment_loss == "drop-image"

    @property
    def code_dtype(self):
        return np.uint8 if self.bits <= 8 else np.uint16

    def max_payload_bits(self, rows: int, width: int) -> int | None:
        """Known only once encoded."""
        return None

    def describe_values(self) -> str:
        knob = f", {self.coder.knob} {self.knob}" if self.coder.knob else ""
        what = "the camera's image" if self.camera else f"{self.bits}-bit features"
        return f"{what} coded by {self.coder_name}{knob} ({self.mode} mode)"

    def fit(self, features, layout):
        return self

    # ---------------------------------------------------------------- coding
    def _codes(self, features: np.ndarray) -> tuple[np.ndarray, dict, int]:
        """The integer codes to code, the side information and its bits per image."""
        if self.camera:
            codes = np.rint(features)
            if codes.size and (codes.min() < 0 or codes.max() > 255):
                raise CameraImageError("the camera's image holds values outside 0-255")
            return codes.astype(np.uint8), {}, 0
        q = quantize(features, self.bits)
        return q.codes, {"vmin": q.vmin, "vmax": q.vmax}, SIDE_INFO_BITS

    def _picture(self, codes: np.ndarray) -> np.ndarray:
        """One C x H x W tensor -> the picture coded: the camera's grey or RGB image, or
        the tiled channels."""
        if self.camera and codes.shape[0] in (1, 3):
            return (
                codes[0] if codes.shape[0] == 1 else np.ascontiguousarray(codes.transpose(1, 2, 0))
            )
        return tile(codes)

    def _tensor(self, picture: np.ndarray, shape) -> np.ndarray:
        c, h, w = shape
        if self.camera and c in (1, 3):
            return picture[None] if c == 1 else picture.transpose(2, 0, 1)
        return untile(picture, c, h, w)

    def _values(self, codes: np.ndarray, side_info: dict) -> np.ndarray:
        if self.camera:
            return codes.astype(np.float32)
        return dequantize(Quantized(codes, side_info["vmin"], side_info["vmax"], self.bits))

    def encode(self, features: np.ndarray, layout: PacketLayout) -> Encoded:
        """Code the batch, through the on-disk cache: picture codecs are slow (x265 takes
        milliseconds a picture), and every process preparing the config would code it
        again. The cached ``encode_s`` is the time the coding took when it was done."""
        key = self._cache_key(features, layout)
        stored = cache.load_arrays("pictures", key)
        if stored is not None:
            try:
                return _from_arrays(stored, layout)
            except (KeyError, ValueError, IndexError) as exc:
                cache.discard(cache._path("pictures", key), "a cached coding", str(exc))
        encoded = self._encode(features, layout)
        cache.save_arrays("pictures", key, _to_arrays(encoded))
        return encoded

    def _cache_key(self, features: np.ndarray, layout: PacketLayout) -> str:
        f = np.ascontiguousarray(features, np.float32)
        return cache.key_of(
            codec=type(self).__name__,
            coder=_coder_settings(self.coder),
            bits=self.bits,
            knob=self.knob,
            mode=self.mode,
            camera=self.camera,
            fragments=(self.fragment_bytes, self.first_fragment_bytes),
            layout=(layout.rows_per_packet, layout.order) if self.mode == "packet" else None,
            shape=f.shape,
            features=hashlib.sha256(f.tobytes()).hexdigest(),
            version=1,
        )

    def _encode(self, features: np.ndarray, layout: PacketLayout) -> Encoded:
        t0 = time.perf_counter()
        codes, side, side_bits = self._codes(features)
        n = len(codes)
        if self.mode == "tensor":
            coded = [self.coder.encode(self._picture(c), self.bits, self.knob) for c in codes]
            payloads, bits = self._fragment(coded)
            shapes = [self._picture(codes[0]).shape] * n
        else:
            batch = packetize(codes, layout)
            rows = batch.header["nrows"]
            coded = [
                self.coder.encode(np.ascontiguousarray(p[:r]), self.bits, self.knob)
                for p, r in zip(batch.payload, rows, strict=True)
            ]
            payloads = PacketBytes.from_list([c.stream for c in coded])
            bits = payloads.sizes_bits().reshape(n, layout.packets_per_tensor)
            shapes = [(int(r), layout.width) for r in rows]
        return Encoded(
            n_images=n,
            side_info=side,
            side_info_bits=side_bits,
            payload_bits=bits,
            payloads=_Streams(payloads, coded, shapes, layout),
            encode_s=time.perf_counter() - t0,
        )

    def _fragment(self, coded: list[CodedPicture]) -> tuple[PacketBytes, np.ndarray]:
        """Each image's codestream cut into the same number K of near-equal fragments,
        K the fewest for which every fragment fits (the first one the tightest)."""
        room = min(self.fragment_bytes, self.first_fragment_bytes)
        if room < 1:
            raise ValueError("no room for a fragment within the MTU")
        k = max(1, max(math.ceil(len(c.stream) / room) for c in coded))
        chunks = []
        for c in coded:
            edges = np.linspace(0, len(c.stream), k + 1).round().astype(int)
            chunks += [c.stream[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
        payloads = PacketBytes.from_list(chunks)
        return payloads, payloads.sizes_bits().reshape(len(coded), k)

    def packet_lost(self, lost: np.ndarray, encoded: Encoded) -> np.ndarray:
        """Whether each packet (N x K) is among what could not be used."""
        streams = encoded.payloads
        if self.whole_tensor:
            whole = lost.reshape(len(lost), -1).all(axis=1)
            return np.repeat(whole[:, None], encoded.packets_per_image, axis=1)
        hdr = streams.layout.headers()
        return lost[:, hdr["channel"], hdr["row"], 0]

    def decode(self, encoded: Encoded, received: np.ndarray, side_info: dict):
        streams: _Streams = encoded.payloads
        layout = streams.layout
        n, k = encoded.n_images, encoded.packets_per_image
        received = np.asarray(received, bool).reshape(n, k)
        which = np.flatnonzero(received.reshape(-1))
        # a packet is used if it matches its CRC-32 and the length it was sent with (the
        # transport header's length field): a codestream that lacks bytes is not decoded
        sent = encoded.packet_bits().reshape(-1)[which] // 8
        same = np.diff(streams.bytes.offsets)[which] == sent
        usable = np.zeros(n * k, bool)
        usable[which[streams.bytes.intact(which) & same]] = True
        usable = usable.reshape(n, k)
        shape = (layout.channels, layout.height, layout.width)
        codes = np.zeros((n, *shape), self.code_dtype)
        if self.mode == "tensor":
            ok = usable.all(axis=1)
            for i in np.flatnonzero(ok):
                stream = b"".join(streams.bytes.payload(i * k + j) for j in range(k))
                try:
                    picture = self.coder.decode(
                        streams.coded[i], stream, self.bits, streams.shapes[i]
                    )
                except PayloadError:
                    ok[i] = False
                    continue
                codes[i] = self._tensor(picture, shape)
            lost = np.broadcast_to(~ok[:, None, None, None], codes.shape).copy()
        else:
            got = np.flatnonzero(usable.reshape(-1))
            hdr = np.tile(layout.headers(), n)
            hdr["image"] = np.repeat(np.arange(n, dtype=np.int32), k)
            rows = np.zeros((len(got), layout.rows_per_packet, layout.width), self.code_dtype)
            keep = np.ones(len(got), bool)
            for m, j in enumerate(got):
                try:
                    picture = self.coder.decode(
                        streams.coded[j], streams.bytes.payload(j), self.bits, streams.shapes[j]
                    )
                except PayloadError:
                    keep[m] = False
                    continue
                rows[m, : picture.shape[0]] = picture
            got, rows = got[keep], rows[keep]
            codes, lost = depacketize(PacketBatch(hdr[got], rows), n, layout)
        values = self._values(codes, side_info)
        values[lost] = 0.0
        return values, lost

    def __repr__(self) -> str:
        knob = f", {self.coder.knob}={self.knob}" if self.coder.knob else ""
        return f"{type(self).__name__}(bits={self.bits}{knob}, mode={self.mode!r})"


class _Streams:
    """A codec's encoded batch: the packets' bytes, each coded picture (its container),
    each picture's shape and the layout."""

    def __init__(self, data: PacketBytes, coded: list, shapes: list, layout: PacketLayout):
        self.bytes, self.coded, self.shapes, self.layout = data, coded, shapes, layout


def _coder_settings(coder) -> dict:
    """What determines a picture coder's output besides its inputs: its effort settings and
    the libraries' versions (cache keys)."""
    from importlib.metadata import PackageNotFoundError, version

    libs = {}
    for lib in ("pillow-heif", "imagecodecs", "opencv-python-headless"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = None
    effort = {k: getattr(coder, k) for k in ("preset", "speed", "effort") if hasattr(coder, k)}
    return {"name": coder.name, **effort, **libs}


def _to_arrays(encoded: Encoded) -> dict[str, np.ndarray]:
    """An encoded batch as arrays (for the cache)."""
    st: _Streams = encoded.payloads

    def joined(chunks: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.zeros(len(chunks) + 1, np.int64)
        np.cumsum([len(c) for c in chunks], out=offsets[1:])
        return np.frombuffer(b"".join(chunks), np.uint8), offsets

    streams, stream_at = joined([c.stream for c in st.coded])
    boxes, box_at = joined([c.container or b"" for c in st.coded])
    slices = [np.asarray(c.slices, np.int64).reshape(-1, 2) for c in st.coded]
    shapes = np.full((len(st.shapes), 3), -1, np.int64)
    for i, sh in enumerate(st.shapes):
        shapes[i, : len(sh)] = sh
    return {
        "data": st.bytes.data,
        "offsets": st.bytes.offsets,
        "payload_bits": np.asarray(encoded.payload_bits, np.int64),
        "side_info_bits": np.asarray(encoded.side_info_bits, np.int64),
        "encode_s": np.asarray(encoded.encode_s, np.float64),
        "streams": streams,
        "stream_at": stream_at,
        "boxes": boxes,
        "box_at": box_at,
        "has_box": np.array([c.container is not None for c in st.coded]),
        "slices": np.concatenate(slices) if slices else np.zeros((0, 2), np.int64),
        "slice_at": np.cumsum([0] + [len(x) for x in slices]).astype(np.int64),
        "shapes": shapes,
        **{f"side_{k}": v for k, v in encoded.side_info.items()},
    }


def _from_arrays(a: dict[str, np.ndarray], layout: PacketLayout) -> Encoded:
    """Inverse of :func:`_to_arrays`."""
    streams, boxes = a["streams"].tobytes(), a["boxes"].tobytes()
    sa, ba, la = a["stream_at"], a["box_at"], a["slice_at"]
    coded = [
        CodedPicture(
            streams[sa[i] : sa[i + 1]],
            boxes[ba[i] : ba[i + 1]] if a["has_box"][i] else None,
            tuple(tuple(int(v) for v in row) for row in a["slices"][la[i] : la[i + 1]]),
        )
        for i in range(len(a["has_box"]))
    ]
    shapes = [tuple(int(v) for v in row if v >= 0) for row in a["shapes"]]
    bits = a["payload_bits"]
    return Encoded(
        n_images=len(bits),
        side_info={
            k[5:]: v for k, v in a.items() if k.startswith("side_") and k != "side_info_bits"
        },
        side_info_bits=int(a["side_info_bits"]),
        payload_bits=bits,
        payloads=_Streams(PacketBytes(a["data"], a["offsets"]), coded, shapes, layout),
        encode_s=float(a["encode_s"]),
    )


Mode = Literal["tensor", "packet"]
OnFragmentLoss = Literal["lose-tensor", "drop-image"]


@register("codec", "hevc")
class HevcCodec(PictureCodec):
    """HEVC intra (x265, 4:0:0, CTU 16, constant ``qp``) on the quantized features."""

    coder_name = "hevc"

    def __init__(
        self,
        qp: Annotated[int, Range(0, 51)] = 27,
        bits: Annotated[int, Range(2, 16)] = 8,
        mode: Mode = "tensor",
        on_fragment_loss: OnFragmentLoss = "lose-tensor",
    ):
        super().__init__(bits, qp, mode, on_fragment_loss)


@register("codec", "avif")
class AvifCodec(PictureCodec):
    """AV1 intra / AVIF (libaom, speed 8) at ``quality`` 0-100."""

    coder_name = "avif"

    def __init__(
        self,
        quality: Annotated[int, Range(0, 100)] = 50,
        bits: Annotated[int, Range(2, 16)] = 8,
        mode: Mode = "tensor",
        on_fragment_loss: OnFragmentLoss = "lose-tensor",
    ):
        super().__init__(bits, quality, mode, on_fragment_loss)


@register("codec", "jpeg-xl")
class JpegXlCodec(PictureCodec):
    """JPEG XL (libjxl, effort 3) at ``quality`` 0-100 (100: lossless)."""

    coder_name = "jpeg-xl"

    def __init__(
        self,
        quality: Annotated[int, Range(0, 100)] = 75,
        bits: Annotated[int, Range(2, 16)] = 8,
        mode: Mode = "tensor",
        on_fragment_loss: OnFragmentLoss = "lose-tensor",
    ):
        super().__init__(bits, quality, mode, on_fragment_loss)
        self.lossless = int(quality) == 100  # libjxl's modular mode: the codes exactly


@register("codec", "jpeg")
class JpegCodec(PictureCodec):
    """Baseline JPEG (libjpeg-turbo) at ``quality`` 1-100; 8 bits only."""

    coder_name = "jpeg"

    def __init__(
        self,
        quality: Annotated[int, Range(1, 100)] = 75,
        bits: Annotated[int, Range(2, 16)] = 8,
        mode: Mode = "tensor",
        on_fragment_loss: OnFragmentLoss = "lose-tensor",
    ):
        super().__init__(bits, quality, mode, on_fragment_loss)


@register("codec", "png")
class PngCodec(PictureCodec):
    """Lossless PNG (zlib level 9): the cloud-only lossless point, or tiled features."""

    coder_name = "png"

    def __init__(
        self,
        bits: Annotated[int, Range(2, 16)] = 8,
        mode: Mode = "tensor",
        on_fragment_loss: OnFragmentLoss = "lose-tensor",
    ):
        super().__init__(bits, None, mode, on_fragment_loss)
