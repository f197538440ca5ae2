"""The tensors the benchmarks measure on: the default model's real features, any model's
edge output at a split point, and synthetic feature-like tensors of any shape."""

from __future__ import annotations

import numpy as np


def synthetic_features(rng: np.random.Generator, n: int, shape) -> np.ndarray:
    """Feature-like tensors: a few smooth random fields mixed across channels, plus noise."""
    c, h, w = shape
    k = 4
    fields = rng.standard_normal((n, k, h, w)).astype(np.float32)
    for axis in (2, 3):  # smooth with a short moving average along rows and columns
        fields = sum(np.roll(fields, s, axis=axis) for s in range(-2, 3)) / 5
    # The channel mixing is the "network": fixed for a shape, so training and test tensors
    # share it (as real features share the network's filters). Only the fields are random.
    mix = np.random.default_rng([c, h, w]).standard_normal((c, k)).astype(np.float32)
    x = np.einsum("ck,nkhw->nchw", mix, fields) + 0.1 * rng.standard_normal((n, c, h, w)).astype(
        np.float32
    )
    return x.astype(np.float32)


def completion_features(n_test: int, rows: int):
    """The default model's features at its default split as the cloud decodes them (8-bit
    raw codec, packets of ``rows`` rows): ``n_test`` test images, 2000 training images
    (for the methods that fit), and a label for the report."""
    from dfsim.codecs.raw import RawCodec
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.experiment.prepare import coded_edge_features
    from dfsim.models import load_model
    from dfsim.transport.packets import PacketLayout

    model = load_model("fmnist-resnet")
    split = model.default_split
    layout = PacketLayout.for_shape(model.crossing(split)[0].shape, rows)

    def feats(subset, n):
        images = load_fashion_mnist(subset).head(n).images
        return coded_edge_features(model, split, images, RawCodec(8), layout)

    return feats("test", n_test), feats("train", 2000), f"fmnist-resnet {split}, 8-bit"


def edge_features(model, split: str, x: np.ndarray) -> np.ndarray:
    """The model's edge output at ``split`` for images ``x`` (its first tensor when
    several cross the cut), float32."""
    from dfsim.models.inference import prepare_for_inference, run_batched

    out = run_batched(prepare_for_inference(model.edge(split)), model.normalise(x), 256)
    return np.ascontiguousarray(out[0] if isinstance(out, tuple) else out, dtype=np.float32)
