"""Batched SiLRTC/HaLRTC (torch, a few tensors at a time) against the plain per-tensor
reference (tensorly's unfold/fold and numpy), on real features and on awkward shapes."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from test_completion_methods import band_mask, low_rank_tensor

from dfsim import completion
from dfsim.completion.lowrank import DEFAULT_ALPHA, halrtc_reference, silrtc_reference


def reference(name: str, tensor, lost, max_iters: int, tol: float = 1e-4, alpha=None):
    """The per-tensor reference path, scaled as the methods scale (RMS of received entries)."""
    received = ~lost
    rms = float(np.sqrt(np.mean(np.square(tensor[received], dtype=np.float64))))
    scale = np.float32(rms if rms > 0 else 1.0)
    t = np.where(received, tensor, 0.0).astype(np.float32) / scale
    a = np.asarray(DEFAULT_ALPHA if alpha is None else alpha) / np.sum(alpha or DEFAULT_ALPHA)
    if name == "silrtc":
        x, k = silrtc_reference(t, received, a, 0.05, max_iters, tol)
    else:
        x, k = halrtc_reference(t, received, a, 0.01, 1.1, 1e4, max_iters, tol)
    return np.where(lost, x * scale, tensor), k


def reference_benchmark():
    """benchmarks/halrtc_vs_reference.py: the reference simulator's HaLRTC and the features."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "halrtc_vs_reference.py"
    spec = importlib.util.spec_from_file_location("halrtc_vs_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real():
    """12 test images' features of the default model at its default split (8-bit), with a
    Gilbert-Elliott loss pattern (30 %, mean burst 4) on 4-row packets."""
    return reference_benchmark().features(12, seed=3)


@pytest.mark.parametrize("name", ["silrtc", "halrtc"])
def test_batched_equals_the_per_tensor_reference_on_real_features(name, real):
    """50 iterations with the default tolerance: same iterations per tensor and the same
    values to 1e-5 relative (the batched path thresholds in float32 GEMMs with float32
    eigendecompositions; the reference eigendecomposes in float64)."""
    x, lost = real
    damaged = np.where(lost, 0, x).astype(np.float32)
    m = completion.make(name, max_iters=50)
    y = m.complete_batch(damaged, lost)
    iters = []
    for i in range(len(x)):
        ref, k = reference(name, damaged[i], lost[i], 50)
        iters.append(k)
        assert np.abs(y[i] - ref).max() <= 1e-5 * np.abs(ref).max(), (i, name)
        assert np.array_equal(y[i][~lost[i]], x[i][~lost[i]])
    assert m.iterations == iters
    # tensors stopped at different iterations: the batch lost members along the way
    assert len(set(iters)) > 1 or name == "silrtc"


@pytest.mark.parametrize("shape", [(40, 3, 5), (3, 40, 5), (2, 4, 30), (6, 6, 6)])
@pytest.mark.parametrize("name", ["silrtc", "halrtc"])
def test_batched_equals_reference_on_tall_and_wide_unfoldings(name, shape, rng):
    """Unfoldings taller than wide go through the Gram of their columns."""
    x = low_rank_tensor(rng, shape, rank=2) + 0.05 * rng.standard_normal(shape).astype(np.float32)
    lost = np.stack([rng.random(shape) < 0.3 for _ in range(3)])
    lost[1] = False  # nothing lost: untouched, 0 iterations
    xs = np.stack([x, x, 2 * x])
    damaged = np.where(lost, 0, xs).astype(np.float32)
    m = completion.make(name, max_iters=30, tol=1e-5)
    y = m.complete_batch(damaged, lost)
    assert m.iterations[1] == 0 and np.array_equal(y[1], damaged[1])
    for i in (0, 2):
        ref, k = reference(name, damaged[i], lost[i], 30, tol=1e-5)
        assert m.iterations[i] == k
        assert np.abs(y[i] - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("name", ["silrtc", "halrtc"])
def test_a_tensor_completes_the_same_alone_or_in_a_batch(name, rng):
    xs = np.stack([low_rank_tensor(rng) for _ in range(20)])
    lost = np.stack(
        [band_mask(xs.shape[1:], 2, [(c, (c + i) % 8) for c in range(5)]) for i in range(20)]
    )
    damaged = np.where(lost, 0, xs).astype(np.float32)
    m = completion.make(name, max_iters=40)
    batch = m.complete_batch(damaged, lost)
    iters = list(m.iterations)
    for i in (0, 7, 19):
        one = m.complete(damaged[i], lost[i])
        assert m.iterations == [iters[i]]
        np.testing.assert_allclose(one, batch[i], rtol=0, atol=1e-6 * np.abs(batch[i]).max())


def test_halrtc_is_at_least_as_accurate_as_the_reference_simulators(real):
    """On real features (GE 30 %, bursts of 4, 4-row packets) our HaLRTC's error on lost
    entries at 5 and at 50 iterations is no higher than the reference simulator's HaLRTC at
    50 iterations, with uniform or random mode weights; and lower than ours with uniform
    weights, which pull lost rows towards zero-fill through the width unfolding."""
    x, lost = real
    x, lost = x[:8], lost[:8]
    damaged = np.where(lost, 0, x).astype(np.float32)

    def mse(y):
        return float(np.mean(np.square(y - x)[lost]))

    weights = [(1, 1, 1), np.abs(np.random.default_rng(0).standard_normal(3))]
    dfts2 = reference_benchmark().dfts2_halrtc
    theirs = [
        mse(np.stack([dfts2(d, ~lo, 50, a)[-1] for d, lo in zip(damaged, lost, strict=True)]))
        for a in weights
    ]
    ours = {
        k: mse(completion.make("halrtc", max_iters=k).complete_batch(damaged, lost))
        for k in (5, 50)
    }
    uniform = mse(
        completion.make("halrtc", max_iters=50, alpha=[1, 1, 1]).complete_batch(damaged, lost)
    )
    zero_fill = mse(damaged)
    assert max(ours.values()) <= min(theirs), (ours, theirs)
    assert ours[50] < 0.9 * uniform < 0.9 * zero_fill, (ours, uniform, zero_fill)
