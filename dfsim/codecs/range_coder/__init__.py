"""``range``: entropy coding of the quantized values, packet by packet, with a byte-wise
rANS coder (numba) under a frequency table per image (sent as side information) or one
learned from training codes. A packet that would not come out shorter is sent raw, so no
payload exceeds the raw codec's.

The payload and side-information formats, and how the tables are chosen, are specified
in docs/reference/range-coder.md.

The modules:

* :mod:`~dfsim.codecs.range_coder.rans`: one packet through rANS, or packed raw;
* :mod:`~dfsim.codecs.range_coder.bitstrings`: gamma and Exp-Golomb bit strings;
* :mod:`~dfsim.codecs.range_coder.side_info`: tables written as side information, parsed;
* :mod:`~dfsim.codecs.range_coder.models`: the tables chosen per image or calibrated;
* :mod:`~dfsim.codecs.range_coder.batches`: many packets, each with its image's table;
* :mod:`~dfsim.codecs.range_coder.codec`: :class:`RangeCodec`, registered as ``range``.

Kernels are compiled with :func:`dfsim.kernels.njit`, whose cache stamp covers every module
of ``dfsim/codecs/``: editing any of them recompiles the kernels that could include it.
"""

from dfsim.codecs.range_coder.codec import RangeCodec
from dfsim.codecs.range_coder.models import MAX_CALIBRATED_SCALE
from dfsim.codecs.range_coder.rans import FLUSH_BYTES, STATE_BITS, STATE_HIGH, STATE_LOW
from dfsim.codecs.range_coder.side_info import (
    HEADER_BITS,
    MAX_SCALE,
    SIDE_KEY,
    worst_table_bits,
)

__all__ = [
    "FLUSH_BYTES",
    "HEADER_BITS",
    "MAX_CALIBRATED_SCALE",
    "MAX_SCALE",
    "SIDE_KEY",
    "STATE_BITS",
    "STATE_HIGH",
    "STATE_LOW",
    "RangeCodec",
    "worst_table_bits",
]
