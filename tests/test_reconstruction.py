"""The ``reconstruction`` task: its PSNR and SSIM, the committed mirror model's quality on
quantized features, task conformance, binding errors and the metrics' response to loss."""

import math

import numpy as np
import pytest

from dfsim.data.datasets import ImageSet, load_fashion_mnist
from dfsim.errors import UserError
from dfsim.models import load_model
from dfsim.models.fmnist_mirror import load_mirror, quantized_features, reconstruct
from dfsim.registry import build
from dfsim.tasks.reconstruction import PSNR_CAP, Reconstruction, psnr, ssim_per_image
from dfsim.testing import check_task

# Mean PSNR (dB) and SSIM of the committed mirror on the first 200 test images' 8-bit
# features: measured 29.4 dB and 0.976 when the weights were committed; the bounds leave
# a margin for other torch builds and retrained weights.
MIN_PSNR = 26.0
MIN_SSIM = 0.95


@pytest.fixture(scope="module")
def model():
    return load_model("fmnist-resnet")


@pytest.fixture(scope="module")
def sample():
    """The first 200 test images and their quantized ``add_1`` features."""
    test = load_fashion_mnist("test")
    images = ImageSet(test.images[:200], test.labels[:200], "fashion-mnist/test[:200]")
    return images, quantized_features(images.images)


@pytest.fixture(scope="module")
def task(model):
    t = build("task", "reconstruction", "task")
    t.bind(model, "add_1")
    return t


