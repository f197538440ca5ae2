"""How often each codec's decoder, on its own, rejects a damaged payload.

    .venv/bin/python benchmarks/decoder_robustness.py [--images 100] [--payloads 4000]
        [--seed 0] [--out FILE.md]

Features: fmnist-resnet at its default split (add_1, 32x28x28), the first N test images,
quantized at 8 bits and cut into 1-, 4- and 8-row packets. Every codec that codes packets
into bytes encodes them; ``range`` with ``model: calibrated`` is fitted on the first 500
training images (as a scenario fits it). From each (codec, packet height), ``--payloads``
non-empty payloads are drawn at random (a seeded generator; all of them when there are
fewer) and each is damaged in five ways:

* one bit flipped, the bit drawn uniformly from the payload's bits;
* the last byte dropped; the first byte dropped;
* one random byte appended;
* replaced by random bytes of the same length.

A damaged payload counts as rejected when the codec's ``decode_packets`` reports it not
``ok`` (the transport's CRC-32 is not consulted: this is the decoder alone). The table
gives the rejected fraction with its 95 % Wilson interval.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date

import numpy as np

HEIGHTS = (1, 4, 8)
DAMAGE = (
    "one bit flipped",
    "last byte dropped",
    "first byte dropped",
    "byte appended",
    "random bytes, same length",
)
FIT_IMAGES = 500  # training images a fitted codec learns from (a scenario's default)


def codecs():
    """(label, codec) for every codec that codes packets into bytes, at 8 bits."""
    from dfsim.codecs.compressors import BrotliCodec, DeflateCodec, Lz4Codec, ZstdCodec
    from dfsim.codecs.palette import PaletteCodec
    from dfsim.codecs.range_coder import RangeCodec

    return [
        ("range (model: tensor)", RangeCodec(8)),
        ("range (model: calibrated)", RangeCodec(8, model="calibrated")),
        ("palette", PaletteCodec(8)),
        ("palette (check_bits: 8)", PaletteCodec(8, check_bits=8)),
        ("deflate", DeflateCodec(8)),
        ("zstd", ZstdCodec(8)),
        ("brotli", BrotliCodec(8)),
        ("lz4", Lz4Codec(8)),
    ]


def edge_features(subset: str, n: int) -> np.ndarray:
    """The default model's edge features (float, before quantization) of ``n`` images."""
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import load_model
    from dfsim.models.inference import prepare_for_inference, run_batched

    model = load_model("fmnist-resnet")
    images = load_fashion_mnist(subset).head(n).images
    edge = prepare_for_inference(model.edge(model.default_split))
    return run_batched(edge, model.normalise(images), 64)


def damage(payload: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """``payload`` (at least one byte) damaged in one of the ways of :data:`DAMAGE`."""
    if kind == "one bit flipped":
        bit = int(rng.integers(8 * len(payload)))
        out = bytearray(payload)
        out[bit // 8] ^= 0x80 >> (bit % 8)
        return bytes(out)
    if kind == "last byte dropped":
        return payload[:-1]
    if kind == "first byte dropped":
        return payload[1:]
    if kind == "byte appended":
        return payload + bytes([int(rng.integers(256))])
    return rng.integers(0, 256, len(payload), dtype=np.uint8).tobytes()


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion k / n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rejected(codec, encoded, which: np.ndarray, kind: str, rng) -> np.ndarray:
    """Per payload ``which``: did the decoder reject it once damaged by ``kind``?"""
    from dfsim.codecs.base import PacketBytes

    payloads, hdr, layout = encoded.payloads
    model = {k: v for k, v in encoded.side_info.items() if k not in ("vmin", "vmax")}
    damaged = PacketBytes.from_list([damage(payloads.payload(j), kind, rng) for j in which])
    _, ok = codec.decode_packets(
        damaged,
        np.arange(len(which)),
        hdr["nrows"][which].astype(np.int64),
        layout.width,
        hdr["image"][which].astype(np.int64),
        model,
    )
    return ~np.asarray(ok, bool)


def main() -> None:
    from dfsim.tools.bench import cpu_name
    from dfsim.transport.packets import PacketLayout

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--payloads", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/decoder-robustness.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    feats = edge_features("test", args.images)
    train = edge_features("train", FIT_IMAGES)
    rng = np.random.default_rng(args.seed)
    results = []  # (codec, rows, payloads drawn, mean bytes, {kind: rejected flags})
    for rows in HEIGHTS:
        layout = PacketLayout.for_shape(feats.shape[1:], rows)
        for label, codec in codecs():
            if codec.needs_fit:
                codec.fit(train, layout)
            encoded = codec.encode(feats, layout)
            payloads, hdr, _ = encoded.payloads
            every = np.arange(len(payloads))
            _, intact_ok = codec.decode_packets(
                payloads,
                every,
                hdr["nrows"].astype(np.int64),
                layout.width,
                hdr["image"].astype(np.int64),
                {k: v for k, v in encoded.side_info.items() if k not in ("vmin", "vmax")},
            )
            assert np.all(intact_ok), f"{label}: an undamaged payload does not decode"
            sizes = np.diff(payloads.offsets)
            nonempty = np.flatnonzero(sizes > 0)
            which = np.sort(rng.permutation(nonempty)[: args.payloads])
            flags = {kind: rejected(codec, encoded, which, kind, rng) for kind in DAMAGE}
            results.append((label, rows, len(which), float(sizes[which].mean()), flags))
            print(
                f"{rows}-row {label:28s} " + " ".join(f"{np.mean(f):6.1%}" for f in flags.values()),
                flush=True,
            )
    seconds = time.perf_counter() - t0
    lines = [
        "# Which damaged payloads the decoders reject on their own",
        "",
        f"`.venv/bin/python benchmarks/decoder_robustness.py --images {args.images} "
        f"--payloads {args.payloads} --seed {args.seed}`; {cpu_name()}, {os.cpu_count()} cores, "
        f"{date.today()}, {seconds:.0f} s. fmnist-resnet add_1 (32x28x28) edge features of the "
        f"first {args.images} test images, 8 bits, packets of 1, 4 and 8 rows (8 rows: 3 bands "
        "of 8 and one of 4); `range` with `model: calibrated` fitted on the first "
        f"{FIT_IMAGES} training images. Per codec and packet height, up to {args.payloads} "
        "non-empty payloads drawn at random (seeded; `payloads` column), each damaged in "
        "each of five ways (one bit flipped at a uniformly drawn bit; last byte dropped; first "
        "byte dropped; one random byte appended; replaced by random bytes of the same length) "
        "and given to the codec's `decode_packets` alone, without the transport's CRC-32. "
        "Each cell: the percentage rejected (not `ok`), then its 95 % Wilson interval.",
        "",
        "| rows | codec | payloads | mean bytes | " + " | ".join(DAMAGE) + " |",
        "|---:|---|---:|---:|" + "---|" * len(DAMAGE),
    ]
    for label, rows, n, mean_bytes, flags in results:
        cells = []
        for f in flags.values():
            k = int(f.sum())
            lo, hi = wilson(k, n)
            cells.append(f"{100 * k / n:.1f} ({100 * lo:.1f}-{100 * hi:.1f})")
        lines.append(f"| {rows} | {label} | {n} | {mean_bytes:.0f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {args.out} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
