import pytest
import torch

from dfsim.data.datasets import load_fashion_mnist
from dfsim.models import available_models, load_model
from dfsim.models.fmnist_resnet import FashionResNet, fold_batchnorm, normalise
from dfsim.models.inference import predict, prepare_for_inference


@pytest.fixture(scope="module")
def model():
    return load_model("fmnist-resnet")


@pytest.fixture(scope="module")
def test_set():
    return load_fashion_mnist("test")


def test_registry():
    assert "fmnist-resnet" in available_models()


def test_default_split_is_a_dense_residual_sum(model, test_set):
    split = model.default_split
    assert split == "add_1"
    (crossing,) = model.crossing(split)
    c, h, w = crossing.shape
    assert c >= 32 and (h, w) == (28, 28)
    x = normalise(test_set.images[:64])
    with torch.no_grad():
        (v,) = model.edge(split)(x)
    # before the activation: signed, and dense (few exact zeros)
    assert (v < 0).float().mean() > 0.2
    assert (v == 0).float().mean() < 0.01


@pytest.mark.parametrize("split", ["stem", "add_1", "relu_1", "add_2", "relu_2"])
def test_front_then_back_equals_full_model_exactly(model, test_set, split):
    x = normalise(test_set.images[:200])
    with torch.no_grad():
        full = model.full()(x)
        split_out = model.cloud(split)(*model.edge(split)(x))
    assert torch.equal(full, split_out)


def test_folded_batchnorm_matches_training_form():
    torch.manual_seed(0)
    net = FashionResNet()
    with torch.no_grad():  # non-trivial running statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        ref = net(x)
        folded = fold_batchnorm(net)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(folded, ref, rtol=1e-4, atol=1e-4)


def test_committed_weights_reach_90_percent_on_the_full_test_set(model, test_set):
    pred = predict(prepare_for_inference(model.full()), normalise(test_set.images), 1000)
    assert len(pred) == 10_000
    assert (pred == test_set.labels).mean() >= 0.90


def test_bad_weights_file_is_a_user_error(tmp_path):
    from dfsim.errors import UserError

    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="model.weights: cannot load"):
        load_model("fmnist-resnet", weights=str(bad))
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="model.weights: cannot load"):
        load_model("fmnist-resnet", weights=str(bad))
