"""Conformance suite run against EVERY registered completion method (cf. sklearn's check_estimator)."""
import numpy as np
import pytest

from dfsim import completion
from dfsim.errors import UserError
from dfsim.packets import PacketLayout

METHODS = completion.available_methods()


def damaged(rng, shape=(6, 12, 10), rows=3, loss=0.35, n=None):
    """A smooth-ish random tensor and a row-packet loss mask."""
    full = (n,) + shape if n else (1,) + shape
    base = rng.standard_normal(full).astype(np.float32).cumsum(axis=2).cumsum(axis=3) / 5
    layout = PacketLayout.for_shape(shape, rows)
    lost = layout.lost_mask(rng.random(full[0] * layout.packets_per_tensor) < loss)
    return (base, lost) if n else (base[0], lost[0])


@pytest.fixture(params=METHODS)
def method(request):
    m = completion.make(request.param)
    if m.needs_fit:
        rng = np.random.default_rng(0)
        m.fit(damaged(rng, n=20)[0])
    return m


def test_received_entries_are_unchanged_bit_for_bit(method, rng):
    x, lost = damaged(rng)
    y = method.complete(x, lost)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.array_equal(y[~lost].view(np.uint32), x[~lost].view(np.uint32))
    assert np.all(np.isfinite(y))


def test_input_is_not_modified(method, rng):
    x, lost = damaged(rng)
    x0 = x.copy()
    method.complete(x, lost)
    assert np.array_equal(x, x0)


def test_loss_free_input_is_returned_unchanged(method, rng):
    x, _ = damaged(rng)
    assert np.array_equal(method.complete(x, np.zeros(x.shape, bool)), x)


@pytest.mark.parametrize("case", ["channel", "tensor", "first-rows", "last-rows"])
def test_extreme_losses_give_finite_values(method, rng, case):
    x, lost = damaged(rng)
    lost = lost.copy()
    if case == "channel":
        lost[2] = True
    elif case == "tensor":
        lost[:] = True
    elif case == "first-rows":
        lost[:, :3] = True
    else:
        lost[:, -3:] = True
    y = method.complete(x, lost)
    assert np.all(np.isfinite(y)) and np.array_equal(y[~lost], x[~lost])


def test_deterministic(method, rng):
    x, lost = damaged(rng)
    assert np.array_equal(method.complete(x, lost), method.complete(x, lost))


@pytest.mark.parametrize("shape,rows", [((4, 7, 9), 3), ((5, 10, 6), 4), ((3, 5, 5), 5)])
def test_heights_not_a_multiple_of_the_packet_height(method, rng, shape, rows):
    x, lost = damaged(rng, shape=shape, rows=rows, loss=0.4)
    y = method.complete(x, lost)
    assert np.all(np.isfinite(y)) and np.array_equal(y[~lost], x[~lost])


def test_batch_equals_one_at_a_time(method, rng):
    x, lost = damaged(rng, n=4)
    batch = method.complete_batch(x, lost)
    single = np.stack([method.complete(a, m) for a, m in zip(x, lost)])
    assert np.array_equal(batch, single)


def test_shape_mismatch_is_rejected(method):
    with pytest.raises(ValueError, match="shape"):
        method.complete(np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 5), bool))


def test_unknown_method_and_parameter():
    with pytest.raises(UserError, match="unknown completion method 'nope'"):
        completion.make("nope")
    with pytest.raises(UserError, match=r"methods.zeros.bogus: unknown parameter"):
        completion.make("zeros", bogus=1)


def test_zeros_sets_lost_entries_to_zero(rng):
    x, lost = damaged(rng)
    y = completion.make("zeros").complete(x, lost)
    assert np.all(y[lost] == 0)
