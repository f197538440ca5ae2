"""Sweeps and Monte Carlo trials: run a :class:`~dfsim.scenario.Scenario` end to end.

The deterministic part is done once: the edge sub-model's features and the full and
loss-free split models' predictions are kept in the on-disk cache (keyed by model,
weights, split, image content and bits), quantization and packetization once per run. Per (channel cell, trial) one loss pattern is drawn by the SimPy
network with a generator seeded from ``SeedSequence([seed, cell, trial])`` and every
method sees that same pattern (paired comparison).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from dfsim import cache, completion
from dfsim.checkpoint import Checkpoint, fingerprint
from dfsim.completion.base import method_class
from dfsim.datasets import UNLABELLED, ImageSet, load_fashion_mnist, load_image_folder, load_sample_photos
from dfsim.encoding import SIDE_INFO_BITS, Quantized, dequantize, quantize
from dfsim.errors import UserError
from dfsim.models import SplitModel, load_model
from dfsim.models.inference import predict, prepare_for_inference, run_batched
from dfsim.network import Link, Traffic, packet_bits, per_device, simulate
from dfsim.packets import PacketBatch, PacketLayout, depacketize, packetize
from dfsim.results import write_table
from dfsim.scenario import ChannelCell, Scenario


@dataclass
class TensorPart:
    """One tensor crossing the cut, with its own quantizer and packets."""

    name: str
    quantized: Quantized
    dequantized: np.ndarray  # the loss-free tensors the cloud would receive
    packets: PacketBatch
    layout: PacketLayout


@dataclass
class Prepared:
    """Everything deterministic of a run, computed once. ``parts`` are the tensors that
    cross the cut (one, unless the cut crosses a skip connection); each image's packets
    are those of part 0, then part 1, ... in the network's stream."""

    scenario: Scenario
    model: SplitModel
    split: str
    images: ImageSet
    parts: list[TensorPart]
    bits_per_packet: np.ndarray  # one image's packets, all parts
    reference_pred: np.ndarray  # loss-free quantized split model
    clean_top1: float  # full model, no quantization
    quantized_top1: float  # split model with quantization, no loss
    back: object

    @property
    def labels(self) -> np.ndarray:
        return self.images.labels

    @property
    def packets_per_image(self) -> int:
        return sum(p.layout.packets_per_tensor for p in self.parts)

    # the single-tensor view (part 0), for code and tools that handle one tensor
    @property
    def quantized(self) -> Quantized:
        return self.parts[0].quantized

    @property
    def dequantized(self) -> np.ndarray:
        return self.parts[0].dequantized

    @property
    def packets(self) -> PacketBatch:
        return self.parts[0].packets

    @property
    def layout(self) -> PacketLayout:
        return self.parts[0].layout


def load_images(scn: Scenario, input_shape=None) -> ImageSet:
    """The scenario's images, at the model's input size (``input_shape``: C, H, W)."""
    data = scn.data
    if data.dataset == "folder":
        images = load_image_folder(data.dir, input_shape, data.labels, data.resize)
    elif data.dataset == "sample-photos":
        images = load_sample_photos(input_shape)
    else:
        images = load_fashion_mnist(data.split, data.dir)
    if images.images.shape[1:] != tuple(input_shape or images.images.shape[1:]):
        raise UserError(f"data.dataset: {images.name} images are {'x'.join(map(str, images.images.shape[1:]))}, "
                        f"the model takes {'x'.join(map(str, input_shape))}")
    if scn.data.n_images > len(images):
        raise UserError(
            f"data.n_images: {scn.data.n_images} exceeds the {len(images)} images of {images.name}"
        )
    return images.head(scn.data.n_images)


