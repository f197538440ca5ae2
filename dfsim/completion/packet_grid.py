"""Helpers shared by packet-aware methods (ALTeC, CALTeC): row bands and per-packet loss."""
from __future__ import annotations

import numpy as np


def band_losses(lost: np.ndarray, rows_per_packet: int) -> np.ndarray:
    """Per-packet loss flags (... x C x P) from an entry mask (... x C x H x W).

    A packet (row band of one channel) counts as lost when any of its entries is lost,
    so a partly damaged band is never used as a predictor.
    """
    h = lost.shape[-2]
    bands = -(-h // rows_per_packet)
    pad = bands * rows_per_packet - h
    any_row = lost.any(axis=-1)
    if pad:
        any_row = np.concatenate([any_row, np.zeros(any_row.shape[:-1] + (pad,), bool)], axis=-1)
    return any_row.reshape(any_row.shape[:-1] + (bands, rows_per_packet)).any(axis=-1)
