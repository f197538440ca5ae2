"""Helpers shared by packet-aware methods (ALTeC, CALTeC): row bands and per-packet loss."""

from __future__ import annotations

import numpy as np

from dfsim.kernels import njit


@njit(cache=True)
def _band_any(lost, rows_per_packet, out):
    K, H, W = lost.shape
    for k in range(K):
        for h in range(H):
            b = h // rows_per_packet
            if out[k, b]:
                continue
            for w in range(W):
                if lost[k, h, w]:
                    out[k, b] = True
                    break


def band_losses(lost: np.ndarray, rows_per_packet: int) -> np.ndarray:
    """Per-packet loss flags (... x C x P) from an entry mask (... x C x H x W).

    A packet (row band of one channel) counts as lost when any of its entries is lost,
    so a partly damaged band is never used as a predictor.
    """
    lost = np.ascontiguousarray(lost, dtype=np.bool_)
    h, w = lost.shape[-2:]
    bands = -(-h // rows_per_packet)
    out = np.zeros(lost.shape[:-2] + (bands,), np.bool_)
    _band_any(lost.reshape(-1, h, w), rows_per_packet, out.reshape(-1, bands))
    return out
