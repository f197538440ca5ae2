"""The palette codec's functions on arrays: the per-image palette, packets coded and decoded
in batches or one at a time, and the whole-tensor stream. Arguments are checked here, so
the numba kernels behind them (:mod:`dfsim.codecs.palette.streams`) can trust them.
"""

from __future__ import annotations

import numpy as np

from dfsim.codecs.base import PayloadError
from dfsim.codecs.palette.streams import (
    count_palette_values,
    decode_packet_streams,
    decode_tensor_stream,
    encode_packet_streams,
    encode_tensor_stream,
    stable_sort_by_count,
)
from dfsim.codecs.palette.syntax import INIT_PROB, MAX_CHECK_BITS, PALETTE_SIZE
from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS


# ------------------------------------------------------------------------ checks
def _valid_bits(bits) -> int:
    if not (isinstance(bits, (int, np.integer)) and MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return int(bits)


def valid_check_bits(check_bits) -> int:
    """``check_bits`` as an int, or ValueError."""
    if not (isinstance(check_bits, (int, np.integer)) and 0 <= check_bits <= MAX_CHECK_BITS):
        raise ValueError(
            f"check_bits must be an integer in [0, {MAX_CHECK_BITS}], got {check_bits!r}"
        )
    return int(check_bits)


def _code_dtype(bits: int):
    return np.uint8 if bits <= 8 else np.uint16


def _as_codes(codes, bits: int, what: str) -> np.ndarray:
    a = np.asarray(codes)
    if a.dtype.kind not in "ui":
        raise ValueError(f"{what} must be integer codes, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > (1 << bits) - 1):
        raise ValueError(f"{what} hold values outside [0, {(1 << bits) - 1}] ({bits} bits)")
    return np.ascontiguousarray(a, dtype=np.uint16)


def _as_palettes(palettes, n: int, bits: int) -> np.ndarray:
    pal = np.ascontiguousarray(palettes, dtype=np.int64)
    if pal.shape != (n, PALETTE_SIZE):
        raise ValueError(f"palettes must be {n} x {PALETTE_SIZE}, got {pal.shape}")
    if pal.size and (pal.min() < 0 or pal.max() > (1 << bits) - 1):
        raise ValueError(f"palette values outside [0, {(1 << bits) - 1}] ({bits} bits)")
    return pal


# ------------------------------------------------------------------------ palette
def tensor_palette(codes: np.ndarray, bits: int | None = None) -> np.ndarray:
    """The palette of each tensor of ``codes`` (N x ...): its 8 most frequent values,
    most frequent first, ties to the smaller value; missing entries filled with the
    smallest absent values of ``[0, 2^bits)`` (``bits`` default: the largest code's bit
    length, at least 2); with ``2^bits < 8`` the values repeat cyclically. N x 8 int64."""
    a = np.asarray(codes)
    n = len(a)
    flat = a.reshape(n, -1)
    if bits is None:
        top = int(flat.max()) if flat.size else 0
        bits = max(MIN_BITS, top.bit_length())
    levels = 1 << int(bits)
    if flat.size and int(flat.max()) >= levels:
        raise ValueError(f"codes hold values outside [0, {levels - 1}] ({bits} bits)")
    out = np.zeros((n, PALETTE_SIZE), np.int64)
    k = min(PALETTE_SIZE, levels)
    for i in range(n):
        counts = np.bincount(flat[i], minlength=levels)
        out[i, :k] = np.argsort(-counts, kind="stable")[:k]  # ties: the smaller value
        for j in range(k, PALETTE_SIZE):
            out[i, j] = out[i, j - k]
    return out


def palette_side_bits(bits: int) -> int:
    """Side information per image: the 8 palette values, ``bits`` bits each."""
    return PALETTE_SIZE * bits


# ------------------------------------------------------------------------ packets
def encode_packets(
    packets: np.ndarray,
    nrows: np.ndarray,
    palettes: np.ndarray,
    bits: int,
    check_bits: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code P packets independently. ``packets``: P x r x w codes (rows past ``nrows[j]``
    ignored), ``palettes``: P x 8, each packet's image palette (:func:`tensor_palette`);
    ``check_bits``: a k-bit hash of the packet's values appended to each stream (k bypass
    bins; 0: none). Returns (data uint8: the payloads concatenated, offsets int64 P + 1,
    ideal bits float64 P: -sum log2 p of every bin under the adaptive model)."""
    bits = _valid_bits(bits)
    check_bits = valid_check_bits(check_bits)
    pk = _as_codes(packets, bits, "packets")
    if pk.ndim != 3:
        raise ValueError(f"packets must be P x rows x width, got shape {pk.shape}")
    nr = np.ascontiguousarray(nrows, dtype=np.int64).reshape(-1)
    if len(nr) != len(pk) or (len(nr) and (nr.min() < 0 or nr.max() > pk.shape[1])):
        raise ValueError("nrows must give each packet's valid rows (0 .. packets.shape[1])")
    pal = _as_palettes(palettes, len(pk), bits)
    return encode_packet_streams(pk, nr, pal, bits, check_bits, INIT_PROB)


def decode_ranges(data, starts, ends, nrows, width, palettes, bits, check_bits=0):
    """Decode the payloads ``data[starts[j]:ends[j]]`` (as :func:`decode_packets`; the
    codec decodes a subset of a batch's packets this way)."""
    bits = _valid_bits(bits)
    check_bits = valid_check_bits(check_bits)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    starts = np.ascontiguousarray(starts, dtype=np.int64).reshape(-1)
    ends = np.ascontiguousarray(ends, dtype=np.int64).reshape(-1)
    nr = np.ascontiguousarray(nrows, dtype=np.int64).reshape(-1)
    if not (len(starts) == len(ends) == len(nr)):
        raise ValueError("one (start, end, nrows) per packet")
    if len(nr) and (
        nr.min() < 0 or starts.min() < 0 or ends.max() > len(data) or (ends < starts).any()
    ):
        raise ValueError("offsets outside the data, or negative nrows")
    if width < 0:
        raise ValueError(f"width must be >= 0, got {width}")
    pal = _as_palettes(palettes, len(nr), bits)
    codes, ok = decode_packet_streams(
        data, starts, ends, nr, int(width), pal, bits, check_bits, INIT_PROB
    )
    return codes.astype(_code_dtype(bits), copy=False), ok


def decode_packets(
    data: np.ndarray,
    offsets: np.ndarray,
    nrows: np.ndarray,
    width: int,
    palettes: np.ndarray,
    bits: int,
    check_bits: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode P packets (payload j: ``data[offsets[j]:offsets[j + 1]]``) -> (codes
    P x max(nrows) x width, uint8 for bits <= 8 else uint16; ok P bool: False where a
    payload is detectably truncated or corrupted, its codes then zero). ``check_bits``
    as the packets were encoded with."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    return decode_ranges(data, offsets[:-1], offsets[1:], nrows, width, palettes, bits, check_bits)


def encode_packet(codes: np.ndarray, palette: np.ndarray, bits: int, check_bits: int = 0) -> bytes:
    """One packet (rows x width codes) -> its payload."""
    c = np.asarray(codes)
    pal = np.asarray(palette)[None]
    return encode_packets(c[None], [c.shape[0]], pal, bits, check_bits)[0].tobytes()


def decode_packet(
    payload: bytes, rows: int, width: int, palette: np.ndarray, bits: int, check_bits: int = 0
) -> np.ndarray:
    """One payload -> its codes (rows x width); :class:`PayloadError` if it cannot be."""
    data = np.frombuffer(bytes(payload), np.uint8)
    pal = np.asarray(palette)[None]
    codes, ok = decode_ranges(data, [0], [len(data)], [rows], width, pal, bits, check_bits)
    if not ok[0]:
        raise PayloadError("palette: the packet's payload cannot be decoded")
    return codes[0, :rows]


# ------------------------------------------------------------------------ whole tensor
def first_tile_order(codes: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``palette`` stably sorted by the frequency of its values in the first tile
    (channel 0): the order the whole-tensor stream sends it in."""
    first = np.asarray(codes[0]).ravel()
    counts = np.array([(first == v).sum() for v in palette], np.int64)
    return np.asarray(palette, np.int64)[np.argsort(-counts, kind="stable")]


def tile_palette_orders(codes: np.ndarray, bits: int) -> np.ndarray:
    """The palette order each tile (channel) of the whole-tensor stream is coded with
    (C x 8): the first tile's frequency order, then the update rule."""
    bits = _valid_bits(bits)
    c = _as_codes(codes, bits, "codes")
    pal = first_tile_order(c, tensor_palette(c[None], bits)[0]).copy()
    out = np.zeros((len(c), PALETTE_SIZE), np.int64)
    counts = np.zeros(PALETTE_SIZE, np.int64)
    for t in range(len(c)):
        if t > 0:
            stable_sort_by_count(pal, counts)
        out[t] = pal
        count_palette_values(c[t].astype(np.int64), c.shape[1], c.shape[2], pal, counts)
    return out


def encode_tensor(codes: np.ndarray, bits: int, check_bits: int = 0, return_ideal: bool = False):
    """Whole-tensor mode: one C x H x W tensor of codes -> one stream (palette included;
    ``check_bits`` hash bits of all the values at its end). With ``return_ideal``:
    (stream, ideal bits)."""
    bits = _valid_bits(bits)
    check_bits = valid_check_bits(check_bits)
    c = _as_codes(codes, bits, "codes")
    if c.ndim != 3 or min(c.shape) < 1:
        raise ValueError(f"codes must be a non-empty C x H x W tensor, got shape {c.shape}")
    pal = first_tile_order(c, tensor_palette(c[None], bits)[0])
    data, ideal = encode_tensor_stream(c, pal, bits, check_bits, INIT_PROB)
    return (data.tobytes(), float(ideal)) if return_ideal else data.tobytes()


def decode_tensor(
    payload: bytes, shape: tuple[int, int, int], bits: int, check_bits: int = 0
) -> np.ndarray:
    """Inverse of :func:`encode_tensor`; :class:`PayloadError` if it cannot be decoded."""
    bits = _valid_bits(bits)
    check_bits = valid_check_bits(check_bits)
    c, h, w = (int(s) for s in shape)
    if min(c, h, w) < 1:
        raise ValueError(f"shape must be a positive C x H x W, got {shape}")
    data = np.frombuffer(bytes(payload), np.uint8)
    out, ok = decode_tensor_stream(data, c, h, w, bits, check_bits, INIT_PROB)
    if not ok:
        raise PayloadError("palette: the tensor's stream cannot be decoded")
    return out.astype(_code_dtype(bits), copy=False)
