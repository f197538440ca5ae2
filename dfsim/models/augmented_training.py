"""Compression-augmented fine-tuning (``dfsim train --augment-split ...``).

As in Choi & Bajić's compression-augmented training: a built-in model is fine-tuned from
its committed weights with its split features coded and decoded by a codec at every
forward pass, the rate drawn at random per batch from a list (the paper's: lossless, HEVC
at QP 22, 27, 32, 37), so that the model learns to work on decoded features. ``lossless``
is the 8-bit quantizer alone (codec ``raw`` at 8 bits). Beyond the paper, packet loss
can be added: random row packets of the decoded features are lost (i.i.d., at a rate
drawn per batch) and filled by a fast completion method (``zeros`` or ``linear``), to
ask whether training for the channel beats completing after it.

Gradients pass the codec **straight through**: the cloud sees the decoded features and
the backward pass treats coding as the identity (``f + (decoded - f).detach()``), so both
parts of the model are trained. The paper passes the decoded features on and says that
training learns the downstream weights for decoded features "and also ... upstream
weights that generate features that are robust to compression"; that is the edge
trained through the codec, which straight-through gives, and freezing the edge would not.
Lost entries pass no gradient to the edge (what the cloud sees there does not depend on
them).

The classifier's data, augmentation (shifts and flips), loss and evaluation are those of
:mod:`dfsim.models.training`, the detector's (fresh training scenes each epoch, focal and
L1 losses, COCO mAP) those of :mod:`dfsim.models.training_detector`; fine-tuning uses the
same optimisers at a tenth of the training learning rate, decayed to zero on a cosine. The
detector's scenes are drawn from their own seed stream, not the training run's. Batch norm
runs in training mode, so its statistics after the split adapt to decoded features.
Deterministic: one seed drives torch (weights, shuffling, augmentation) and the numpy
generator that draws rates and losses, with torch's deterministic algorithms; the same
seed on the same build and thread count gives the same weights (as long as the codec
itself is deterministic, as ``raw`` is).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dfsim.errors import UserError

LOSSLESS = "lossless"
# codec -> the parameter that sets its rate (the --augment-rates values)
RATE_KNOBS = {
    "hevc": "qp",
    "avif": "quality",
    "jpeg-xl": "quality",
    "jpeg": "quality",
    "raw": "bits",
}
FILLS = ("zeros", "linear")
MODELS = ("fmnist-resnet", "fmnist-detector")


@dataclass(frozen=True)
class Augmentation:
    """What happens to the features at the split during fine-tuning."""

    split: str
    codec: str
    rates: tuple  # LOSSLESS or a value of the codec's rate knob, one drawn per batch
    loss_rates: tuple[float, ...] = ()  # packet loss rates, one drawn per batch (): none
    fill: str = "zeros"
    rows_per_packet: int = 4

    def label(self, rate) -> str:
        """A rate as the logs and results name it: ``lossless``, ``qp22``, ``bits3``."""
        return LOSSLESS if rate == LOSSLESS else f"{RATE_KNOBS[self.codec]}{rate}"


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_augmentation(
    split: str,
    codec: str | None,
    rates: str | None,
    loss_rates: str | None = None,
    fill: str | None = None,
    rows_per_packet: int = 4,
) -> Augmentation:
    """The command line's ``--augment-*`` options, checked (one-line errors naming the
    option); the split is checked against the model later."""
    from dfsim.registry import entry

    if codec is None:
        raise UserError("--augment-codec: required with --augment-split (e.g. hevc)")
    entry("codec", codec, "--augment-codec")  # registered at all?
    if codec not in RATE_KNOBS:
        known = ", ".join(RATE_KNOBS)
        raise UserError(f"--augment-codec: no rate knob known for codec {codec!r} (one of {known})")
    if not rates:
        raise UserError("--augment-rates: required with --augment-split (e.g. lossless,22,27)")
    parsed = []
    for text in rates.split(","):
        text = text.strip()
        if text == LOSSLESS:
            parsed.append(LOSSLESS)
            continue
        try:
            parsed.append(_number(text))
        except ValueError:
            raise UserError(
                f"--augment-rates: {text!r} is neither {LOSSLESS!r} nor a value of "
                f"{codec}'s {RATE_KNOBS[codec]}"
            ) from None
    losses = []
    if loss_rates is not None:
        for text in loss_rates.split(","):
            try:
                p = float(text)
            except ValueError:
                raise UserError(f"--augment-loss-rates: {text.strip()!r} is not a number") from None
            if not 0 <= p < 1:
                raise UserError(f"--augment-loss-rates: {p:g} is not in [0, 1)")
            losses.append(p)
    if fill is not None and loss_rates is None:
        raise UserError("--augment-fill: fills lost packets, so it needs --augment-loss-rates")
    fill = fill or "zeros"
    if fill not in FILLS:
        raise UserError(f"--augment-fill: {fill!r} is not one of {', '.join(FILLS)}")
    if rows_per_packet < 1:
        raise UserError(f"--augment-rows-per-packet: must be >= 1, got {rows_per_packet}")
    aug = Augmentation(split, codec, tuple(parsed), tuple(losses), fill, rows_per_packet)
    make_codecs(aug)  # every rate builds: out-of-range values are said now
    return aug


def make_codecs(aug: Augmentation) -> list:
    """One codec per rate (``lossless``: ``raw`` at 8 bits); an out-of-range rate is a
    one-line error naming ``--augment-rates``."""
    from dfsim.registry import build

    return [
        build("codec", "raw", "--augment-rates", bits=8)
        if r == LOSSLESS
        else build("codec", aug.codec, "--augment-rates", **{RATE_KNOBS[aug.codec]: r})
        for r in aug.rates
    ]


class FeatureCoder:
    """Codes a batch of features with one of ``codecs`` (drawn per call), then optionally
    loses i.i.d. row packets at a drawn rate and fills them; the result carries the
    straight-through gradient to the input on every entry that was not lost."""

    def __init__(
        self,
        codecs: list,
        rng: np.random.Generator,
        loss_rates: tuple[float, ...] = (),
        fill: str = "zeros",
        rows_per_packet: int = 4,
    ):
        from dfsim.registry import entry

        self.codecs, self.rng, self.loss_rates = codecs, rng, loss_rates
        self.rows_per_packet = rows_per_packet
        self.fill = entry("completion", fill, "--augment-fill").build("--augment-fill")

    def __call__(self, f: torch.Tensor) -> torch.Tensor:
        from dfsim.codecs.base import decode_all
        from dfsim.transport.packets import PacketLayout

        x = np.ascontiguousarray(f.detach().cpu().numpy(), dtype=np.float32)
        shape = x.shape[1:]
        codec = self.codecs[self.rng.integers(len(self.codecs))]
        whole = PacketLayout.for_shape(shape, rows_per_packet=shape[1])
        decoded = decode_all(codec, codec.encode(x, whole)).astype(np.float32, copy=False)
        lost = None
        if self.loss_rates:
            p = self.loss_rates[self.rng.integers(len(self.loss_rates))]
            layout = PacketLayout.for_shape(shape, rows_per_packet=self.rows_per_packet)
            lost = layout.lost_mask(self.rng.random((len(x), layout.packets_per_tensor)) < p)
            decoded = np.array(decoded, np.float32)
            decoded[lost] = 0.0
            decoded = self.fill.complete_batch(decoded, lost, layout)
        d = torch.from_numpy(np.ascontiguousarray(decoded, dtype=np.float32)).to(f.device)
        out = f + (d - f).detach()
        if lost is not None:
            out = torch.where(torch.from_numpy(lost).to(f.device), d, out)
        return out


class SplitCoded(nn.Module):
    """``net`` (a model with ``named_stages()``) with ``coder`` applied to the output of
    stage ``split`` (``coder`` None: the plain network)."""

    def __init__(self, net: nn.Module, split: str, coder=None):
        super().__init__()
        self.net, self.split, self.coder = net, split, coder

    def forward(self, x):
        for name, m in self.net.named_stages():
            x = m(x)
            if name == self.split and self.coder is not None:
                x = self.coder(x)
        return x


def check_split(net: nn.Module, split: str, model: str) -> None:
    """``split`` must be one of the model's split points (every stage but the head)."""
    points = [n for n, _ in net.named_stages()[:-1]]
    if split not in points:
        raise UserError(
            f"--augment-split: unknown split point {split!r} for {model} "
            f"(available: {', '.join(points)})"
        )


