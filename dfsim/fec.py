"""Packet-level forward error correction: a systematic MDS erasure code over groups of
``k`` data packets with ``m`` parity packets (zfec's Reed-Solomon over GF(2^8)).

The network model only needs the code's defining property: a group of ``k'`` data
packets (``k' <= k``; an image's last group may be shorter) plus ``m`` parity packets is
decodable from **any** ``k'`` of them, and from no fewer. :func:`recoverable` states that
rule; :func:`encode` / :func:`decode` run the real code on packet payloads, and the tests
check the rule against real decoding for every loss pattern of a group.
"""
from __future__ import annotations

import numpy as np
import zfec


def recoverable(received: np.ndarray, n_data: int) -> bool:
    """Can a group with ``n_data`` data packets be decoded from the packets flagged in
    ``received`` (data then parity)?"""
    return int(np.count_nonzero(received)) >= n_data


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
    return [bytes(b)[:n] for b, n in zip(out, lengths)]