def build_model(scn: Scenario) -> tuple[SplitModel, str]:
    model = _load(scn.model)
    split = scn.model.split or model.default_split
    model._index(split)  # validates the name
    crossing = model.crossing(split)
    shapes = model.feature_shapes[split]
    shapes = [shapes] if isinstance(shapes[0], int) else list(shapes)
    nw = scn.network
    side_bits = SIDE_INFO_BITS * len(shapes)
    for name, shape in zip(crossing, shapes, strict=True):
        if len(shape) != 3:
            raise UserError(f"model.split: tensor {name!r} crossing the cut after {split!r} is "
                            f"{'x'.join(map(str, shape))}, not channels x height x width: choose another split")
        c, h, w = shape
        if scn.rows_per_packet > h:
            raise UserError(
                f"packets.rows_per_packet: {scn.rows_per_packet} exceeds the feature height {h} at split {split!r}"
            )
        size = nw.header_bytes + math.ceil((scn.rows_per_packet * w * scn.bits + side_bits) / 8)
        if size > nw.mtu_bytes:
            fit = (8 * (nw.mtu_bytes - nw.header_bytes) - side_bits) // (w * scn.bits)
            hint = f"use rows_per_packet <= {fit}" if fit >= 1 else "fewer bits or a larger MTU"
            raise UserError(
                f"packets.rows_per_packet: {scn.rows_per_packet} rows of {w} values at {scn.bits} bits make "
                f"{size}-byte packets (with the {nw.header_bytes}-byte header), over network.mtu_bytes "
                f"{nw.mtu_bytes}; {hint}"
            )
    return model, split


def _load(spec) -> SplitModel:
    if spec.import_path:
        from dfsim.models.sources import from_import_path

        return from_import_path(spec.import_path, spec.weights, spec.input_size, spec.mean, spec.std, spec.split)
    return load_model(spec.name, weights=spec.weights)


def _feature_key(part: int) -> str:
    """Cache entry of tensor ``part``'s features ("features" for the first: older caches stay valid)."""
    return "features" if part == 0 else f"features_{part}"


def _deterministic_outputs(scn: Scenario, model: SplitModel, split: str, images: ImageSet, back):
    """Edge features, full-model and loss-free split-model predictions: computed once per
    (model, weights, split, image content, bits) and kept in the on-disk cache."""
    key = cache.key_of(model=model.name, weights=model.weights_id, split=split, batch=scn.batch_size,
                       images=hashlib.sha256(images.images.tobytes()).hexdigest(), torch=torch.__version__)
    stored = cache.load_arrays("features", key)
    if stored is None:
        x = model.normalise(images.images)
        feats = run_batched(prepare_for_inference(model.front(split)), x, scn.batch_size)
        feats = feats if isinstance(feats, tuple) else (feats,)
        stored = {_feature_key(i): f.astype(np.float32) for i, f in enumerate(feats)}
        stored["clean_pred"] = predict(prepare_for_inference(model.full()), x, scn.batch_size)
        cache.save_arrays("features", key, stored)
    n_parts = len(model.crossing(split))
    qs = [quantize(stored[_feature_key(i)], scn.bits) for i in range(n_parts)]
    dequantized = [dequantize(q) for q in qs]
    ref_key = cache.key_of(features=key, bits=scn.bits)
    ref = cache.load_arrays("reference", ref_key)
    if ref is None:
        ref = {"pred": predict(back, dequantized if n_parts > 1 else dequantized[0], scn.batch_size)}
        cache.save_arrays("reference", ref_key, ref)
    return qs, dequantized, stored["clean_pred"], ref["pred"]