def default_out(model: str, aug: Augmentation) -> Path:
    """``dfsim/models/weights/<model>_cat_<codec>_<split>[_loss].pt``."""
    from dfsim.models.fmnist_resnet import WEIGHTS_DIR

    stem = model.replace("-", "_")
    loss = "_loss" if aug.loss_rates else ""
    return WEIGHTS_DIR / f"{stem}_cat_{aug.codec.replace('-', '_')}_{aug.split}{loss}.pt"


def _committed(model: str) -> nn.Module:
    """The trainable network with the committed weights."""
    from dfsim.models import fmnist_detector, fmnist_resnet

    if model == "fmnist-resnet":
        net, path = fmnist_resnet.FashionResNet(), fmnist_resnet.WEIGHTS_FILE
    else:
        net, path = fmnist_detector.FashionDetector(), fmnist_detector.WEIGHTS_FILE
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net


def _cosine(opt, steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + np.cos(np.pi * min(k, steps) / steps))
    )


def finetune(
    model: str,
    out: Path,
    aug: Augmentation,
    epochs: int = 1,
    images: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    eval_images: int | None = None,
    log=print,
) -> dict:
    """Fine-tune ``model`` from its committed weights under ``aug`` and save the weights
    to ``out``. ``images``: training images (classifier, default all 60 000) or scenes
    (detector, default 8000) per epoch; ``eval_images``: the first test images (default
    2000) or held-out scenes (default 500) on which the scores are measured, loss-free
    after each epoch and coded at each rate before and after. Returns the last scores
    and the time taken."""
    if model not in MODELS:
        raise UserError(
            f"--model: compression-augmented training is for {' and '.join(MODELS)}, not {model}"
        )
    if epochs < 1:
        raise UserError(f"--epochs: must be >= 1, got {epochs}")
    if images is not None and images < 1:
        raise UserError(f"--augment-images: must be >= 1, got {images}")
    if lr is not None and not lr > 0:
        raise UserError(f"--augment-lr: must be > 0, got {lr}")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    net = _committed(model)
    check_split(net, aug.split, model)
    codecs = make_codecs(aug)
    rng = np.random.default_rng(seed)
    coder = FeatureCoder(codecs, rng, aug.loss_rates, aug.fill, aug.rows_per_packet)
    run = _finetune_classifier if model == "fmnist-resnet" else _finetune_detector
    return run(net, out, aug, coder, codecs, epochs, images, lr, seed, data_dir, eval_images, log)


