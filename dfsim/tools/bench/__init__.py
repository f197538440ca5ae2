"""Benchmarks (``dfsim bench ...``): the figures quoted in README come from here."""

from __future__ import annotations

import time

import numpy as np

from dfsim.errors import UserError
from dfsim.reproducibility import cpu_model as cpu_name  # benchmarks name the CPU


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
        "cpu": cpu_name(),
        "device": args.device,
        "images_per_s": {},
    }
    for bs in (1, 64, 256, 500, 1000):
        x = feats[:bs]
        rate = _rate(lambda x=x, bs=bs: run_batched(back, x, bs), bs, args.seconds)
        out["images_per_s"][bs] = round(rate, 1)
        print(
            f"back sub-model ({split} {'x'.join(map(str, feats.shape[1:]))}), batch {bs:5d}, "
            f"{out['device']}: {rate:9.0f} images/s"
        )
    return out


def bench_network(args) -> dict:
    """Packets/s through the SimPy network model (devices, drop-tail buffer, link, channel,
    receiver; with and without ARQ and FEC), one process, one core."""
    from dfsim.transport.channels import GilbertElliott
    from dfsim.transport.network import Arq, Fec, Jitter, Link, Traffic, simulate

    payload = np.full(224, 8 * 112)  # 112-byte payloads; the network adds header and side info
    ch = GilbertElliott.from_loss_burst(0.3, 4)
    link = Link(bandwidth_bps=20e6, buffer_bytes=200_000, jitter=Jitter("exponential", 1.0))
    timed = {"link": link, "traffic": Traffic(fps=30.0), "deadline_ms": 40}
    cases = {
        "defaults (30 fps, unlimited buffer)": {"link": Link(), "traffic": Traffic(fps=30.0)},
        "batch upload": {"link": Link(), "traffic": Traffic(fps=None)},
        "buffer + jitter + 40 ms deadline": timed,
        "... + FEC(8,2)": {**timed, "fec": Fec(8, 2)},
        "... + ARQ(3)": {**timed, "arq": Arq(3, 2.0)},
        "4 devices, Poisson, ARQ(3)": {
            "link": link,
            "traffic": Traffic(fps=7.5, arrivals="poisson", devices=4),
            "deadline_ms": 40,
            "arq": Arq(3, 2.0),
        },
    }
    out = {}
    n_images = 1000
    for label, kw in cases.items():
        sent = {}

        def once(kw=kw, sent=sent):
            tx = simulate(n_images, payload, ch, np.random.default_rng(0), **kw)
            sent["packets"] = tx.packets_sent

        rate = _rate(once, 1, args.seconds)  # runs per second
        pps = rate * sent["packets"]
        out[label] = round(pps)
        print(
            f"network, {label}: {pps:,.0f} packets/s "
            f"({sent['packets'] / n_images:.0f} packets/image on the wire, "
            f"224 data, Gilbert-Elliott 0.3/4)"
        )
    return {"packets_per_s": out}


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


def _real_features(n_test: int, rows: int):
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