def prepare(scn: Scenario) -> Prepared:
    model, split = build_model(scn)
    images = load_images(scn, model.input_shape)
    back = prepare_for_inference(model.back(split))
    qs, dequantized, clean_pred, reference_pred = _deterministic_outputs(scn, model, split, images, back)
    parts, bits = [], []
    for i, (name, q, dq) in enumerate(zip(model.crossing(split), qs, dequantized, strict=True)):
        layout = PacketLayout.for_shape(dq.shape[1:], scn.rows_per_packet, scn.order)
        parts.append(TensorPart(name, q, dq, packetize(q.codes, layout), layout))
        # every tensor's min/max (side information) rides in the image's first packet
        side = SIDE_INFO_BITS * len(qs) if i == 0 else 0
        bits.append(packet_bits(layout.packet_values() * scn.bits, _link(scn), side_info_bits=side))
    return Prepared(
        scenario=scn, model=model, split=split, images=images, parts=parts,
        bits_per_packet=np.concatenate(bits),
        reference_pred=reference_pred,
        clean_top1=accuracy(clean_pred, images.labels),
        quantized_top1=accuracy(reference_pred, images.labels),
        back=back,
    )


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 over the labelled images; NaN when none is labelled (agreement only)."""
    known = labels != UNLABELLED
    return float((pred[known] == labels[known]).mean()) if known.any() else math.nan


def _link(scn: Scenario) -> Link:
    nw = scn.network
    return Link(bandwidth_bps=nw.bandwidth_mbps * 1e6, propagation_ms=nw.propagation_ms, header_bytes=nw.header_bytes,
                buffer_bytes=nw.buffer_bytes, jitter=nw.jitter)


def trial_rng(seed: int, cell: ChannelCell, trial: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, cell.seed_key, trial]))


def transmit(prep: Prepared, cell: ChannelCell, trial: int):
    """The network simulation of one (cell, trial): a pure function of scenario, cell and trial."""
    scn = prep.scenario
    rng = trial_rng(scn.seed, cell, trial)
    # arrivals and jitter draw from their own stream, so the loss stream is the same with or without them
    aux = np.random.default_rng(np.random.SeedSequence([scn.seed, cell.seed_key, trial, 1]))
    n = len(prep.labels)
    nw = scn.network
    channel = cell.channel.for_trial(trial, n * prep.packets_per_image)
    return simulate(n, prep.bits_per_packet, channel, rng, _link(scn),
                    traffic=Traffic(fps=nw.fps, arrivals=nw.arrivals, devices=nw.devices, edge_ms=nw.edge_ms),
                    deadline_ms=nw.deadline_ms, arq=scn.error_control.arq, fec=scn.error_control.fec,
                    side_info=replace(nw.side_info, bits=SIDE_INFO_BITS * len(prep.parts)), aux_rng=aux)


def save_loss_patterns(preps: list[Prepared], directory) -> Path:
    """Write every (config, cell, trial)'s packet loss flags as ``.npy`` (bool, True = lost;
    image i's packets are ``[i*K, (i+1)*K)`` in send order) and an ``index.csv`` describing
    them. A file replays as a ``kind: trace`` channel."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    index = []
    for k, prep in enumerate(preps):
        scn = prep.scenario
        for ci, cell in enumerate(scn.cells):
            for trial in range(scn.trials):
                lost = transmit(prep, cell, trial).lost
                name = (f"cfg{k:02d}_" if len(preps) > 1 else "") + f"cell{ci:03d}_trial{trial:03d}.npy"
                tmp = d / f".{name}.tmp.npy"
                np.save(tmp, lost)
                tmp.replace(d / name)
                index.append({"file": name, "channel": cell.kind, "loss_rate": cell.loss_rate,
                              "burst_length": cell.burst_length, "trial": trial, "n_images": len(prep.labels),
                              "packets_per_image": prep.packets_per_image, "split": prep.split,
                              "bits": scn.bits, "order": scn.order, "rows_per_packet": scn.rows_per_packet,
                              "realised_loss_rate": float(lost.mean())})

    write_table(index, d / "index.csv")
    return d


def write_device_table(preps: list[Prepared], path) -> None:
    """devices.csv: latency and loss per (config, channel setting, trial, device). The
    network simulation is a pure function of (scenario, cell, trial), so it is rerun here."""
    rows = []
    for prep in preps:
        scn = prep.scenario
        for cell in scn.cells:
            for trial in range(scn.trials):
                tx = transmit(prep, cell, trial)
                for d in per_device(tx, prep.packets_per_image):
                    rows.append({"split": prep.split, "bits": scn.bits, "rows_per_packet": scn.rows_per_packet,
                                 "order": scn.order, "error_control": scn.error_control.label, "channel": cell.kind,
                                 "loss_rate": cell.loss_rate, "burst_length": cell.burst_length, "trial": trial, **d})

    write_table(rows, Path(path))