def _coded_scores(evaluate, net, aug, codecs) -> dict:
    """``evaluate(module)`` of ``net`` with its features coded at each rate (no loss),
    by the rate's label."""
    rng = np.random.default_rng(0)  # draws nothing: one codec, no loss
    return {
        aug.label(rate): evaluate(SplitCoded(net, aug.split, FeatureCoder([codec], rng)))
        for rate, codec in zip(aug.rates, codecs, strict=True)
    }


def _report(log, what: str, before: dict, after: dict, key: str) -> dict:
    """Log the coded scores before and after; the result's ``coded_<key>_<rate>`` keys."""
    log(f"coded {what}, {key}: committed -> fine-tuned")
    for label, v in after.items():
        log(f"  {label}: {before[label]:.4f} -> {v:.4f}")
    return {f"coded_{key}_{label}": v for label, v in after.items()}


def _finetune_classifier(
    net, out, aug, coder, codecs, epochs, images, lr, seed, data_dir, eval_images, log
) -> dict:

    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models.fmnist_resnet import normalise
    from dfsim.models.training import evaluate, train_epoch

    gen = torch.Generator().manual_seed(seed)
    train_set = load_fashion_mnist("train", data_dir)
    test_set = load_fashion_mnist("test", data_dir)
    x_train, y_train = normalise(train_set.images), torch.from_numpy(train_set.labels)
    n_eval = min(eval_images or 2000, len(test_set))
    x_test = normalise(test_set.images[:n_eval])
    y_test = torch.from_numpy(test_set.labels[:n_eval])
    n = min(images or len(x_train), len(x_train))
    batch_size, lr = 128, lr or 0.005
    what = f"first {n_eval} test images"

    def score(module) -> float:
        return evaluate(module, x_test, y_test)

    t0 = time.perf_counter()
    before = _coded_scores(score, net, aug, codecs)
    model = SplitCoded(net, aug.split, coder)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = _cosine(opt, steps)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)[:n]
        total = train_epoch(model, x_train, y_train, perm, batch_size, opt, sched, gen)
        acc = score(net)
        log(
            f"epoch {epoch + 1}/{epochs} ({n} training images): loss {total / n:.4f}, "
            f"loss-free top-1 {acc:.4f} ({what}), {time.perf_counter() - t0:.0f} s"
        )
    coded = _report(log, what, before, _coded_scores(score, net, aug, codecs), "top1")
    _save(net, out)
    return {"top1": acc, **coded, "seconds": time.perf_counter() - t0, "epochs": epochs}


