"""Method-specific behaviour: each method recovers what its model says it can."""

import numpy as np
import pytest

from dfsim import completion
from dfsim.completion.lowrank import svt
from dfsim.transport.packets import PacketLayout


def band_mask(shape, rows, lost_packets):
    layout = PacketLayout.for_shape(shape, rows, "row-major")
    flags = np.zeros(layout.packets_per_tensor, bool)
    hdr = layout.headers()
    for c, band in lost_packets:
        flags[np.flatnonzero((hdr["channel"] == c) & (hdr["row"] == band * rows))] = True
    return layout.lost_mask(flags)[0]


def test_zeros_sets_lost_entries_to_zero(rng):
    x = rng.standard_normal((3, 8, 5)).astype(np.float32)
    lost = band_mask(x.shape, 2, [(0, 1), (2, 3)])
    y = completion.make("zeros").complete(x, lost)
    assert np.all(y[lost] == 0) and np.array_equal(y[~lost], x[~lost])


def test_linear_is_exact_on_a_vertical_ramp_and_replicates_edges():
    h = np.arange(12, dtype=np.float32)
    x = np.broadcast_to((3 * h - 1)[None, :, None], (2, 12, 4)).copy()
    lost = np.zeros(x.shape, bool)
    lost[0, 4:8] = True  # interior: exact
    lost[1, 9:] = True  # bottom edge: replicate row 8
    y = completion.make("linear").complete(x, lost)
    assert np.allclose(y[0], x[0])
    assert np.all(y[1, 9:] == x[1, 8])


def test_svt_matches_numpy_svd_and_clamps_at_zero(rng):
    m = rng.standard_normal((7, 30)).astype(np.float32)
    s = np.linalg.svd(m, compute_uv=False)
    tau = float(s[2]) + 1e-3  # keeps two singular values
    u, s_, vt = np.linalg.svd(m.astype(np.float64), full_matrices=False)
    expected = (u * np.clip(s_ - tau, 0, None)) @ vt
    for mat, exp in ((m, expected), (m.T, expected.T)):
        out = svt(mat, tau)
        assert np.allclose(out, exp, atol=1e-4)
        assert np.linalg.matrix_rank(out, tol=1e-3) == 2
    assert np.all(svt(m, float(s[0]) + 1) == 0)


def low_rank_tensor(rng, shape=(10, 16, 16), rank=2):
    a, b, c = (rng.standard_normal((d, rank)) for d in shape)
    return np.einsum("ir,jr,kr->ijk", a, b, c).astype(np.float32)


def test_halrtc_recovers_an_exactly_low_rank_tensor(rng):
    x = low_rank_tensor(rng)
    # scattered losses, uniform weights: the sum-of-nuclear-norms solution is the tensor itself
    lost = rng.random(x.shape) < 0.3
    y = completion.make("halrtc", max_iters=300, tol=1e-6, alpha=[1, 1, 1]).complete(
        np.where(lost, 0, x), lost
    )
    assert np.linalg.norm((y - x)[lost]) / np.linalg.norm(x[lost]) < 1e-3
    # lost rows are missing mode-3 fibres, invisible to the mode-3 unfolding's rank; with that
    # mode's weight at 0 the row losses are recovered exactly too
    lost = band_mask(
        x.shape, 2, [(c, b) for c in range(10) for b in range(8) if (3 * c + b) % 5 == 0]
    )
    assert 0.15 < lost.mean() < 0.25
    y = completion.make("halrtc", max_iters=300, tol=1e-6, alpha=[0.5, 0.5, 0.0]).complete(
        np.where(lost, 0, x), lost
    )
    assert np.linalg.norm((y - x)[lost]) / np.linalg.norm(x[lost]) < 1e-3


def test_iterative_methods_record_iterations_and_honour_limits(rng):
    x = low_rank_tensor(rng)
    lost = band_mask(x.shape, 2, [(1, 2), (5, 5)])
    for name in ("silrtc", "halrtc"):
        m = completion.make(name, max_iters=3, tol=0.0)
        m.complete_batch(np.stack([x, x]), np.stack([lost, lost]))
        assert m.iterations == [3, 3]
        m = completion.make(name, max_iters=10_000, tol=0.0, time_budget_ms=30)
        m.complete(x, lost)
        assert 1 <= m.iterations[-1] < 10_000


def test_altec_recovers_a_tensor_built_from_its_linear_model(rng):
    """Channel 0 is exactly 2*ch1 - 0.5*ch2 + 0.3: ALTeC learns it and refills a lost band of
    channel 0 (even when another predictor channel is also lost there)."""
    n, c, h, w = 30, 4, 8, 6
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    x[:, 0] = 2 * x[:, 1] - 0.5 * x[:, 2] + 0.3
    layout = PacketLayout.for_shape((c, h, w), 2)
    m = completion.make("altec", ridge=1e-9).fit(x[:25], layout)
    lost = band_mask((c, h, w), 2, [(0, 1), (3, 1)])  # the target and an unused predictor
    for t in x[25:]:
        y = m.complete(np.where(lost, 0, t), lost, layout)
        assert np.allclose(y[0], t[0], atol=1e-3)


