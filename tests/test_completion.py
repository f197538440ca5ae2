"""Conformance suite run against EVERY registered completion method (cf. sklearn's check_estimator).

A new method registered in dfsim.completion gets all of these tests for free.
"""
import numpy as np
import pytest

from dfsim import completion
from dfsim.completion.base import method_class
from dfsim.errors import UserError
from dfsim.packets import PacketLayout

METHODS = completion.available_methods()


def smooth_tensors(rng, n, shape):
    """Random tensors with spatial and cross-channel structure (so trained methods fit)."""
    c, h, w = shape
    base = rng.standard_normal((n, 3, h, w)).astype(np.float32).cumsum(axis=2).cumsum(axis=3) / 5
    mix = rng.standard_normal((c, 3)).astype(np.float32)
    return (np.einsum("ck,nkhw->nchw", mix, base) + 0.05 * rng.standard_normal((n, c, h, w))).astype(np.float32)


def damaged(rng, shape=(6, 12, 10), rows=3, loss=0.35, n=1):
    x = smooth_tensors(rng, n, shape)
    layout = PacketLayout.for_shape(shape, rows)
    lost = layout.lost_mask(rng.random(n * layout.packets_per_tensor) < loss)
    return x, lost


def build(name, shape=(6, 12, 10), rows=3, **params):
    """The method as the experiment builds it: packetization bound, trained methods fitted."""
    layout = {"rows_per_packet": rows}
    m = completion.make(name, **params, **{k: layout[k] for k in method_class(name).layout_params})
    if m.needs_fit:
        m.fit(smooth_tensors(np.random.default_rng(99), 40, shape))
    return m


@pytest.fixture(params=METHODS)
def name(request):
    return request.param


def test_received_entries_are_unchanged_bit_for_bit(name, rng):
    (x,), (lost,) = damaged(rng)
    y = build(name).complete(x, lost)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.array_equal(y[~lost].view(np.uint32), x[~lost].view(np.uint32))
    assert np.all(np.isfinite(y))


def test_input_is_not_modified(name, rng):
    (x,), (lost,) = damaged(rng)
    x0 = x.copy()
    build(name).complete(x, lost)
    assert np.array_equal(x, x0)


def test_loss_free_input_is_returned_unchanged(name, rng):
    (x,), _ = damaged(rng)
    assert np.array_equal(build(name).complete(x, np.zeros(x.shape, bool)), x)


@pytest.mark.parametrize("case", ["channel", "tensor", "first-band", "last-band", "all-but-one-channel"])
def test_extreme_losses_give_finite_values(name, rng, case):
    (x,), (lost,) = damaged(rng)
    lost = lost.copy()
    if case == "channel":
        lost[2] = True
    elif case == "tensor":
        lost[:] = True
    elif case == "first-band":
        lost[:, :3] = True
    elif case == "last-band":
        lost[:, -3:] = True
    else:
        lost[:] = True
        lost[4] = False
    y = build(name).complete(x, lost)
    assert np.all(np.isfinite(y)) and np.array_equal(y[~lost], x[~lost])


def test_same_input_same_output(name, rng):
    (x,), (lost,) = damaged(rng)
    assert np.array_equal(build(name).complete(x, lost), build(name).complete(x, lost))


@pytest.mark.parametrize("shape,rows", [((4, 7, 9), 3), ((5, 10, 6), 4), ((3, 5, 5), 5), ((4, 9, 8), 2)])
def test_heights_not_a_multiple_of_the_packet_height(name, rng, shape, rows):
    (x,), (lost,) = damaged(rng, shape=shape, rows=rows, loss=0.4)
    y = build(name, shape, rows).complete(x, lost)
    assert np.all(np.isfinite(y)) and np.array_equal(y[~lost], x[~lost])


def test_batch_equals_one_at_a_time(name, rng):
    x, lost = damaged(rng, n=4)
    m = build(name)
    batch = m.complete_batch(x, lost)
    single = np.stack([m.complete(a, b) for a, b in zip(x, lost)])
    assert np.array_equal(batch, single)


def test_shape_mismatch_is_rejected(name):
    with pytest.raises(ValueError, match="shape"):
        build(name).complete(np.zeros((6, 12, 10), np.float32), np.zeros((6, 12, 9), bool))


def test_unknown_parameter_is_a_user_error(name):
    with pytest.raises(UserError, match=rf"methods.{name}.bogus: unknown parameter"):
        completion.make(name, bogus=1)


def test_unknown_method():
    with pytest.raises(UserError, match="unknown completion method 'nope'"):
        completion.make("nope")


def test_every_registered_method_is_covered():
    assert set(METHODS) >= {"zeros", "linear", "altec", "caltec", "silrtc", "halrtc", "inpaint_ns", "inpaint_telea"}