def run_trial(prep: Prepared, cell: ChannelCell, trial: int, methods: list) -> list[dict]:
    """One Monte Carlo trial of one channel cell: one loss pattern, every method."""
    scn = prep.scenario
    n = len(prep.labels)
    tx = transmit(prep, cell, trial)
    side_lost = tx.side_info_lost
    lost_2d = tx.lost.reshape(n, -1)
    previous = scn.network.side_info.on_loss == "previous" and bool(side_lost.any())
    if previous:  # decode with the range of the same device's last image whose side information arrived
        src = _previous_received(side_lost, tx.device)
        usable, src = src >= 0, np.maximum(src, 0)
    received, lost, offset = [], [], 0
    for part in prep.parts:  # each tensor crossing the cut: its own packets and quantizer
        k = part.layout.packets_per_tensor
        part_lost = lost_2d[:, offset : offset + k].reshape(-1)
        offset += k
        codes, lost_p = depacketize(part.packets.subset(~part_lost), n, part.layout)
        q = part.quantized
        vmin, vmax = q.vmin, q.vmax
        if previous:
            vmin = np.where(side_lost & usable, q.vmin[src], q.vmin)
            vmax = np.where(side_lost & usable, q.vmax[src], q.vmax)
            lost_p[side_lost & ~usable] = True  # no range to decode with
        rec = dequantize(Quantized(codes, vmin, vmax, q.bits))
        rec[lost_p] = 0.0
        received.append(rec)
        lost.append(lost_p)
    latency = tx.latency_ms
    causes = tx.loss_by_cause()
    common = {
        "channel": cell.kind, "loss_rate": cell.loss_rate, "burst_length": cell.burst_length, "trial": trial,
        "n_images": n, "realised_loss_rate": float(tx.lost.mean()),
        "latency_mean_ms": float(latency.mean()), "latency_p95_ms": float(np.percentile(latency, 95)),
        "bits_per_image": int(round(tx.bits_sent / n)), "packets_per_image": prep.packets_per_image,
        "split": prep.split, "bits": scn.bits, "rows_per_packet": scn.rows_per_packet, "order": scn.order,
        "error_control": scn.error_control.label,
        "latency_p50_ms": float(np.percentile(latency, 50)), "latency_p99_ms": float(np.percentile(latency, 99)),
        "channel_loss_rate": causes["channel"], "congestion_loss_rate": causes["congestion"],
        "deadline_loss_rate": causes["deadline"], "side_info_loss_rate": float(side_lost.mean()),
        "retransmissions_per_image": tx.retransmissions / n,
    }
    rows = []
    # decoded with another image's min/max counts as damaged too: the cloud must rerun
    any_lost = any(bool(m.any()) for m in lost) or previous
    for spec, method in methods:
        per_part = method if isinstance(method, list) else [method]
        t0 = time.perf_counter()
        repaired = [m.complete_batch(r, lo) for m, r, lo in zip(per_part, received, lost, strict=True)] \
            if any_lost else received
        dt = time.perf_counter() - t0
        iters = [i for m in per_part for i in (getattr(m, "iterations", None) or [])] if any_lost else None
        # Nothing lost: the cloud sees exactly the loss-free tensors, whose predictions we have.
        pred = predict(prep.back, repaired if len(repaired) > 1 else repaired[0], scn.batch_size) \
            if any_lost else prep.reference_pred
        n_lost = sum(int(lo.sum()) for lo in lost)
        e2e = _cloud_latency_ms(tx, scn.network, 1e3 * dt / n)
        rows.append({
            "method": spec.label, **common,
            "e2e_latency_mean_ms": float(e2e.mean()), "e2e_latency_p95_ms": float(np.percentile(e2e, 95)),
            "top1": accuracy(pred, prep.labels),
            "agreement": float((pred == prep.reference_pred).mean()),
            "completion_ms_per_tensor": 1e3 * dt / n,
            "completion_iters": float(np.mean(iters)) if iters else 0.0,
            "mse_lost": mse_lost(repaired, prep, lost) if n_lost else 0.0,
        })
    return rows


def mse_lost(repaired: list, prep: Prepared, lost: list) -> float:
    """Mean squared error of the completed values on the lost entries of every part."""
    errs = [(r - p.dequantized)[lo] for r, p, lo in zip(repaired, prep.parts, lost, strict=True)]
    err = errs[0] if len(errs) == 1 else np.concatenate(errs)
    return float(np.mean(np.square(err, dtype=np.float64)))


def _previous_received(side_lost: np.ndarray, device: np.ndarray) -> np.ndarray:
    """For each image, the index of the same device's latest earlier image whose side
    information arrived (-1: none); images of a device are in index order."""
    src = np.full(len(side_lost), -1)
    for d in np.unique(device):
        idx = np.flatnonzero(device == d)
        ok = np.where(~side_lost[idx], idx, -1)
        last = np.maximum.accumulate(ok)
        src[idx[1:]] = last[:-1]
    return src


