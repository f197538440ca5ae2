"""``dfsim bench codecs``: every registered lossless codec, plus lossless image codecs and
general-purpose compressors as anchors, on real features of the default model at every
single-tensor split point and of EfficientNet-Lite0 at a few (:mod:`.cases`).

For each split point the features of the first ``images`` test images are quantized at
``bits`` bits (per-tensor min/max). Then (whole-tensor modes and anchors on the first
``anchor_images`` of them, to keep the run short):

* each codec registered under kind ``codec`` (whatever is registered when this runs)
  codes them in packets of ``min(4, H)`` rows (row-major order): bits per element actual
  (payloads plus side information) and ideal (the codec's model's -log2 p plus the same
  side information), encode and decode time per tensor (median of warm repeats), and a
  bit-exact decoding check; and in whole-tensor mode (``encode_tensor``: one stream per
  tensor);
* the image anchors (:mod:`dfsim.codecs.anchors`) code the tiled image of each tensor and
  the byte compressors its raw code bytes (every one verified lossless);
* :mod:`dfsim.codecs.statistics`: non-zero rates, order-0 entropy, Choi & Bajić's Table I.

Three reproductions come out of the same numbers (:mod:`.reproductions`); the tables are
made by :mod:`.tables`. The lossy picture codecs are left out here: ``dfsim bench lossy``
(:mod:`.lossy`) measures them.

Bits per element always divide by the tensor's C x H x W values (the tiled image's unused
tiles, when C is not a power of two, are not counted as elements). Whole-tensor and
anchor bits leave out the quantizer's min/max (64 bits per tensor), which every method
needs alike; per-packet bits include them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from dfsim.errors import UserError
from dfsim.tools.bench.cases import ROWS_PER_PACKET, Case, cases, packet_rows
from dfsim.tools.bench.reproductions import reproductions
from dfsim.tools.bench.tables import json_safe, print_codec_report, write_reproductions
from dfsim.tools.bench.timing import median_time

ANCHOR_IMAGES = 50  # default tensors per split point for whole-tensor modes and anchors


def command(args) -> dict:
    """``dfsim bench codecs``: :func:`bench_codecs` after checking ``--images`` and
    ``--bits``; ``--out DIR`` also writes DIR/reproductions.md and DIR/bench.json."""
    from dfsim.codecs.quantizer import MAX_BITS, MIN_BITS

    if args.images < 1:
        raise UserError(f"--images: {args.images} must be >= 1")
    if not MIN_BITS <= args.bits <= MAX_BITS:
        raise UserError(f"--bits: {args.bits} must be in [{MIN_BITS}, {MAX_BITS}]")
    result = bench_codecs(args)
    if getattr(args, "out", None):
        write_reproductions(result, Path(args.out))
    return result


def bench_codecs(args) -> dict:
    """Every registered codec and the anchors on real features (see the module docstring);
    prints the tables and returns everything as a dict.

    ``args``: ``seconds`` (the time each codec may spend on one split point's batch in
    each mode; timing repeats stop after a tenth of it), ``json`` (unused here), and
    optionally ``images`` (tensors per split point, default 100), ``bits`` (default 8),
    ``anchor_images`` (tensors the anchors and whole-tensor modes code, default
    :data:`ANCHOR_IMAGES`, at most ``images``), ``cases`` (a list of (model, split) pairs,
    default all), ``codecs`` (names, default every registered codec)."""
    from dfsim.registry import names

    t_start = time.perf_counter()
    n_images = int(getattr(args, "images", None) or 100)
    bits = int(getattr(args, "bits", None) or 8)
    n_anchor = min(int(getattr(args, "anchor_images", None) or ANCHOR_IMAGES), n_images)
    seconds = float(getattr(args, "seconds", None) or 3.0)
    wanted = getattr(args, "cases", None)
    wanted = None if wanted is None else {tuple(p) for p in wanted}
    codec_names = list(getattr(args, "codecs", None) or lossless_codecs(names("codec")))
    notes: list[str] = []
    inputs: dict = {}
    result = {
        "config": {
            "images": n_images,
            "anchor_images": n_anchor,
            "bits": bits,
            "rows_per_packet": ROWS_PER_PACKET,
            "order": "row-major",
            "seconds": seconds,
            "codecs": codec_names,
        },
        "notes": notes,
        "inputs": inputs,
        "cases": [],
    }
    print(
        f"codecs at {bits} bits: {', '.join(codec_names)}; {n_images} tensors per split "
        f"point ({n_anchor} for whole-tensor modes and anchors)"
    )
    for case in cases(n_images, wanted, notes, inputs):
        entry = bench_case(case, codec_names, bits, n_anchor, seconds, notes)
        result["cases"].append(entry)
        c, h, w = entry["shape"]
        print(
            f"  {case.label:30s} {c}x{h}x{w} ({entry['kind']}): {entry['seconds']:.1f} s",
            flush=True,
        )
    result["reproductions"] = reproductions(result)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    print_codec_report(result)
    return json_safe(result)


def bench_case(
    case: Case, codec_names: list[str], bits: int, n_anchor: int, seconds: float, notes: list
) -> dict:
    """One split point: its statistics, each codec (a failure is noted, and the others go
    on), and the anchors."""
    from dfsim.codecs.quantizer import dequantize, quantize
    from dfsim.codecs.statistics import feature_statistics

    t0 = time.perf_counter()
    feats = case.features
    n, c, h, w = feats.shape
    q = quantize(feats, bits)
    codes, expected = q.codes, dequantize(q)
    stats = feature_statistics(feats, codes)
    entry = {
        "model": case.model,
        "split": case.split,
        "kind": "post-activation" if float(feats.min()) >= 0 else "pre-activation",
        "shape": [c, h, w],
        "elements": c * h * w,
        "images": n,
        "rows_per_packet": packet_rows(h),
        "stats": {"mean": stats["mean"], "std": stats["std"]},
        "similarity": stats["similarity"],
        "codecs": {},
    }
    na = min(n_anchor, n)
    for name in codec_names:
        try:
            r = bench_codec(name, case, codes, expected, bits, na, seconds, seconds / 10)
        except Exception as exc:  # codecs are written by others: report, go on
            entry["codecs"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            notes.append(f"{case.label}: codec {name} failed: {type(exc).__name__}: {exc}")
            continue
        entry["codecs"][name] = r
        if r.get("whole_error"):
            notes.append(f"{case.label}: codec {name}, whole tensor: {r['whole_error']}")
        if r.get("packet_exact") is False:
            notes.append(
                f"{case.label}: codec {name}, per packet: not lossless "
                f"({r['packet_lost_values']} values lost, {r['packet_wrong_values']} wrong)"
            )
    entry.update(bench_anchors(codes, feats, bits, na))
    for name, r in entry["images"].items():
        note = f"anchor {name} left out: {r['skipped']}" if "skipped" in r else None
        if note and note not in notes:
            notes.append(note)
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    return entry


def lossless_codecs(candidates) -> list[str]:
    """The codecs that do not declare themselves lossy (``lossless = False`` at their
    defaults: those are benchmarked by ``dfsim bench lossy``); one that cannot be built
    stays, and the benchmark reports why."""
    from dfsim.registry import build

    keep = []
    for name in candidates:
        try:
            lossy = getattr(build("codec", name, "encoding"), "lossless", None) is False
        except Exception:  # noqa: BLE001 - reported when the benchmark builds it again
            lossy = False
        if not lossy:
            keep.append(name)
    return keep


def bench_codec(
    name: str,
    case: Case,
    codes: np.ndarray,
    expected: np.ndarray,
    bits: int,
    n_whole: int,
    budget_s: float,
    timing_s: float,
) -> dict:
    """One registered codec on one case: per-packet and whole-tensor bits per element,
    times per tensor, bit-exact checks. ``n_whole``: tensors for whole-tensor mode;
    ``budget_s``: the time allowed for each mode's batch (images beyond it are left out)."""
    from dfsim.registry import build
    from dfsim.transport.packets import PacketLayout

    feats = case.features
    n, c, h, w = feats.shape
    layout = PacketLayout.for_shape((c, h, w), packet_rows(h), "row-major")
    codec = build("codec", name, "encoding", bits=bits)
    k = layout.packets_per_tensor
    out = {"rows_per_packet": layout.rows_per_packet, "packets_per_tensor": k}
    if getattr(codec, "needs_fit", False):
        t0 = time.perf_counter()
        codec.fit(case.train() if case.train else feats, layout)
        out["fit_s"] = round(time.perf_counter() - t0, 3)

    t_enc, t_dec = _packet_times(codec, feats[:1], layout, timing_s)
    out["encode_ms"] = 1e3 * t_enc
    out["decode_ms"] = 1e3 * t_dec
    # per packet, on as many tensors as the budget allows
    m = int(min(n, max(1, budget_s // max(t_enc + t_dec, 1e-9))))
    out.update(_per_packet(codec, feats[:m], expected[:m], layout))

    if not hasattr(codec, "encode_tensor"):
        out["whole_bpe"] = None
        out["whole_bits"] = None
        return out
    out.update(_whole_tensor(codec, codes, n_whole, budget_s, timing_s, c * h * w))
    return out


def _packet_times(codec, one: np.ndarray, layout, timing_s: float) -> tuple[float, float]:
    """Seconds to encode and to decode one tensor in packets, warm (the first call also
    compiles / fills caches)."""
    enc1 = codec.encode(one, layout)
    all_received = np.ones((1, layout.packets_per_tensor), bool)
    t_enc = median_time(lambda: codec.encode(one, layout), timing_s)
    t_dec = median_time(lambda: codec.decode(enc1, all_received, enc1.side_info), timing_s)
    return t_enc, t_dec


def _per_packet(codec, feats: np.ndarray, expected: np.ndarray, layout) -> dict:
    """Bits per element of ``feats`` coded in packets (actual, payload, side information,
    ideal), the largest packet, and whether every value decodes as ``expected``."""
    m = len(feats)
    k = layout.packets_per_tensor
    elements = int(np.prod(feats.shape[1:]))
    enc = codec.encode(feats, layout)
    payload = np.broadcast_to(np.asarray(enc.payload_bits, np.int64), (m, k))
    side = np.broadcast_to(np.asarray(enc.side_info_bits, np.int64), (m,))
    actual = (payload.sum(axis=1) + side) / elements
    out = {
        "packet_images": m,
        "packet_bpe": float(actual.mean()),
        "payload_bpe": float(payload.sum(axis=1).mean() / elements),
        "side_bpe": float(side.mean() / elements),
        "max_packet_bytes": int(math.ceil(payload.max() / 8)) if payload.size else 0,
    }
    ideal = getattr(enc, "ideal_bits", None)
    ideal = None if ideal is None else np.broadcast_to(np.asarray(ideal, np.float64), (m,))
    if ideal is None or np.isnan(ideal).all():
        out["ideal_bpe"] = None
    else:
        out["ideal_bpe"] = float(np.nanmean((ideal + side) / elements))
    values, lost = codec.decode(enc, np.ones((m, k), bool), enc.side_info)
    lost = np.asarray(lost, bool)
    wrong = (np.asarray(values) != expected) & ~lost
    out["packet_exact"] = bool(not lost.any() and not wrong.any())
    if not out["packet_exact"]:  # what went wrong, for the report
        out["packet_lost_values"] = int(lost.sum())
        out["packet_wrong_values"] = int(wrong.sum())
    return out


def _whole_tensor(
    codec, codes: np.ndarray, n_whole: int, budget_s: float, timing_s: float, elements: int
) -> dict:
    """Whole-tensor mode, one stream per tensor: time, bits per tensor and per element,
    and whether each stream decodes to its codes (None: the codec has no decoder)."""
    try:
        t_whole = median_time(lambda: codec.encode_tensor(codes[0]), timing_s, lo=2, hi=7)
    except Exception as exc:  # the per-packet results stand; report the whole-tensor failure
        return {
            "whole_bpe": None,
            "whole_bits": None,
            "whole_error": f"{type(exc).__name__}: {exc}",
        }
    out = {"whole_encode_ms": 1e3 * t_whole}
    mw = int(min(n_whole, max(1, budget_s // max(2 * t_whole, 1e-9))))
    whole_bits, exact = [], True
    for i in range(mw):
        code = codec.encode_tensor(codes[i])
        whole_bits.append(_tensor_bits(code))
        if not hasattr(codec, "decode_tensor"):
            exact = None
            continue
        try:
            back = codec.decode_tensor(code, codes[i].shape)
        except Exception as exc:  # a stream that does not decode is not lossless
            out.setdefault("whole_error", f"tensor {i}: {type(exc).__name__}: {exc}")
            exact = False
            continue
        exact = exact and bool(np.array_equal(np.asarray(back), codes[i]))
    out["whole_images"] = mw
    out["whole_bits"] = whole_bits
    out["whole_bpe"] = float(np.mean(whole_bits) / elements)
    out["whole_exact"] = exact
    return out


def _tensor_bits(code) -> int:
    """Bits of what ``encode_tensor`` returned: raw bytes, or an object with ``bits``."""
    if isinstance(code, (bytes, bytearray, memoryview)):
        return 8 * len(code)
    bits = getattr(code, "bits", None)
    if bits is None:
        return 8 * len(code.payload)
    return int(bits)


def bench_anchors(codes: np.ndarray, features: np.ndarray, bits: int, n: int) -> dict:
    """The image anchors on the tiled images and the byte compressors on the raw bytes of
    the first ``n`` tensors (codes; the compressors also on the float32 features, Chen et
    al.'s setting). Every coding is checked bit-exact."""
    from dfsim.codecs.anchors import byte_compressors, image_anchors
    from dfsim.codecs.tiling import tile

    c, h, w = codes.shape[1:]
    elements = c * h * w
    images, compressors = {}, {}
    tiled = [tile(codes[i]) for i in range(n)]
    for name, a in image_anchors().items():
        why = a.available() or (None if a.supports(bits) else f"codes of {bits} bits")
        if why:
            images[name] = {"skipped": why}
            continue
        sizes, secs = [], []
        for img in tiled:
            t0 = time.perf_counter()
            sizes.append(8 * len(a.encode(img, bits)))
            secs.append(time.perf_counter() - t0)
        images[name] = {
            "bits": sizes,
            "bpe": float(np.mean(sizes) / elements),
            "ms": 1e3 * float(np.median(secs)),
            "images": n,
            "tiled_shape": list(tiled[0].shape),
        }
    for name, comp in byte_compressors().items():
        compressors[name] = _compressor(comp, codes, features, n, elements)
    return {"images": images, "compressors": compressors}


def _compressor(comp, codes: np.ndarray, features: np.ndarray, n: int, elements: int) -> dict:
    """One byte compressor on the first ``n`` tensors' codes and float32 features:
    compressed/original ratio (mean, std), median time; bits per element of the codes."""
    r = {"images": n}
    for what, data in (("codes", codes), ("float32", features)):
        sizes, secs = [], []
        for i in range(n):
            t0 = time.perf_counter()
            sizes.append(8 * len(comp.encode(data[i])))
            secs.append(time.perf_counter() - t0)
        ratio = np.asarray(sizes) / (8 * data[i].nbytes)
        r[f"ratio_{what}"] = float(ratio.mean())
        r[f"ratio_{what}_std"] = float(ratio.std())
        r[f"ms_{what}"] = 1e3 * float(np.median(secs))
        if what == "codes":
            r["bits"] = sizes
            r["bpe"] = float(np.mean(sizes) / elements)
    return r
