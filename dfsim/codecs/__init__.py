"""Codecs: how feature tensors become packet payloads and back.

A codec is a quantizer plus a payload coder, behind the :class:`~dfsim.stages.Codec`
interface, registered by name (``encoding: {codec: NAME, ...}`` in a scenario). Importing
this package registers the built-in ones:

* ``raw``: the uniform min/max quantizer (:mod:`dfsim.codecs.quantizer`) with fixed
  n-bit payloads.
"""

from dfsim.codecs import raw  # noqa: F401  (registers "raw")
from dfsim.codecs.quantizer import Quantized, dequantize, quantize

__all__ = ["Quantized", "dequantize", "quantize"]
