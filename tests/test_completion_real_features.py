"""On the default model's real features every method repairs better than zero-fill."""
import numpy as np
import pytest

from dfsim import completion
from dfsim.channels import GilbertElliott
from dfsim.completion.base import method_class
from dfsim.datasets import load_fashion_mnist
from dfsim.experiment import quantized_edge_features
from dfsim.models import load_model
from dfsim.packets import PacketLayout

ROWS = 4


@pytest.fixture(scope="module")
def features():
    model = load_model("fmnist-resnet")

    def feats(split, n):
        return quantized_edge_features(model, model.default_split, load_fashion_mnist(split).head(n).images, 8)

    test = feats("test", 60)
    layout = PacketLayout.for_shape(test.shape[1:], ROWS)
    lost = layout.lost_mask(
        GilbertElliott.from_loss_burst(0.3, 4).sample(len(test) * layout.packets_per_tensor, np.random.default_rng(1)))
    return test, lost, feats("train", 1000)


@pytest.fixture(scope="module")
def zero_fill_mse(features):
    test, lost, _ = features
    return float(np.mean(test[lost] ** 2))


@pytest.mark.parametrize("name", [m for m in completion.available_methods() if m != "zeros"])
def test_method_beats_zero_fill_on_real_features(name, features, zero_fill_mse):
    test, lost, train = features
    params = {k: ROWS for k in method_class(name).layout_params}
    if name in ("silrtc", "halrtc"):
        params["max_iters"] = 10
    m = completion.make(name, **params)
    if m.needs_fit:
        m.fit(train)
    y = m.complete_batch(np.where(lost, 0, test), lost)
    mse = float(np.mean((y - test)[lost] ** 2))
    assert mse < 0.9 * zero_fill_mse, (name, mse, zero_fill_mse)
