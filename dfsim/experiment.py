"""Sweeps and Monte Carlo trials: run a :class:`~dfsim.scenario.Scenario` end to end.

Per run, the deterministic part is done once: the edge sub-model's features, the
full model's and the quantized split model's predictions, quantization and
packetization. Per (channel cell, trial) one loss pattern is drawn by the SimPy
network with a generator seeded from ``SeedSequence([seed, cell, trial])`` and every
method sees that same pattern (paired comparison).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfsim import completion
from dfsim.datasets import ImageSet, load_fashion_mnist
from dfsim.encoding import SIDE_INFO_BITS, Quantized, dequantize, quantize
from dfsim.errors import UserError
from dfsim.models import SplitModel, load_model
from dfsim.models.inference import predict, prepare_for_inference, run_batched
from dfsim.models.training import normalise
from dfsim.network import Link, packet_bits, simulate
from dfsim.packets import PacketBatch, PacketLayout, depacketize, packetize
from dfsim.scenario import ChannelCell, Scenario


@dataclass
class Prepared:
    """Everything deterministic of a run, computed once."""

    scenario: Scenario
    model: SplitModel
    split: str
    images: ImageSet
    quantized: Quantized
    packets: PacketBatch
    layout: PacketLayout
    bits_per_packet: np.ndarray
    reference_pred: np.ndarray  # loss-free quantized split model
    clean_top1: float  # full model, no quantization
    quantized_top1: float  # split model with quantization, no loss
    back: object

    @property
    def labels(self) -> np.ndarray:
        return self.images.labels


def load_images(scn: Scenario) -> ImageSet:
    images = load_fashion_mnist(scn.data.split, scn.data.dir)
    if scn.data.n_images > len(images):
        raise UserError(
            f"data.n_images: {scn.data.n_images} exceeds the {len(images)} images of {images.name}"
        )
    return images.head(scn.data.n_images)


def build_model(scn: Scenario) -> tuple[SplitModel, str]:
    model = load_model(scn.model.name, weights=scn.model.weights)
    split = scn.model.split or model.default_split
    model._index(split)  # validates the name
    c, h, w = model.feature_shapes[split]
    if scn.rows_per_packet > h:
        raise UserError(
            f"packets.rows_per_packet: {scn.rows_per_packet} exceeds the feature height {h} at split {split!r}"
        )
    return model, split


def prepare(scn: Scenario) -> Prepared:
    model, split = build_model(scn)
    images = load_images(scn)
    x = normalise(images.images)
    full = prepare_for_inference(model.full())
    front = prepare_for_inference(model.front(split))
    back = prepare_for_inference(model.back(split))
    clean_pred = predict(full, x, scn.batch_size)
    features = run_batched(front, x, scn.batch_size).astype(np.float32)
    q = quantize(features, scn.bits)
    reference_pred = predict(back, dequantize(q), scn.batch_size)
    layout = PacketLayout.for_shape(features.shape[1:], scn.rows_per_packet, scn.order)
    payload_bits = layout.packet_values() * scn.bits
    return Prepared(
        scenario=scn, model=model, split=split, images=images, quantized=q,
        packets=packetize(q.codes, layout), layout=layout,
        bits_per_packet=packet_bits(payload_bits, _link(scn), side_info_bits=SIDE_INFO_BITS),
        reference_pred=reference_pred,
        clean_top1=float((clean_pred == images.labels).mean()),
        quantized_top1=float((reference_pred == images.labels).mean()),
        back=back,
    )


def _link(scn: Scenario) -> Link:
    nw = scn.network
    return Link(bandwidth_bps=nw.bandwidth_mbps * 1e6, propagation_ms=nw.propagation_ms, header_bytes=nw.header_bytes)


def trial_rng(seed: int, cell: ChannelCell, trial: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, cell.seed_key, trial]))


def run_trial(prep: Prepared, cell: ChannelCell, trial: int, methods: list) -> list[dict]:
    """One Monte Carlo trial of one channel cell: one loss pattern, every method."""
    scn = prep.scenario
    n = len(prep.labels)
    rng = trial_rng(scn.seed, cell, trial)
    tx = simulate(n, prep.bits_per_packet, cell.channel, rng, _link(scn), scn.network.fps)
    codes, lost = depacketize(prep.packets.subset(~tx.lost), n, prep.layout)
    q = prep.quantized
    received = dequantize(Quantized(codes, q.vmin, q.vmax, q.bits))
    received[lost] = 0.0
    latency = tx.latency_ms
    common = {
        "channel": cell.kind, "loss_rate": cell.loss_rate, "burst_length": cell.burst_length, "trial": trial,
        "n_images": n, "realised_loss_rate": float(tx.lost.mean()),
        "latency_mean_ms": float(latency.mean()), "latency_p95_ms": float(np.percentile(latency, 95)),
        "bits_per_image": int(prep.bits_per_packet.sum()), "packets_per_image": prep.layout.packets_per_tensor,
        "split": prep.split, "bits": scn.bits, "rows_per_packet": scn.rows_per_packet, "order": scn.order,
    }
    rows = []
    for spec, method in methods:
        t0 = time.perf_counter()
        repaired = method.complete_batch(received, lost) if lost.any() else received
        dt = time.perf_counter() - t0
        pred = predict(prep.back, repaired, scn.batch_size)
        rows.append({
            "method": spec.label, **common,
            "top1": float((pred == prep.labels).mean()),
            "agreement": float((pred == prep.reference_pred).mean()),
            "completion_ms_per_tensor": 1e3 * dt / n,
        })
    return rows


def build_methods(scn: Scenario) -> list:
    out = []
    for spec in scn.methods:
        params = {k: v for k, v in spec.params.items()}
        out.append((spec, completion.make(spec.name, **params)))
    return out


def run(scn: Scenario, progress=None) -> tuple[list[dict], Prepared]:
    """Run every (cell, trial) of ``scn``; returns the result rows and the prepared state."""
    prep = prepare(scn)
    methods = build_methods(scn)
    rows: list[dict] = []
    for cell in scn.cells:
        for trial in range(scn.trials):
            rows.extend(run_trial(prep, cell, trial, methods))
            if progress is not None:
                progress(1)
    return rows, prep