def _gaussian_ssim(x: np.ndarray, y: np.ndarray, size=7, sigma=1.5, k1=0.01, k2=0.03) -> float:
    """SSIM of two 2-D images in [0, 1] from the formula (Wang et al. 2004): Gaussian
    weighted local statistics over the valid windows, averaged over the map."""
    c = np.arange(size) - size // 2
    g = np.exp(-(c**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    n = x.shape[0] - size + 1
    vals = []
    for i in range(n):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx = (w * px * px).sum() - mx * mx
            vy = (w * py * py).sum() - my * my
            cxy = (w * px * py).sum() - mx * my
            c1, c2 = k1**2, k2**2
            vals.append(
                (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
            )
    return float(np.mean(vals))


def test_identical_images(rng):
    a = rng.random((3, 1, 28, 28)).astype(np.float32)
    assert np.all(np.isinf(psnr(a, a))) and np.all(psnr(a, a) > 0)
    assert math.isinf(psnr(a[0, 0], a[0, 0]))
    np.testing.assert_allclose(ssim_per_image(a, a), 1.0, atol=1e-6)


def test_psnr_by_hand():
    a = np.zeros((2, 1, 2, 2))
    b = np.full((2, 1, 2, 2), 0.1)
    b[1, 0, 0, 0] = 0.5  # MSE (0.25 + 3 * 0.01) / 4 = 0.07
    np.testing.assert_allclose(psnr(a, b), [20.0, 10 * math.log10(1 / 0.07)])
    assert psnr(np.zeros((4, 4)), np.ones((4, 4)), data_range=255.0) == pytest.approx(
        20 * math.log10(255.0)
    )


def test_ssim_matches_the_formula_and_falls_with_noise(rng):
    yy, xx = np.mgrid[0:28, 0:28]
    clean = 0.5 + 0.4 * np.sin(xx / 4.0) * np.cos(yy / 6.0)
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    got = ssim_per_image(clean[None, None], noisy[None, None])[0]
    assert got == pytest.approx(_gaussian_ssim(clean, noisy), abs=1e-6)
    values = [
        ssim_per_image(
            clean[None, None],
            np.clip(clean + s * rng.standard_normal(clean.shape), 0, 1)[None, None],
        )[0]
        for s in (0.02, 0.1, 0.3)
    ]
    assert 1 > values[0] > values[1] > values[2]


def test_mirror_reconstructs_test_images(sample):
    images, feats = sample
    recon = reconstruct(load_mirror(), feats).numpy()
    assert recon.shape == images.images.shape and recon.dtype == np.float32
    assert recon.min() >= 0 and recon.max() <= 1
    original = images.images.astype(np.float64) / 255
    assert psnr(recon, original).mean() > MIN_PSNR
    assert ssim_per_image(recon, original).mean() > MIN_SSIM


def test_task_conformance(task, sample, model):
    images, feats = sample
    assert task.cloud_model(model, "add_1") is not None
    outputs = reconstruct(task.cloud_model(model, "add_1"), feats[:16]).numpy()
    targets = task.targets(ImageSet(images.images[:16], images.labels[:16], "t"))
    assert targets.dtype == np.float32 and targets.max() <= 1 and targets.shape == outputs.shape
    check_task(task, outputs, targets, model=model, split="add_1")
    check_task("reconstruction", outputs, targets, model=model)  # built, bound at add_1


def test_bind_errors(model, tmp_path):
    with pytest.raises(UserError) as err:
        Reconstruction().bind(model, "add_2")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (
        "task: reconstruction has a mirror model for fmnist-resnet at split add_1, "
        "fmnist-resnet-traced at split add_1.main only "
        "(got fmnist-resnet at add_2)"
    )
    with pytest.raises(UserError, match=r"^task\.weights: mirror weights file .* not found$"):
        load_mirror(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"^task\.weights: cannot load ") as err:
        Reconstruction(weights=str(bad)).bind(model, "add_1")
    assert "\n" not in str(err.value)


def test_metrics_fall_when_features_are_damaged(task, sample, model):
    images, feats = sample
    mirror = task.cloud_model(model, "add_1")
    reference = task.predict(reconstruct(mirror, feats).numpy())
    damaged = feats.copy()
    rng = np.random.default_rng(0)
    for f in damaged:  # 30 % of each tensor's rows lost and zero-filled
        f[:, rng.choice(28, size=round(0.3 * 28), replace=False), :] = 0
    pred = task.predict(reconstruct(mirror, damaged).numpy())
    targets = task.targets(images)
    clean = task.evaluate(reference, reference, targets)
    lossy = task.evaluate(pred, reference, targets)
    assert clean["psnr_lossfree"] == PSNR_CAP and clean["ssim_lossfree"] == pytest.approx(1.0)
    assert lossy["psnr"] < clean["psnr"] and lossy["ssim"] < clean["ssim"]
    assert lossy["psnr_lossfree"] < PSNR_CAP and lossy["ssim_lossfree"] < 1.0
    assert all(math.isfinite(v) for v in lossy.values())


def test_predict_clips_and_copies():
    out = np.array([[[[-0.5, 0.25], [1.5, 1.0]]]], np.float32)
    pred = Reconstruction().predict(out)
    np.testing.assert_array_equal(pred, [[[[0.0, 0.25], [1.0, 1.0]]]])
    assert pred.dtype == np.float32 and not np.shares_memory(pred, out)


def test_scenario_with_the_reconstruction_task(tmp_path):
    from conftest import run_scenario

    rows = run_scenario(
        tmp_path,
        "name: recon\nseed: 3\ndata: {n_images: 40}\ntask: reconstruction\n"
        "channels:\n  - {kind: iid, loss_rates: [0.0, 0.3]}\nmethods: [zeros, linear]\n"
        "trials: 1\n",
    )
    by = {(r["method"], r["loss_rate"]): r for r in rows}
    assert set(by) == {(m, p) for m in ("zeros", "linear") for p in (0.0, 0.3)}
    for m in ("zeros", "linear"):
        lossless, lossy = by[m, 0.0], by[m, 0.3]
        assert lossless["psnr_lossfree"] == pytest.approx(PSNR_CAP)
        assert lossless["ssim_lossfree"] == pytest.approx(1.0)
        assert lossless["psnr"] > MIN_PSNR
        assert lossy["psnr"] < lossless["psnr"] and lossy["ssim_lossfree"] < 1.0


def test_mirror_weights_key_the_cache_and_must_match_the_edge(tmp_path):
    import torch

    from dfsim.errors import UserError
    from dfsim.models import load_model
    from dfsim.models.fmnist_mirror import WEIGHTS_FILE, FashionMirror
    from dfsim.tasks.reconstruction import Reconstruction

    other = tmp_path / "other_mirror.pt"
    torch.manual_seed(1)
    torch.save(FashionMirror().state_dict(), other)
    # another mirror, another cache entry for the loss-free reconstructions
    assert Reconstruction().cache_id() != Reconstruction(weights=str(other)).cache_id()
    assert Reconstruction(weights=str(WEIGHTS_FILE)).cache_id() == Reconstruction().cache_id()
    # the built-in mirror refuses an edge with other weights
    resnet = tmp_path / "resnet.pt"
    from dfsim.models.fmnist_resnet import WEIGHTS_FILE as RESNET_FILE

    net = load_model("fmnist-resnet")
    state = torch.load(RESNET_FILE, weights_only=True)
    first = next(k for k in state if k.endswith("weight"))
    state[first] = state[first] * 1.01
    torch.save(state, resnet)
    retrained = load_model("fmnist-resnet", weights=str(resnet))
    with pytest.raises(
        UserError, match=r"^task.weights: the built-in mirror inverts fmnist-resnet"
    ):
        Reconstruction().bind(retrained, "add_1")
    Reconstruction().bind(net, "add_1")  # the committed pair binds
    Reconstruction(weights=str(other)).bind(retrained, "add_1")  # a mirror of the user's own


def test_evaluate_command_scores_the_mirror(tmp_path, capsys, monkeypatch, sample):
    """``dfsim evaluate --model fmnist-mirror``: the mirror's mean PSNR and SSIM on a test
    set's quantized features (here an IDX folder of the first 200 test images), the same
    numbers as the task's own helpers; a missing weights file is a one-line error."""
    import json

    import torch
    from test_datasets import write_idx

    from dfsim.models.fmnist_mirror import psnr_ssim
    from dfsim.tools.cli import main

    images, feats = sample
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.ascontiguousarray(images.images[:, 0]))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", images.labels.astype(np.uint8))
    assert main(["evaluate", "--model", "fmnist-mirror", "--data-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    want = psnr_ssim(
        reconstruct(load_mirror(), feats), torch.from_numpy(images.images).float() / 255.0
    )
    assert out["model"] == "fmnist-mirror" and out["images"] == 200
    assert (out["psnr"], out["ssim"]) == pytest.approx(want, rel=1e-12)
    assert out["psnr"] > MIN_PSNR and out["ssim"] > MIN_SSIM
    # the built-in mirror refuses to score against another classifier's features
    monkeypatch.setattr("dfsim.models.fmnist_mirror.TRAINED_FOR", "0123456789abcdef")
    assert main(["evaluate", "--model", "fmnist-mirror", "--data-dir", str(tmp_path)]) == 2
    assert "--weights: the built-in mirror inverts fmnist-resnet weights 0123456789abcdef, " in (
        capsys.readouterr().err
    )
    missing = tmp_path / "missing.pt"
    args = ["evaluate", "--model", "fmnist-mirror", "--weights", str(missing)]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"dfsim: error: --weights: mirror weights file {str(missing)!r} not found"
    )