def test_altec_refuses_other_shapes_and_needs_a_fit(rng):
    m = completion.make("altec")
    with pytest.raises(RuntimeError, match="not fitted"):
        m.complete(np.zeros((3, 4, 4), np.float32), np.ones((3, 4, 4), bool))
    m.fit(
        rng.standard_normal((20, 3, 4, 4)).astype(np.float32), PacketLayout.for_shape((3, 4, 4), 2)
    )
    with pytest.raises(ValueError, match=r"fitted on tensors of shape \(3, 4, 4\)"):
        m.complete(np.zeros((3, 6, 4), np.float32), np.ones((3, 6, 4), bool))
    with pytest.raises(ValueError, match="fitted for 2-row packets, got a layout of 1"):
        m.complete(
            np.zeros((3, 4, 4), np.float32),
            np.ones((3, 4, 4), bool),
            PacketLayout.for_shape((3, 4, 4), 1),
        )


def test_caltec_reproduces_an_exact_affine_copy(rng):
    c, h, w = 5, 12, 8
    x = rng.standard_normal((c, h, w)).astype(np.float32).cumsum(axis=1)
    x[3] = -1.7 * x[1] + 0.4  # channel 3 is an affine copy of channel 1 (negative slope)
    lost = band_mask((c, h, w), 3, [(3, 1), (3, 2), (0, 1)])
    y = completion.make("caltec").complete(
        np.where(lost, 0, x), lost, PacketLayout.for_shape((c, h, w), 3)
    )
    assert np.allclose(y[3], x[3], atol=1e-4)


def test_caltec_copies_constant_neighbours_and_falls_back_without_candidates():
    x = np.zeros((2, 8, 4), np.float32)
    x[0] = 1.5  # constant channel
    x[1] = np.arange(8, dtype=np.float32)[:, None]
    lost = band_mask(x.shape, 2, [(0, 1), (1, 2)])
    y = completion.make("caltec").complete(
        np.where(lost, 0, x), lost, PacketLayout.for_shape(x.shape, 2)
    )
    assert np.all(y[0] == 1.5)
    # channel 1's only candidate (channel 0) is constant: linear interpolation, exact on a ramp
    assert np.allclose(y[1], x[1])


@pytest.mark.parametrize("name", ["inpaint_ns", "inpaint_telea"])
def test_inpainting_touches_only_damaged_channels_and_keeps_range(name, rng):
    x = (100 * rng.standard_normal((3, 16, 12))).astype(np.float32).cumsum(axis=1)
    lost = band_mask(x.shape, 4, [(1, 1)])
    y = completion.make(name, radius=3).complete(np.where(lost, 0, x), lost)
    assert np.array_equal(y[0], x[0]) and np.array_equal(y[2], x[2])
    filled = y[1][lost[1]]
    known = x[1][~lost[1]]
    assert filled.min() >= known.min() - 1e-3 * np.ptp(
        known
    ) and filled.max() <= known.max() + 1e-3 * np.ptp(known)
    # smooth vertical ramp: inpainting lands close to the truth
    ramp = np.broadcast_to(np.linspace(-5, 5, 16, dtype=np.float32)[:, None], (16, 12))
    z = np.stack([ramp] * 3)
    yz = completion.make(name).complete(np.where(lost, 0, z), lost)
    assert np.abs(yz - z)[lost].max() < 1.0


def test_method_parameters_are_validated():
    from dfsim.errors import UserError

    for name, params, msg in [
        ("silrtc", {"max_iters": 0}, r"methods.max_iters: 0 is out of range \(must be >= 1\)"),
        (
            "halrtc",
            {"rho_growth": 0.5},
            r"methods.rho_growth: 0.5 is out of range \(must be >= 1\)",
        ),
        ("halrtc", {"alpha": [1, 2]}, "methods.alpha: expected a list of 3 values, got 2"),
        ("halrtc", {"alpha": [0, 0, 0]}, "alpha must be 3 non-negative weights"),
        ("halrtc", {"rho": 2.0, "rho_max": 1.0}, "rho_max must be a number >= rho"),
        ("inpaint_ns", {"radius": -1}, r"methods.radius: -1 is out of range \(must be > 0\)"),
        ("altec", {"ridge": 0}, r"methods.ridge: 0 is out of range \(must be > 0\)"),
    ]:
        with pytest.raises(UserError, match=msg):
            completion.make(name, **params)
