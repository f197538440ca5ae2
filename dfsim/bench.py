"""Benchmarks (``dfsim bench ...``): the figures quoted in README come from here."""
from __future__ import annotations

import platform
import time

import numpy as np


def _rate(fn, items_per_call: int, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += items_per_call
    return n / (time.perf_counter() - t0)


def bench_model(args) -> dict:
    """Images/s of the cloud (back) sub-model at the default split, on real features."""
    import torch

    from dfsim.datasets import load_fashion_mnist
    from dfsim.models import load_model
    from dfsim.models.inference import prepare_for_inference, run_batched
    from dfsim.models.training import normalise

    model = load_model("fmnist-resnet")
    split = model.default_split
    images = load_fashion_mnist("test").head(1000)
    feats = run_batched(prepare_for_inference(model.front(split)), normalise(images.images), 500)
    back = prepare_for_inference(model.back(split))
    out = {"model": model.name, "split": split, "feature_shape": list(feats.shape[1:]),
           "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(), "images_per_s": {}}
    for bs in (1, 64, 256, 500, 1000):
        x = feats[:bs]
        rate = _rate(lambda: run_batched(back, x, bs), bs, args.seconds)
        out["images_per_s"][bs] = round(rate, 1)
        print(f"back sub-model ({split} {'x'.join(map(str, feats.shape[1:]))}), batch {bs:5d}: {rate:9.0f} images/s")
    return out


def bench_network(args) -> dict:
    """Packets/s through the SimPy network model (sender, link, channel, receiver)."""
    from dfsim.channels import GilbertElliott
    from dfsim.network import Link, simulate

    bits = np.full(224, 8 * (112 + 40))
    out = {}
    for label, fps in (("batch upload", None), ("30 fps stream", 30.0)):
        n_images = 1000
        rng = np.random.default_rng(0)
        ch = GilbertElliott.from_loss_burst(0.3, 4)
        rate = _rate(lambda: simulate(n_images, bits, ch, rng, Link(), fps), n_images * len(bits), args.seconds)
        out[label] = round(rate)
        print(f"network ({label}, 224 packets/image, Gilbert-Elliott 0.3/4): {rate:,.0f} packets/s")
    return {"packets_per_s": out}


def run(what: str, args) -> dict:
    return {"model": bench_model, "network": bench_network}[what](args)