def _cloud_latency_ms(tx, nw, completion_ms: float) -> np.ndarray:
    """End-to-end latency: the cloud serves images one at a time in delivery order, each
    for ``cloud_ms`` (back end) plus, with ``completion_time: measured``, the method's
    measured completion time per tensor."""
    service = nw.cloud_ms + (completion_ms if nw.completion_time == "measured" else 0.0)
    if service == 0:
        return tx.latency_ms
    order = np.argsort(tx.delivered_s, kind="stable")
    finish = np.empty(len(order))
    t = -np.inf
    for j, i in enumerate(order):  # Lindley recursion
        t = max(t, tx.delivered_s[i] * 1e3) + service
        finish[j] = t
    out = np.empty(len(order))
    out[order] = finish - tx.capture_s[order] * 1e3
    return out


def build_methods(scn: Scenario, prep: Prepared, log=None) -> list:
    """Instantiate the scenario's methods, with the packetization's parameters bound and
    trained methods fitted (or loaded from the cache)."""
    out = []
    for spec in scn.methods:
        per_part = []
        for i in range(len(prep.parts)):  # one instance per tensor crossing the cut
            method = make_method(spec.name, spec.params, scn)
            if method.needs_fit:
                fit_method(method, spec, prep, log, part=i)
            per_part.append(method)
        out.append((spec, per_part[0] if len(per_part) == 1 else per_part))
    return out


def make_method(name: str, params: dict, scn: Scenario):
    cls = method_class(name)
    layout = {"rows_per_packet": scn.rows_per_packet}
    return completion.make(name, **params, **{k: layout[k] for k in cls.layout_params})


def quantized_edge_features(model: SplitModel, split: str, images: np.ndarray, bits: int,
                            batch_size: int = 256, part: int = 0) -> np.ndarray:
    """What the cloud receives without loss: edge features of ``images`` (uint8 N x C x H x W),
    quantized to ``bits`` and dequantized (tensor ``part`` when several cross the cut)."""
    feats = run_batched(prepare_for_inference(model.front(split)), model.normalise(images), batch_size)
    feats = feats[part] if isinstance(feats, tuple) else feats
    return dequantize(quantize(feats, bits))


def training_features(prep: Prepared, n_images: int, part: int = 0) -> np.ndarray:
    """Front features of the first ``n_images`` training images, quantized like the scenario's."""
    scn = prep.scenario
    if scn.data.fit_dir:
        train = load_image_folder(scn.data.fit_dir, prep.model.input_shape, "none").head(n_images)
    elif scn.data.dataset == "fashion-mnist":
        train = load_fashion_mnist("train", scn.data.dir).head(n_images)
    else:
        raise UserError(f"methods: trained methods (altec) need training images: set data.fit_dir "
                        f"(a folder of images unlike the {scn.data.dataset} test images)")
    return quantized_edge_features(prep.model, prep.split, train.images, scn.bits, scn.batch_size, part)


def fit_method(method, spec, prep: Prepared, log=None, force: bool = False, part: int = 0) -> None:
    """Fit a trained method on training-split features, through the on-disk cache."""
    scn = prep.scenario
    n_fit = getattr(method, "fit_images", 2000)
    data = f"folder:{scn.data.fit_dir}" if scn.data.fit_dir else "fashion-mnist/train"
    key = cache.key_of(
        method=spec.name, params=spec.params, model=prep.model.name, weights=prep.model.weights_id,
        split=prep.split, rows_per_packet=scn.rows_per_packet, bits=scn.bits, order=scn.order,
        data=data, fit_images=n_fit, version=1, **({"part": part} if part else {}),
    )
    state = None if force else cache.load_arrays(spec.name, key)
    if state is not None:
        method.load_fitted_state(state)
        return
    t0 = time.perf_counter()
    method.fit(training_features(prep, n_fit, part))
    path = cache.save_arrays(spec.name, key, method.fitted_state())
    if log:
        log(f"dfsim: fitted {spec.label} on {n_fit} training images in {time.perf_counter() - t0:.1f} s "
            f"(cached in {path})")


# --------------------------------------------------------------------------- execution
# Work unit = one (channel cell, trial): one loss pattern, every method. Its numbers depend
# only on (scenario, cell, trial), so any number of workers in any order gives the same
# results. Every process runs torch with ONE thread (whatever the worker count), so the
# cloud sub-model's arithmetic is the same everywhere.

