"""Compression-augmented fine-tuning (``dfsim train --augment-split``): deterministic,
gradients straight through the codec into the edge, one-line errors, and the committed
fine-tuned weights."""

import numpy as np
import pytest
import torch

from dfsim.models import augmented_training as at
from dfsim.models.fmnist_resnet import WEIGHTS_DIR, WEIGHTS_FILE
from dfsim.tools.cli import main


@pytest.fixture(autouse=True)
def restore_torch_state():
    """Fine-tuning switches torch to deterministic algorithms, as the trainers do; the
    rest of the suite gets torch as it was."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic)


def tiny(tmp_path, name: str, **options) -> dict:
    """Two batches of the classifier at add_1, raw codec at 2 and 3 bits (and lossless)."""
    aug = at.parse_augmentation("add_1", "raw", "lossless,2,3", **options)
    at.finetune(
        "fmnist-resnet",
        tmp_path / name,
        aug,
        images=256,
        seed=0,
        eval_images=50,
        log=lambda _: None,
    )
    return torch.load(tmp_path / name, weights_only=True)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fine_tuning_is_deterministic_and_trains_edge_and_cloud(tmp_path):
    """Codec, drawn rates, packet loss and fill: the same seed gives the same weights."""
    committed = torch.load(WEIGHTS_FILE, weights_only=True)
    options = {"loss_rates": "0,0.2", "fill": "linear"}
    a, b = tiny(tmp_path, "a.pt", **options), tiny(tmp_path, "b.pt", **options)
    assert same(a, b)
    # straight-through: the stages before the split (stem, add_1) learn, like those after
    for stage in ("stem", "add_1", "add_2", "head"):
        keys = [k for k in a if k.startswith(stage + ".") and a[k].is_floating_point()]
        assert any(not torch.equal(a[k], committed[k]) for k in keys), stage


def test_gradient_is_the_identity_except_on_lost_entries():
    from dfsim.registry import build

    f = torch.randn(3, 4, 8, 6, requires_grad=True)
    coder = at.FeatureCoder([build("codec", "raw", bits=2)], np.random.default_rng(0))
    out = coder(f)
    assert len(torch.unique(out[0, 0].detach())) <= 4  # forward: 2-bit values
    out.sum().backward()
    assert torch.equal(f.grad, torch.ones_like(f))

    f.grad = None
    lossy = at.FeatureCoder(
        [build("codec", "raw", bits=8)], np.random.default_rng(0), (0.5,), "zeros", 2
    )
    out = lossy(f)
    lost = out.detach() == 0
    assert 0.2 < lost.float().mean() < 0.8
    bands = lost.reshape(3, 4, 4, 2 * 6)  # 2-row packets of one channel: lost whole
    assert torch.equal(bands.all(dim=3), bands.any(dim=3))
    (out * torch.arange(1, out.numel() + 1).reshape(out.shape)).sum().backward()
    assert torch.equal(f.grad == 0, lost)


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["train", "--threads", "1", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--augment-split", "nope"], "--augment-split: unknown split point 'nope'"),
        (["--augment-codec", "nope"], "--augment-codec: unknown codec 'nope'"),
        (["--augment-codec", "zstd"], "--augment-codec: no rate knob known for codec 'zstd'"),
        (["--augment-rates", "2,20"], "--augment-rates.bits: 20 is out of range"),
        (["--augment-rates", "2,x"], "--augment-rates: 'x' is neither 'lossless' nor"),
        (["--augment-loss-rates", "0.1,1"], "--augment-loss-rates: 1 is not in [0, 1)"),
        (["--augment-loss-rates", "-0.1"], "--augment-loss-rates: -0.1 is not in [0, 1)"),
        (["--augment-fill", "linear"], "--augment-fill: fills lost packets, so it needs"),
        (
            ["--augment-loss-rates", "0.1", "--augment-fill", "halrtc"],
            "--augment-fill: 'halrtc' is not one of zeros, linear",
        ),
        (["--model", "fmnist-mirror"], "--model: compression-augmented training is for"),
        (["--epochs", "0"], "--epochs: must be >= 1, got 0"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, tmp_path, args, message):
    given = dict(zip(args[::2], args[1::2], strict=True))
    base = {"--augment-split": "add_1", "--augment-codec": "raw", "--augment-rates": "2,3"}
    argv = [x for kv in {**base, **given}.items() for x in kv]
    code, err = run(capsys, *argv, "--out", str(tmp_path / "w.pt"))
    assert code == 2
    assert err.startswith(f"dfsim: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "w.pt").exists()


def test_augment_options_need_augment_split(capsys):
    code, err = run(capsys, "--augment-codec", "raw")
    assert (code, err) == (
        2,
        "dfsim: error: --augment-codec: only with --augment-split (compression-augmented "
        "training)\n",
    )


def test_detector_weights_in_the_classifier_are_named_in_one_line():
    from dfsim.errors import UserError
    from dfsim.models import load_model

    path = str(WEIGHTS_DIR / "fmnist_detector.pt")
    with pytest.raises(UserError) as err:
        load_model("fmnist-resnet", weights=path)
    msg = str(err.value)
    assert msg.startswith(f"model.weights: cannot load {path!r}: not weights of FashionResNet (")
    assert "\n" not in msg


def coded_map(model, split: str, qp: int, scenes, boxes) -> float:
    """mAP of a registered detector with its ``split`` features coded by hevc at ``qp``."""
    from dfsim.experiment.prepare import decode_all
    from dfsim.registry import build
    from dfsim.tasks.detection import coco_map, detections_array
    from dfsim.transport.packets import PacketLayout

    with torch.no_grad():
        (f,) = model.edge(split)(model.normalise(scenes[:, None]))
        f = f.numpy()
        codec = build("codec", "hevc", qp=qp)
        layout = PacketLayout.for_shape(f.shape[1:], rows_per_packet=f.shape[2])
        out = model.cloud(split)(torch.from_numpy(decode_all(codec, codec.encode(f, layout))))
    return coco_map(detections_array(model.postprocess(out.numpy())), boxes)["map"]


def test_committed_fine_tuned_detector_does_better_on_coded_features():
    """The weights fine-tuned with HEVC at add_1, loaded by the registry like a scenario's
    ``model.weights``: at QP 37 (the coarsest of fine-tuning) they beat the committed."""
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.data.scenes import generate_scenes
    from dfsim.errors import UserError
    from dfsim.models import load_model
    from dfsim.registry import build

    try:
        build("codec", "hevc", qp=37)
    except UserError as exc:  # the picture codec's library is missing
        pytest.skip(str(exc))
    test = load_fashion_mnist("test")
    scenes, boxes = generate_scenes(test.images[:, 0], test.labels, 100, 96, seed=10_000)
    tuned = WEIGHTS_DIR / "fmnist_detector_cat_hevc_add_1.pt"
    before = coded_map(load_model("fmnist-detector"), "add_1", 37, scenes, boxes)
    after = coded_map(load_model("fmnist-detector", weights=str(tuned)), "add_1", 37, scenes, boxes)
    assert after > before + 0.01, (before, after)
