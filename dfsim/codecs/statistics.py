"""Statistics of feature tensors and their quantized codes, the ones the feature-coding
papers quote: the non-zero rate (Chen et al.: lossless compressors end up near it), the
order-0 entropy of the codes, and Choi & Bajić's Table I similarity measures.

Table I (threshold T = 2): a value x "is near the most frequent values" (``AD_m``) when
``|x - m_i| < T`` for any of the tensor's 8 most frequent values m_i, i.e. it lies within
±1 of one of them; the share of such values is :func:`near_top_share`. The values that are
not are then tested, in this order, against their left, top, top-left, bottom-left and
top-right neighbours (``AD_l`` ... ``AD_tr``), each value counted once, under the first
test it passes; ``none`` is the rest (:func:`similarity_table`). Neighbours are taken
within the value's own channel (a value at a channel's border has no neighbour there and
fails that test).

Per-tensor functions take one tensor (any shape; codes are unsigned integers); the
``*_per_tensor`` and :func:`feature_statistics` helpers run them over a batch N x ... and
average.
"""

from __future__ import annotations

import numpy as np

SIMILARITY_KEYS = ("m", "l", "t", "tl", "bl", "tr", "none")
# neighbour offsets (rows, columns) in Table I's test order
_NEIGHBOURS = {"l": (0, -1), "t": (-1, 0), "tl": (-1, -1), "bl": (1, -1), "tr": (-1, 1)}


def nonzero_rate(x: np.ndarray) -> float:
    """Share of the entries of ``x`` that are not zero."""
    x = np.asarray(x)
    return float(np.count_nonzero(x)) / x.size if x.size else 0.0


def histogram(codes: np.ndarray) -> np.ndarray:
    """Counts of each code value 0 .. max (non-negative integers)."""
    codes = np.asarray(codes)
    if codes.dtype.kind not in "ui":
        raise ValueError(f"codes must be integers, got {codes.dtype}")
    flat = codes.reshape(-1).astype(np.int64, copy=False)
    if flat.size and flat.min() < 0:
        raise ValueError("codes must be non-negative")
    return np.bincount(flat)


def entropy(codes: np.ndarray) -> float:
    """Order-0 (empirical, memoryless) entropy of the codes, bits per element."""
    h = histogram(codes)
    p = h[h > 0] / max(int(h.sum()), 1)
    return float(-(p * np.log2(p)).sum()) if p.size else 0.0


def top_values(codes: np.ndarray, k: int = 8) -> np.ndarray:
    """The ``k`` most frequent code values, most frequent first (ties: smaller value
    first); fewer when fewer distinct values occur."""
    h = histogram(codes)
    order = np.argsort(-h, kind="stable")
    return order[: min(k, int(np.count_nonzero(h)))]


def near_top_share(codes: np.ndarray, k: int = 8, tolerance: int = 1) -> float:
    """Table I's ``AD_m^2``: the share of values within ±``tolerance`` of any of the
    tensor's ``k`` most frequent values."""
    h = histogram(codes)
    if not h.sum():
        return 0.0
    near = np.zeros(len(h), bool)
    for m in top_values(codes, k):
        near[max(m - tolerance, 0) : m + tolerance + 1] = True
    return float(h[near].sum() / h.sum())


def similarity_table(codes: np.ndarray, k: int = 8, threshold: int = 2) -> dict[str, float]:
    """Table I for one C x H x W tensor (a 2-D array is one channel): the share of values
    counted under ``m`` (near one of the ``k`` most frequent values), then ``l``, ``t``,
    ``tl``, ``bl``, ``tr`` (near that neighbour, in the same channel), else ``none``;
    ``|x - y| < threshold`` is "near". The shares add up to 1."""
    x = np.asarray(codes)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected a C x H x W tensor, got shape {x.shape}")
    n = x.size
    if not n:
        return dict.fromkeys(SIMILARITY_KEYS, 0.0)
    h = histogram(x)
    near = np.zeros(len(h), bool)
    for m in top_values(x, k):
        near[max(m - threshold + 1, 0) : m + threshold] = True
    left = ~near[x]
    out = {"m": 1.0 - float(left.sum()) / n}
    xi = x.astype(np.int32)
    _, rows, cols = x.shape
    for key, (dr, dc) in _NEIGHBOURS.items():
        hit = np.zeros(x.shape, bool)
        # position (r, c) has the neighbour (r + dr, c + dc) when both are inside the channel
        r0, r1 = max(0, -dr), rows - max(0, dr)
        c0, c1 = max(0, -dc), cols - max(0, dc)
        if r1 > r0 and c1 > c0:
            here = xi[:, r0:r1, c0:c1]
            there = xi[:, r0 + dr : r1 + dr, c0 + dc : c1 + dc]
            hit[:, r0:r1, c0:c1] = np.abs(here - there) < threshold
        hit &= left
        out[key] = float(hit.sum()) / n
        left &= ~hit
    out["none"] = float(left.sum()) / n
    return out


def per_tensor(fn, batch: np.ndarray) -> np.ndarray:
    """``fn`` applied to each tensor of a batch N x ..., as an array of N floats."""
    return np.array([fn(t) for t in batch], dtype=np.float64)


def feature_statistics(features: np.ndarray | None, codes: np.ndarray) -> dict:
    """Per-tensor statistics of a batch (``features`` N x ... float, may be None;
    ``codes`` N x C x H x W) and their means: ``nonzero_features``, ``nonzero_codes``,
    ``entropy`` (order-0, bits/element), ``near_top`` (Table I's AD_m^2) and
    ``similarity`` (the whole Table I row, averaged)."""
    codes = np.asarray(codes)
    per = {
        "nonzero_codes": per_tensor(nonzero_rate, codes),
        "entropy": per_tensor(entropy, codes),
        "near_top": per_tensor(near_top_share, codes),
    }
    if features is not None:
        per["nonzero_features"] = per_tensor(nonzero_rate, features)
    tables = [similarity_table(c) for c in codes]
    return {
        "per_tensor": {k: v.tolist() for k, v in per.items()},
        "mean": {k: float(v.mean()) if v.size else float("nan") for k, v in per.items()},
        "std": {k: float(v.std()) if v.size else float("nan") for k, v in per.items()},
        "similarity": {
            key: float(np.mean([t[key] for t in tables])) if tables else float("nan")
            for key in SIMILARITY_KEYS
        },
    }
