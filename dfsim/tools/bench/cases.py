"""The split points ``dfsim bench codecs`` codes: the default model's every single-tensor
split point and EfficientNet-Lite0's :data:`EFFICIENTNET_SPLITS`, each with the features
of the first test images (and training features for the codecs that fit)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dfsim.tools.bench.features import edge_features

ROWS_PER_PACKET = 4
EFFICIENTNET_SPLITS = ("_blocks.1", "_blocks.4", "_blocks.10", "_swish_1")


@dataclass
class Case:
    """The features of one split point: N x C x H x W float32."""

    model: str
    split: str
    features: np.ndarray
    train: object = None  # callable -> training features, for codecs that need a fit
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """ "model split", for messages."""
        return f"{self.model} {self.split}"


def packet_rows(height: int, rows: int = ROWS_PER_PACKET) -> int:
    """Rows per packet: ``rows``, or the tensor's height when it is shorter."""
    return max(1, min(rows, height))


def single_tensor(model, split: str) -> bool:
    """Whether one C x H x W tensor crosses the cut at ``split``."""
    crossing = model.crossing(split)
    return len(crossing) == 1 and len(crossing[0].shape) == 3


def cases(n_images: int, wanted, notes: list, inputs: dict):
    """Yield the cases (the default model's every single-tensor split, EfficientNet-Lite0's
    :data:`EFFICIENTNET_SPLITS`), or only the (model, split) pairs in ``wanted``. Split
    points left out are told in ``notes``; each model's input images' statistics go to
    ``inputs`` (Choi & Bajić's Table I has a row for them)."""
    for name, model_cases in (
        ("fmnist-resnet", _default_model_cases),
        ("efficientnet-lite0", _efficientnet_cases),
    ):
        if wanted is None or any(m == name for m, _ in wanted):
            yield from model_cases(name, n_images, wanted, notes, inputs)


def _keep(wanted, model_name: str, split: str) -> bool:
    return wanted is None or (model_name, split) in wanted


def _input_stats(inputs: dict, name: str, images) -> None:
    """The similarity table of 8-bit input images (mean over images), as ``inputs[name]``."""
    from dfsim.codecs.statistics import similarity_table

    imgs = np.asarray(images)
    imgs = imgs.reshape(len(imgs), -1, *imgs.shape[-2:]) if imgs.ndim >= 3 else imgs
    if imgs.dtype != np.uint8:
        return
    tables = [similarity_table(t) for t in imgs]
    inputs[name] = {k: float(np.mean([t[k] for t in tables])) for k in tables[0]}


def _default_model_cases(name: str, n_images: int, wanted, notes: list, inputs: dict):
    """The default model on Fashion-MNIST: every single-tensor split point; 200 training
    images' features, made when a codec first asks for them."""
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import load_model

    model = load_model(name)
    images = load_fashion_mnist("test").head(n_images).images
    _input_stats(inputs, name, images)
    train_cache = {}

    for split in model.split_points:
        if not _keep(wanted, name, split):
            continue
        if not single_tensor(model, split):
            notes.append(f"{name} {split}: skipped (not one C x H x W tensor)")
            continue

        def train(split=split, model=model):
            if split not in train_cache:
                imgs = load_fashion_mnist("train").head(200).images
                train_cache[split] = edge_features(model, split, imgs)
            return train_cache[split]

        yield Case(name, split, edge_features(model, split, images), train)


def _efficientnet_cases(name: str, n_images: int, wanted, notes: list, inputs: dict):
    """EfficientNet-Lite0 on the sample photos, when it is installed: a few split points;
    the photos not benchmarked train the codecs that fit."""
    from dfsim.errors import UserError
    from dfsim.models import load_model
    from dfsim.registry import build

    try:
        model = load_model(name)
        photos = build("dataset", "sample-photos").load(model.input_shape).images
    except (UserError, ImportError) as exc:
        notes.append(f"{name}: skipped ({str(exc).splitlines()[0]})")
        return
    images, rest = photos[:n_images], photos[n_images:]
    _input_stats(inputs, name, images)
    for split in EFFICIENTNET_SPLITS:
        if not _keep(wanted, name, split):
            continue
        if split not in model.split_points or not single_tensor(model, split):
            notes.append(f"{name} {split}: skipped (not a single-tensor split point)")
            continue
        feats = edge_features(model, split, images)

        def train(split=split, model=model, feats=feats):
            # the photos not benchmarked; the benchmarked ones when there are none left
            return edge_features(model, split, rest) if len(rest) else feats

        yield Case(name, split, feats, train)
