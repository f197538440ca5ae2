"""The uniform quantizer and the raw codec (the conformance check runs in test_conformance)."""

import numpy as np
import pytest

from dfsim.codecs import dequantize, quantize
from dfsim.codecs.raw import RawCodec
from dfsim.packets import PacketLayout


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8, 10, 12, 16])
def test_round_trip_within_half_a_step(bits, rng):
    x = (rng.standard_normal((4, 8, 7, 5)) * rng.uniform(0.1, 30, size=(4, 1, 1, 1))).astype(
        np.float32
    )
    q = quantize(x, bits)
    assert q.codes.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert q.codes.max() <= 2**bits - 1
    xr = dequantize(q)
    step = (q.vmax - q.vmin) / (2**bits - 1)
    err = np.abs(xr - x).reshape(4, -1).max(axis=1)
    # half a step, plus float32 rounding of the values themselves
    assert np.all(
        err <= step / 2 + 4 * np.finfo(np.float32).eps * np.abs(x).reshape(4, -1).max(axis=1)
    )
    # extremes are reproduced exactly by the codes 0 and 2^n - 1
    assert np.all(q.codes.reshape(4, -1).min(axis=1) == 0)
    assert np.all(q.codes.reshape(4, -1).max(axis=1) == 2**bits - 1)


def test_min_max_are_per_tensor_not_per_batch(rng):
    a = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    b = 100 * rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    alone = quantize(a, 8)
    together = quantize(np.concatenate([a, b]), 8)
    assert np.array_equal(alone.codes[0], together.codes[0])
    assert alone.vmin[0] == together.vmin[0] and alone.vmax[0] == together.vmax[0]


def test_constant_tensor():
    x = np.full((2, 3, 4, 4), 1.5, np.float32)
    q = quantize(x, 8)
    assert np.all(q.codes == 0)
    assert np.array_equal(dequantize(q), x)


def test_raw_payloads_count_bits_per_value_and_side_info_per_tensor(rng):
    layout = PacketLayout.for_shape((32, 28, 28), 4)
    enc = RawCodec(8).encode(rng.standard_normal((2, 32, 28, 28)).astype(np.float32), layout)
    assert enc.payload_bits.sum() + enc.side_info_bits == 32 * 28 * 28 * 8 + 64 == 200_768
    assert len(enc.payload_bits) == 224 and set(enc.payload_bits) == {4 * 28 * 8}
    assert set(enc.side_info) == {"vmin", "vmax"} and len(enc.side_info["vmin"]) == 2
    short = RawCodec(6).encode(
        np.zeros((1, 2, 7, 5), np.float32), PacketLayout.for_shape((2, 7, 5), 3)
    )
    assert short.payload_bits.tolist() == [3 * 5 * 6, 3 * 5 * 6, 3 * 5 * 6, 3 * 5 * 6, 5 * 6, 5 * 6]


def test_raw_decodes_received_packets_with_substitute_side_info(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    layout = PacketLayout.for_shape((3, 4, 4), 2)
    codec = RawCodec(8)
    enc = codec.encode(x, layout)
    received = np.ones((2, layout.packets_per_tensor), bool)
    received[1, 0] = False
    values, lost = codec.decode(enc, received, enc.side_info)
    assert lost.sum() == 2 * 4 and np.all(values[lost] == 0)
    assert np.array_equal(values[0], dequantize(quantize(x, 8))[0])
    swapped = {k: v[::-1].copy() for k, v in enc.side_info.items()}  # image 0 gets image 1's range
    other, _ = codec.decode(enc, received, swapped)
    assert not np.array_equal(other[0], values[0])


@pytest.mark.parametrize("bits", [1, 17, 8.0])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=r"\[2, 16\]"):
        quantize(np.zeros((1, 2, 2, 2), np.float32), bits)
