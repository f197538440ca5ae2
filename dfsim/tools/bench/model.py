"""``dfsim bench model``: images per second of the cloud (back) sub-model at the default
split, on real features, at a few batch sizes."""

from __future__ import annotations

from dfsim.reproducibility import cpu_model
from dfsim.tools.bench.tables import model_line
from dfsim.tools.bench.timing import rate

BATCHES = (1, 64, 256, 500, 1000)


def bench_model(args) -> dict:
    """Images/s of the cloud (back) sub-model at the default split, on real features
    (``args``: ``seconds`` per batch size, ``device``); prints a line per batch size."""
    import torch

    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import load_model
    from dfsim.models.inference import prepare_for_inference, run_batched

    model = load_model("fmnist-resnet")
    split = model.default_split
    images = load_fashion_mnist("test").head(1000)
    feats = run_batched(
        prepare_for_inference(model.edge(split)), model.normalise(images.images), 500
    )
    back = prepare_for_inference(model.cloud(split))
    out = {
        "model": model.name,
        "split": split,
        "feature_shape": list(feats.shape[1:]),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "device": args.device,
        "images_per_s": {},
    }
    for bs in BATCHES:
        x = feats[:bs]
        per_s = rate(lambda x=x, bs=bs: run_batched(back, x, bs), bs, args.seconds)
        out["images_per_s"][bs] = round(per_s, 1)
        print(model_line(split, feats.shape[1:], bs, out["device"], per_s))
    return out
