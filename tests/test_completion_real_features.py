"""On the default model's real features every method repairs better than zero-fill."""

import numpy as np
import pytest

from dfsim import completion
from dfsim.codecs.raw import RawCodec
from dfsim.data.datasets import load_fashion_mnist
from dfsim.experiment.prepare import coded_edge_features
from dfsim.models import load_model
from dfsim.transport.channels import GilbertElliott
from dfsim.transport.packets import PacketLayout

ROWS = 4


@pytest.fixture(scope="module")
def features():
    model = load_model("fmnist-resnet")
    split = model.default_split
    layout = PacketLayout.for_shape(model.crossing(split)[0].shape, ROWS)

    def feats(subset, n):
        images = load_fashion_mnist(subset).head(n).images
        return coded_edge_features(model, split, images, RawCodec(8), layout)

    test = feats("test", 60)
    flags = GilbertElliott.from_loss_burst(0.3, 4).sample(
        len(test) * layout.packets_per_tensor, np.random.default_rng(1)
    )
    return test, layout.lost_mask(flags), feats("train", 1000), layout


@pytest.fixture(scope="module")
def zero_fill_mse(features):
    test, lost, _, _ = features
    return float(np.mean(test[lost] ** 2))


@pytest.mark.parametrize("name", [m for m in completion.available_methods() if m != "zeros"])
def test_method_beats_zero_fill_on_real_features(name, features, zero_fill_mse):
    test, lost, train, layout = features
    params = {"max_iters": 10} if name in ("silrtc", "halrtc") else {}
    m = completion.make(name, **params)
    if m.needs_fit:
        m.fit(train, layout)
    y = m.complete_batch(np.where(lost, 0, test), lost, layout)
    mse = float(np.mean((y - test)[lost] ** 2))
    assert mse < 0.9 * zero_fill_mse, (name, mse, zero_fill_mse)


def test_altec_fit_passes_its_held_out_check_on_real_features(features, capsys):
    """Plenty of data: every packet position keeps its fit (so the weights are the plain
    ridge fit's, as before the check) and nothing is printed."""
    _, _, train, layout = features
    m = completion.make("altec").fit(train, layout)
    assert m.report["use"].all() and m.fit_note is None and capsys.readouterr().err == ""
    assert np.all(m.report["heldout_mse"] < 0.5 * m.report["zero_mse"])


@pytest.mark.parametrize("name", ["altec", "caltec", "linear", "inpaint_telea"])
def test_one_tensor_at_a_time_gives_the_batched_bits(name, features):
    """complete() (ALTeC's on the calling thread alone) gives each tensor the bits of the
    batched path (ALTeC's on numba's thread pool), and leaves the thread count as it was."""
    import numba

    test, lost, train, layout = features
    m = completion.make(name)
    if m.needs_fit:
        m.fit(train[:200], layout)
    damaged = np.where(lost, 0, test).astype(np.float32)
    threads = numba.get_num_threads()
    batched = m.complete_batch(damaged, lost, layout)
    single = np.stack([m.complete(t, k, layout) for t, k in zip(damaged, lost, strict=True)])
    assert numba.get_num_threads() == threads
    np.testing.assert_array_equal(single.view(np.uint32), batched.view(np.uint32))
