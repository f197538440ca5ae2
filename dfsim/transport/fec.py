"""Packet-level forward error correction: a systematic MDS erasure code over groups of
``k`` data packets with ``m`` parity packets (zfec's Reed-Solomon over GF(2^8)).

The network model only needs the code's defining property: a group of ``k'`` data
packets (``k' <= k``; an image's last group may be shorter) plus ``m`` parity packets is
decodable from **any** ``k'`` of them, and from no fewer. :func:`recoverable_groups`
states that rule for many groups at once, :func:`recoverable` for one group, and
:func:`decodable_at` gives when a group becomes decodable (its ``k'``-th usable arrival).
:func:`encode` / :func:`decode` run the real code on packet payloads, and the tests check
the rule against real decoding for every loss pattern of a group.
"""

from __future__ import annotations

import numpy as np
import zfec


def recoverable_groups(received_counts, group_sizes) -> np.ndarray:
    """Per group: can it be decoded, having received ``received_counts`` of its packets
    (data and parity together) when it has ``group_sizes`` data packets? Arrays broadcast."""
    return np.asarray(received_counts) >= np.asarray(group_sizes)


def recoverable(received: np.ndarray, n_data: int) -> bool:
    """Can a group with ``n_data`` data packets be decoded from the packets flagged in
    ``received`` (data then parity)?"""
    return bool(recoverable_groups(np.count_nonzero(received), n_data))


def decodable_at(
    times: np.ndarray, group: np.ndarray, group_sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whether and when each group becomes decodable, for every row of ``times``.

    ``times`` (rows x packets): when each packet became usable (``inf``: never);
    ``group``: each packet's group (``-1``: in none); ``group_sizes``: data packets per
    group. Returns ``ok`` and ``when`` (rows x groups): a group is decodable once its
    ``k'``-th usable packet is in (``when``; ``inf`` if never)."""
    n_groups = len(group_sizes)
    members = [np.flatnonzero(group == g) for g in range(n_groups)]
    width = max((len(c) for c in members), default=0)
    # each group's packets side by side, padded with a never-usable column
    index = np.full((n_groups, width), times.shape[1])
    for g, cols in enumerate(members):
        index[g, : len(cols)] = cols
    padded = np.concatenate([times, np.full((len(times), 1), np.inf)], axis=1)
    ordered = np.sort(padded[:, index], axis=2)  # rows x groups x width
    need = np.asarray(group_sizes, np.int64)
    when = np.take_along_axis(ordered, (need - 1)[None, :, None], axis=2)[:, :, 0]
    ok = recoverable_groups(np.isfinite(ordered).sum(axis=2), need)
    return ok, when


def _blocks(payloads: list[bytes]) -> tuple[list[bytes], int]:
    length = max(len(p) for p in payloads)
    return [p.ljust(length, b"\0") for p in payloads], length


def encode(payloads: list[bytes], m: int) -> list[bytes]:
    """The ``m`` parity blocks of a group (each as long as the longest payload)."""
    k = len(payloads)
    blocks, _ = _blocks(payloads)
    enc = zfec.Encoder(k, k + m)
    return [bytes(b) for b in enc.encode(blocks, tuple(range(k, k + m)))]


def decode(received: dict[int, bytes], k: int, m: int, lengths: list[int]) -> list[bytes]:
    """Rebuild the ``k`` data payloads (true ``lengths``) from any ``k`` received blocks,
    keyed by block number (0..k-1 data, k..k+m-1 parity)."""
    if len(received) < k:
        raise ValueError(f"{len(received)} blocks received, {k} needed")
    nums = [int(i) for i in sorted(received)[:k]]
    size = max(len(received[i]) for i in nums)
    blocks = [received[i].ljust(size, b"\0") for i in nums]
    out = zfec.Decoder(k, k + m).decode(tuple(blocks), tuple(nums))
    return [bytes(b)[:n] for b, n in zip(out, lengths, strict=False)]
