"""``palette``: the near-lossless deep-feature codec of Choi & Bajić (MMSP 2018, Sec. III):
per image a palette of its 8 most frequent values, per 4x4 block one of five predictions
(or SKIP), the residual's bins coded by the adaptive binary arithmetic coder of
:mod:`dfsim.codecs.cabac`. Packets are coded independently (what the network sends); the
paper's whole-tensor mode codes all channels as one stream.

The format, with every decision the paper leaves open, is specified in
docs/reference/palette-format.md.

The modules, in the order a reader follows a packet:

* :mod:`~dfsim.codecs.palette.syntax`: modes, scans, context layout, initial probabilities;
* :mod:`~dfsim.codecs.palette.blocks`: what both ends compute alike (predictions, most
  probable mode, Rice parameter);
* :mod:`~dfsim.codecs.palette.encoder` / :mod:`~dfsim.codecs.palette.decoder`: a tile's
  bins, the encoder's mode decision;
* :mod:`~dfsim.codecs.palette.streams`: packets one by one, the whole tensor, the hash;
* :mod:`~dfsim.codecs.palette.api`: the functions on arrays, their argument checks;
* :mod:`~dfsim.codecs.palette.codec`: :class:`PaletteCodec`, registered as ``palette``;
* :mod:`~dfsim.codecs.palette.probes`: intermediate results, for the tests.

Kernels are compiled with :func:`dfsim.kernels.njit`, whose cache stamp covers every module
of ``dfsim/codecs/``: editing any of them recompiles the kernels that could include it.
"""

from dfsim.codecs.palette.api import (
    decode_packet,
    decode_packets,
    decode_ranges,
    decode_tensor,
    encode_packet,
    encode_packets,
    encode_tensor,
    first_tile_order,
    palette_side_bits,
    tensor_palette,
    tile_palette_orders,
)
from dfsim.codecs.palette.blocks import block_residual, most_probable_mode
from dfsim.codecs.palette.codec import PaletteCodec
from dfsim.codecs.palette.encoder import (
    TAB_GT1,
    TAB_GT2,
    TAB_PRE,
    TAB_SIG,
    TAB_SIGN,
    TAB_SIZE,
)
from dfsim.codecs.palette.probes import remainder_bins, residual_round_trip, trace_packet
from dfsim.codecs.palette.streams import stable_sort_by_count
from dfsim.codecs.palette.syntax import (
    BINS_EXTRA,
    BINS_PER_VALUE,
    CTX_GT1,
    CTX_GT2,
    CTX_MODE,
    CTX_MPM,
    CTX_PRE,
    CTX_SIG,
    CTX_SIGN,
    CTX_SKIP,
    CTX_TU,
    EG_MAX_PREFIX,
    FIL1,
    FIL2,
    FIL_TAPS,
    HOR,
    INIT_PROB,
    MAX_CHECK_BITS,
    MODE_NAMES,
    MODE_SCAN,
    N_CTX,
    N_MODES,
    PAL,
    PALETTE_SIZE,
    RICE_RESET,
    SCAN_HOR,
    SCAN_VER,
    SCAN_ZIG,
    SCANS,
    VER,
)

# The names the tests reach the kernels by (this package was one module).
_decode_ranges = decode_ranges
_mpm = most_probable_mode
_remainder_bins = remainder_bins
_residual = block_residual
_residual_round_trip = residual_round_trip
_stable_sort_by_count = stable_sort_by_count
_trace_packet = trace_packet

__all__ = [
    "BINS_EXTRA",
    "BINS_PER_VALUE",
    "CTX_GT1",
    "CTX_GT2",
    "CTX_MODE",
    "CTX_MPM",
    "CTX_PRE",
    "CTX_SIG",
    "CTX_SIGN",
    "CTX_SKIP",
    "CTX_TU",
    "EG_MAX_PREFIX",
    "FIL1",
    "FIL2",
    "FIL_TAPS",
    "HOR",
    "INIT_PROB",
    "MAX_CHECK_BITS",
    "MODE_NAMES",
    "MODE_SCAN",
    "N_CTX",
    "N_MODES",
    "PAL",
    "PALETTE_SIZE",
    "RICE_RESET",
    "SCANS",
    "SCAN_HOR",
    "SCAN_VER",
    "SCAN_ZIG",
    "TAB_GT1",
    "TAB_GT2",
    "TAB_PRE",
    "TAB_SIG",
    "TAB_SIGN",
    "TAB_SIZE",
    "VER",
    "PaletteCodec",
    "decode_packet",
    "decode_packets",
    "decode_tensor",
    "encode_packet",
    "encode_packets",
    "encode_tensor",
    "first_tile_order",
    "palette_side_bits",
    "tensor_palette",
    "tile_palette_orders",
]