_WORKER: dict = {}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "NUMBA_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_children():
    """Workers are the parallelism: each must run its BLAS single-threaded, else the
    workers' spinning BLAS threads fight over the cores (measured: 2 workers ran the
    default scenario more than 3x slower than 1)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _init_worker(scn: Scenario) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER.clear()
    _WORKER.update(scenario=scn, parts={})


def _part(k: int, log=None) -> tuple[Prepared, list]:
    """Config k's prepared state and methods, made on first use in this process."""
    parts = _WORKER["parts"]
    if k not in parts:
        sub = _WORKER["scenario"].for_config(_WORKER["scenario"].configs[k])
        prep = prepare(sub)
        parts[k] = (prep, build_methods(sub, prep, log))
    return parts[k]


def _dask_unit(unit: tuple[int, int, int], scn: Scenario, fp: str) -> tuple[tuple[int, int, int], list[dict]]:
    """A work unit on a Dask worker: the worker prepares each config once, on first use."""
    if _WORKER.get("fingerprint") != fp:
        _init_worker(scn)
        _WORKER["fingerprint"] = fp
    return _run_unit(unit)


def _connect_dask(address: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise UserError("--dask: needs dask.distributed (pip install 'dask[distributed]')") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise UserError(f"--dask: cannot reach the scheduler at {address!r}: {exc}") from None


def _run_on_dask(client, scn: Scenario, fp: str, todo: list, finished) -> None:
    from dask.distributed import as_completed as dask_completed

    futures = [client.submit(_dask_unit, u, scn, fp, pure=False) for u in todo]
    for fut in dask_completed(futures):
        finished(*fut.result())


def _run_unit(unit: tuple[int, int, int]) -> tuple[tuple[int, int, int], list[dict]]:
    k, cell_index, trial = unit
    prep, methods = _part(k)
    return unit, run_trial(prep, prep.scenario.cells[cell_index], trial, methods)


def run(scn: Scenario, progress=None, log=None, workers: int | None = None,
        checkpoint_dir=None, dask: str | None = None) -> tuple[list[dict], list[Prepared]]:
    """Run every (config, cell, trial) of ``scn``; returns the result rows (in config, cell,
    trial, method order) and each config's prepared state. ``workers`` local processes
    (default: all cores), or the Dask scheduler at ``dask``. With ``checkpoint_dir``,
    finished units are saved there and a rerun resumes from them."""
    units = [(k, c, t) for k in range(len(scn.configs)) for c in range(len(scn.cells)) for t in range(scn.trials)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(units)))
    client = _connect_dask(dask) if dask else None  # fail fast, before anything is written
    torch.set_num_threads(1)
    _init_worker(scn)
    # Every config prepared (and its trained methods fitted into the cache) up front: a
    # bad split or packet size fails before any work, and workers only load from the cache.
    parts = [_part(k, log) for k in range(len(scn.configs))]
    preps = [p for p, _ in parts]
    ckpt = None
    fp = fingerprint(scn.resolved(), preps[0].model.weights_id)
    results: dict[tuple[int, int, int], list[dict]] = {}
    if checkpoint_dir is not None:
        ckpt = Checkpoint(checkpoint_dir, fp)
        results = {u: rows for u, rows in ckpt.done().items() if u in set(units)}
        if results and log:
            log(f"dfsim: resuming: {len(results)} of {len(units)} work units already done")
        if progress is not None and results:
            progress(len(results))
    todo = [u for u in units if u not in results]

    def finished(unit, rows):
        results[unit] = rows
        if ckpt is not None:
            ckpt.save(unit, rows)
        if progress is not None:
            progress(1)

    if client is not None:
        with client:
            _run_on_dask(client, scn, fp, todo, finished)
    elif workers == 1 or len(todo) <= 1:
        for unit in todo:
            finished(*_run_unit(unit))
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork after torch has started threads
        with _single_threaded_children(), ProcessPoolExecutor(
            min(workers, len(todo)), mp_context=ctx, initializer=_init_worker, initargs=(scn,)
        ) as pool:
            # Costliest units (highest loss) first, so that the last ones to finish are short.
            by_cost = sorted(todo, key=lambda u: (-scn.cells[u[1]].loss_rate, u))
            for fut in as_completed([pool.submit(_run_unit, u) for u in by_cost]):
                finished(*fut.result())
    rows = [row for unit in units for row in results[unit]]
    return rows, preps