def bench_completion(args) -> dict:
    """Per-method time per tensor (median), iterations, MSE on lost entries, batched throughput
    and, for iterative methods, time per iteration per tensor amortised over the batch."""
    import torch

    from dfsim import completion
    from dfsim.registry import entry
    from dfsim.transport.channels import GilbertElliott
    from dfsim.transport.packets import PacketLayout

    rng = np.random.default_rng(0)
    cases = []
    if args.shape is None:
        test, train, label = _real_features(
            max(args.batch, args.repeats), args.rows_per_packet or 4
        )
        cases.append((label, test, train, args.rows_per_packet or 4))
        shape = (64, 56, 56)
    else:
        try:
            shape = tuple(int(v) for v in args.shape.lower().split("x"))
            assert len(shape) == 3 and min(shape) > 0
        except (ValueError, AssertionError):
            raise UserError(
                f"--shape: expected CxHxW with positive integers, got {args.shape!r}"
            ) from None
    for name in args.methods.split(",") if args.methods else []:
        entry("completion", name, "--methods")  # unknown names: one-line error
    n = max(args.batch, args.repeats)
    cases.append(
        (
            f"synthetic {'x'.join(map(str, shape))}",
            synthetic_features(rng, n, shape),
            synthetic_features(rng, 200, shape),
            args.rows_per_packet or 8,
        )
    )
    try:
        channel = GilbertElliott.from_loss_burst(args.loss, args.burst)
    except ValueError as exc:
        raise UserError(f"--loss/--burst: {exc}") from None
    methods = args.methods.split(",") if args.methods else completion.available_methods()
    report = {
        "loss_rate": args.loss,
        "burst_length": args.burst,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "cpu": cpu_name(),
        "cases": {},
    }
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}")
    for label, x, train, rows in cases:
        layout = PacketLayout.for_shape(x.shape[1:], rows)
        lost = layout.lost_mask(channel.sample(len(x) * layout.packets_per_tensor, rng))
        damaged = np.where(lost, 0, x).astype(np.float32)
        print(
            f"\n{label}: {x.shape[1]}x{x.shape[2]}x{x.shape[3]}, {rows} rows/packet, "
            f"{lost.mean():.1%} of entries lost (Gilbert-Elliott {args.loss}/{args.burst})"
        )
        print(
            f"{'method':14s} {'ms/tensor':>10s} {'ms/iter':>8s} {'iters':>6s} {'MSE lost':>9s} "
            f"{'tensors/s (batch ' + str(args.batch) + ')':>24s} {'ms/iter (batch)':>16s}"
        )
        rows_out = {}
        for name in methods:
            m = completion.make(name)
            m.device = args.device
            if m.needs_fit:
                m.fit(train, layout)
            r = rows_out[name] = _time_method(m, x, damaged, lost, layout, args.repeats, args.batch)
            per_iter = r["ms_per_iter"] or float("nan")
            batched_iter = r["ms_per_iter_batched"] or float("nan")
            print(
                f"{name:14s} {r['ms_per_tensor']:10.3f} {per_iter:8.3f} {r['iters']:6.1f} "
                f"{r['mse']:9.4f} {r['tensors_per_s_batched']:24.1f} {batched_iter:16.4f}"
            )
        report["cases"][label] = {
            "shape": list(x.shape[1:]),
            "rows_per_packet": rows,
            "lost_fraction": float(lost.mean()),
            "methods": rows_out,
        }
    return report


def _time_method(m, x, damaged, lost, layout, repeats: int, batch: int) -> dict:
    """Median time per tensor (after a warm-up), iterations, MSE on lost entries, and
    throughput over a batch."""
    m.complete(damaged[0], lost[0], layout)  # warm-up (numba compilation, caches)
    times, iters, errs = [], [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        y = m.complete(damaged[i], lost[i], layout)
        times.append(time.perf_counter() - t0)
        iters.append(float(np.mean(m.iterations or [0])))
        errs.append(np.square(y - x[i])[lost[i]])
    ms = 1e3 * float(np.median(times))
    it = float(np.mean(iters))
    t0 = time.perf_counter()
    m.complete_batch(damaged[:batch], lost[:batch], layout)
    dt = time.perf_counter() - t0
    batch_iters = int(np.sum(m.iterations or [0]))
    return {
        "ms_per_tensor": round(ms, 4),
        "ms_per_iter": round(ms / it, 4) if it else None,
        "iters": it,
        "mse": float(np.mean(err)) if (err := np.concatenate(errs)).size else float("nan"),
        "tensors_per_s_batched": round(batch / dt, 1),
        "ms_per_iter_batched": round(1e3 * dt / batch_iters, 4) if batch_iters else None,
    }


def bench_codecs(args) -> dict:
    """Bits per element and coding time of every registered codec, per packet and whole
    tensor, on real features at every split point, with image-codec anchors and the
    reproductions of the papers' tables (:mod:`dfsim.tools.bench_codecs`); ``--out DIR`` also
    writes DIR/reproductions.md and DIR/bench.json."""
    from pathlib import Path

    from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS
    from dfsim.tools import bench_codecs as bc

    if args.images < 1:
        raise UserError(f"--images: {args.images} must be >= 1")
    if not MIN_BITS <= args.bits <= MAX_BITS:
        raise UserError(f"--bits: {args.bits} must be in [{MIN_BITS}, {MAX_BITS}]")
    result = bc.bench_codecs(args)
    if getattr(args, "out", None):
        bc.write_reproductions(result, Path(args.out))
    return result


def bench_lossy(args) -> dict:
    """Rate, PSNR and coding time of the lossy picture codecs at each effort setting and a
    few rates, on the default model's features (:func:`dfsim.tools.bench_codecs.bench_lossy`);
    ``--out DIR`` also writes DIR/lossy-codecs.txt and DIR/lossy-codecs.json."""
    from dfsim.tools import bench_codecs as bc

    return bc.bench_lossy(args)


def run(what: str, args) -> dict:
    benches = {
        "model": bench_model,
        "network": bench_network,
        "completion": bench_completion,
        "codecs": bench_codecs,
        "lossy": bench_lossy,
    }
    return benches[what](args)