def _finetune_detector(
    net, out, aug, coder, codecs, epochs, images, lr, seed, data_dir, eval_images, log
) -> dict:
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.data.scenes import generate_scenes
    from dfsim.models.fmnist_detector import INPUT_SHAPE, STRIDE, normalise
    from dfsim.models.training_detector import evaluate, targets, train_epoch

    batch_size, lr = 64, lr or 2e-4
    n = images or 8000
    if n < batch_size:
        raise UserError(f"--augment-images: at least one batch of {batch_size} scenes, got {n}")
    gen = torch.Generator().manual_seed(seed)
    articles = load_fashion_mnist("train", data_dir)
    test_articles = load_fashion_mnist("test", data_dir)
    size = INPUT_SHAPE[1]
    h = w = size // STRIDE
    n_eval = min(eval_images or 500, 1000)
    val_x, val_boxes = generate_scenes(  # the first of the trainer's held-out scenes
        test_articles.images[:, 0], test_articles.labels, 1000, size, seed=seed + 10_000
    )
    val_x, val_boxes = val_x[:n_eval], val_boxes[:n_eval]
    what = f"first {n_eval} held-out scenes"

    def score(module) -> float:
        return evaluate(module, val_x, val_boxes)["map"]

    t0 = time.perf_counter()
    before = _coded_scores(score, net, aug, codecs)
    model = SplitCoded(net, aug.split, coder)
    steps = epochs * (n // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = _cosine(opt, steps)
    for epoch in range(epochs):
        model.train()
        # seed stream 2: not the scenes of the training run (stream 1)
        ep_seed = int(np.random.SeedSequence([seed, 2, epoch]).generate_state(1)[0])
        x, boxes = generate_scenes(articles.images[:, 0], articles.labels, n, size, seed=ep_seed)
        heat, reg, mask = (torch.from_numpy(a) for a in targets(boxes, h, w))
        xs = normalise(x[:, None])
        perm = torch.randperm(len(xs), generator=gen)
        total = train_epoch(model, xs, (heat, reg, mask), perm, batch_size, opt, sched)
        stats = evaluate(net, val_x, val_boxes)
        log(
            f"epoch {epoch + 1}/{epochs} ({n} scenes): loss {total / (n // batch_size):.4f}, "
            f"loss-free mAP@0.5 {stats['map50']:.4f}, mAP {stats['map']:.4f} ({what}), "
            f"{time.perf_counter() - t0:.0f} s"
        )
    coded = _report(log, what, before, _coded_scores(score, net, aug, codecs), "map")
    _save(net, out)
    return {**stats, **coded, "seconds": time.perf_counter() - t0, "epochs": epochs}


def _save(net: nn.Module, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
