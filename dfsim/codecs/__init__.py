"""Codecs: how feature tensors become packet payloads and back.

A codec is a quantizer plus a payload coder, behind the :class:`~dfsim.stages.Codec`
interface, registered by name (``encoding: {codec: NAME, ...}`` in a scenario). Importing
this package registers the built-in ones:

* ``raw``: the uniform min/max quantizer (:mod:`dfsim.codecs.quantizer`) with fixed
  n-bit payloads;
* ``deflate``, ``zstd``, ``brotli``, ``lz4``: general-purpose compressors, packet by
  packet (:mod:`dfsim.codecs.compressors`);
* ``range``: entropy coding of the quantized values (:mod:`dfsim.codecs.range_coder`);
* ``palette``: Choi & Bajić's near-lossless palette/prediction codec
  (:mod:`dfsim.codecs.palette`);
* ``hevc``, ``avif``, ``jpeg-xl``, ``jpeg`` (lossy) and ``png``: picture codecs on the
  tiled tensor or on each packet's rows, and on the camera's image at the split point
  ``input`` (:mod:`dfsim.codecs.lossy`).

Codecs that code packets into bytes derive from :class:`~dfsim.codecs.base.PacketCodec`.
:mod:`dfsim.codecs.anchors` has whole-tensor image codecs for comparison only.
"""

import importlib

from dfsim.codecs import raw  # noqa: F401  (registers the default codec first)
from dfsim.codecs.base import PacketBytes, PacketCodec, PayloadError, TensorCode
from dfsim.codecs.quantizer import Quantized, dequantize, quantize

for _name in ("compressors", "range_coder", "palette", "lossy"):  # each registers its codecs
    importlib.import_module(f"dfsim.codecs.{_name}")

__all__ = [
    "PacketBytes",
    "PacketCodec",
    "PayloadError",
    "Quantized",
    "TensorCode",
    "dequantize",
    "quantize",
]
