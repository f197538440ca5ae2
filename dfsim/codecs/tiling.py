"""Tiling (Choi & Bajić, eq. 2): the C channels of a quantized tensor side by side as one
2-D image, the form image codecs and the palette codec take.

``2^ceil(log2(C)/2)`` tiles across and ``2^floor(log2(C)/2)`` down (for C a power of two:
32 channels -> 8 x 4 tiles, 64 -> 8 x 8). When C is not a power of two the grid has
``2^ceil(log2 C)`` places and the unused tiles at the end are filled with ``fill``
(default 0); :func:`untile` drops them.
"""

from __future__ import annotations

import math

import numpy as np


def grid(channels: int) -> tuple[int, int]:
    """(tiles down, tiles across) for ``channels`` channels (eq. 2)."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    e = math.ceil(math.log2(channels)) if channels > 1 else 0
    return 2 ** (e // 2), 2 ** (e - e // 2)


def tile(codes: np.ndarray, fill: int = 0) -> np.ndarray:
    """One C x H x W tensor -> its tiled (rows*H) x (cols*W) image, channel c at tile
    (c // cols, c % cols), raster order."""
    c, h, w = codes.shape
    rows, cols = grid(c)
    out = np.full((rows * cols, h, w), fill, dtype=codes.dtype)
    out[:c] = codes
    return out.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def untile(image: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`tile`: the C x H x W tensor of a tiled image."""
    rows, cols = grid(channels)
    if image.shape != (rows * height, cols * width):
        raise ValueError(
            f"tiled image {image.shape} does not match {channels} tiles of {height}x{width}"
        )
    t = image.reshape(rows, height, cols, width).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(t.reshape(rows * cols, height, width)[:channels])
