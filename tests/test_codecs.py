import numpy as np
import pytest

from dfsim.encoding import SIDE_INFO_BITS, dequantize, quantize


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8, 10, 12, 16])
def test_round_trip_within_half_a_step(bits, rng):
    x = (rng.standard_normal((4, 8, 7, 5)) * rng.uniform(0.1, 30, size=(4, 1, 1, 1))).astype(np.float32)
    q = quantize(x, bits)
    assert q.codes.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert q.codes.max() <= 2**bits - 1
    xr = dequantize(q)
    step = (q.vmax - q.vmin) / (2**bits - 1)
    err = np.abs(xr - x).reshape(4, -1).max(axis=1)
    # half a step, plus float32 rounding of the values themselves
    assert np.all(err <= step / 2 + 4 * np.finfo(np.float32).eps * np.abs(x).reshape(4, -1).max(axis=1))
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


def test_payload_bits_counts_side_info():
    q = quantize(np.zeros((1, 32, 28, 28), np.float32), 8)
    assert q.payload_bits() == 32 * 28 * 28 * 8 + SIDE_INFO_BITS == 200_768


@pytest.mark.parametrize("bits", [1, 17, 8.0])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=r"\[2, 16\]"):
        quantize(np.zeros((1, 2, 2, 2), np.float32), bits)
