"""The palette codec's syntax: prediction modes, block scans, the context layout, the
contexts' initial probabilities and the bounds the coder's buffers are sized by.

Encoder and decoder both read these; changing one changes the format
(docs/reference/palette-format.md).
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.cabac import HALF

# prediction modes, in the order mode decisions break ties
PAL, HOR, VER, FIL1, FIL2 = 0, 1, 2, 3, 4
MODE_NAMES = ("Pal", "Hor", "Ver", "Fil1", "Fil2")
N_MODES = 5
PALETTE_SIZE = 8
# 3-tap filters: (top-left, top, left) / 32
FIL_TAPS = np.array([[3, 7, 22], [14, 0, 18]], np.int64)

# scans of a 4x4 block (positions r * 4 + c): horizontal, vertical, zig-zag
SCAN_HOR, SCAN_VER, SCAN_ZIG = 0, 1, 2
SCANS = np.array(
    [
        list(range(16)),
        [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15],
        [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15],
    ],
    np.int64,
)
MODE_SCAN = np.array([SCAN_ZIG, SCAN_HOR, SCAN_VER, SCAN_ZIG, SCAN_ZIG], np.int64)

# contexts: the first index of each group (and how many it has)
CTX_TU = 0  # 7: truncated unary j*
CTX_MPM = 7  # 1
CTX_MODE = 8  # 3: first bin, second bin given the first
CTX_SKIP = 11  # 3
CTX_SIG = 14  # 9: scan type x (significant left + top)
CTX_GT1 = 23  # 4
CTX_GT2 = 27  # 3: scan type
CTX_SIGN = 30  # 5: mode
CTX_PRE = 35  # 4: EGR prefix bin position
N_CTX = 39

RICE_RESET = 32  # the Rice statistics are halved when their count reaches this
# bins per value at most: significance, greater-1/2, sign, 4 prefix bins, an Exp-Golomb
# prefix and suffix of at most 18 each (remainders < 2^16), plus per block / tile: mode 3,
# SKIP 1, j* 7
BINS_PER_VALUE = 48
BINS_EXTRA = 64
EG_MAX_PREFIX = 24  # longer Exp-Golomb prefixes are never valid (remainders < 2^16)
MAX_CHECK_BITS = 16  # most hash bits a stream may end with

# per-block scratch of the tile coders: [0:80] 5 candidate residuals of 16 values,
# [80:96] the block's positions in scan order, [96:112] its significance map
WORK_SIZE = 112


def initial_probabilities() -> np.ndarray:
    """Initial P(bin = 1) of every context (16-bit): 1/2, except where a prior fitted
    once helped (coordinate search on an 11-value grid, minimising the bits of 4-row
    packets of 8-bit features of the default model, the Fashion-MNIST ResNet, at all
    five split points, test images 200-211); the adaptation then takes over."""
    p = np.full(N_CTX, HALF, np.int64)
    p[CTX_TU : CTX_TU + 7] = [43000, 57000, 51000, 57000, 51000, 43000, 43000]
    p[CTX_MPM] = 43000
    p[CTX_MODE : CTX_MODE + 3] = [43000, 43000, 1500]
    p[CTX_SKIP : CTX_SKIP + 3] = [8000, 32768, 32768]
    p[CTX_SIG : CTX_SIG + 9] = [32768, 51000, 61500, 43000, 57000, 61500, 32768, 51000, 57000]
    p[CTX_GT1 : CTX_GT1 + 4] = [57000, 57000, 43000, 32768]
    p[CTX_GT2 : CTX_GT2 + 3] = [51000, 51000, 57000]
    p[CTX_SIGN : CTX_SIGN + 5] = [1500, 22000, 32768, 32768, 64000]
    return p


INIT_PROB = initial_probabilities()
