"""Codec benchmark (``dfsim bench codecs``): every registered codec, plus lossless image
codecs and general-purpose compressors as anchors, on real features of the default model
at every single-tensor split point and of EfficientNet-Lite0 at a few.

For each split point the features of the first ``images`` test images are quantized at
``bits`` bits (per-tensor min/max). Then (whole-tensor modes and anchors on the first
``anchor_images`` of them, to keep the run within a few minutes):

* each codec registered under kind ``codec`` (whatever is registered when this runs)
  codes them in packets of ``min(4, H)`` rows (row-major order): bits per element actual
  (payloads plus side information) and ideal (the codec's model's -log2 p plus the same
  side information), encode and decode time per tensor (median of warm repeats), and a
  bit-exact decoding check; and in whole-tensor mode (``encode_tensor``: one stream per
  tensor);
* the image anchors (:mod:`dfsim.codecs.anchors`) code the tiled image of each tensor and
  the byte compressors its raw code bytes (every one verified lossless);
* :mod:`dfsim.codecs.statistics`: non-zero rates, order-0 entropy, Choi & Bajić's Table I.

Three reproductions come out of the same numbers: (a) the shape of Chen et al.'s
Tables II-V (GZIP/ZLIB/BZIP2/LZMA compressed/original size of the float32 features, and
the non-zero rate), (b) Choi & Bajić's Table I per split point, (c) their Fig. 6: the
extra bits of HEVC, PNG, JPEG 2000, JPEG XL and lossless JPEG over the ``palette`` codec
in whole-tensor mode (when ``palette`` is registered).

``dfsim bench lossy`` (:func:`bench_lossy`) measures the lossy picture codecs apart (they
are left out of the lossless tables above): rate, PSNR and coding time at each effort
setting and a few rates, on the default model's features.

Bits per element always divide by the tensor's C x H x W values (the tiled image's unused
tiles, when C is not a power of two, are not counted as elements). Whole-tensor and
anchor bits leave out the quantizer's min/max (64 bits per tensor), which every method
needs alike; per-packet bits include them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROWS_PER_PACKET = 4
ANCHOR_IMAGES = 50  # default tensors per split point for whole-tensor modes and anchors
EFFICIENTNET_SPLITS = ("_blocks.1", "_blocks.4", "_blocks.10", "_swish_1")
FIG6_ANCHORS = ("hevc", "png", "jpeg2000", "jpeg-xl", "jpeg-lossless")


# --------------------------------------------------------------------------- cases
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


def _single_tensor(model, split: str) -> bool:
    crossing = model.crossing(split)
    return len(crossing) == 1 and len(crossing[0].shape) == 3


def _edge_features(model, split: str, x: np.ndarray) -> np.ndarray:
    from dfsim.models.inference import prepare_for_inference, run_batched

    out = run_batched(prepare_for_inference(model.edge(split)), model.normalise(x), 256)
    return np.ascontiguousarray(out[0] if isinstance(out, tuple) else out, dtype=np.float32)


def _cases(n_images: int, wanted, notes: list, inputs: dict):
    """Yield the cases (the default model's every single-tensor split, EfficientNet-Lite0's
    :data:`EFFICIENTNET_SPLITS`), or only the (model, split) pairs in ``wanted``."""
    from dfsim.codecs.statistics import similarity_table
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.errors import UserError
    from dfsim.models import load_model
    from dfsim.registry import build

    def keep(model_name, split):
        return wanted is None or (model_name, split) in wanted

    def input_stats(name, images):
        imgs = np.asarray(images)
        imgs = imgs.reshape(len(imgs), -1, *imgs.shape[-2:]) if imgs.ndim >= 3 else imgs
        if imgs.dtype != np.uint8:
            return
        tables = [similarity_table(t) for t in imgs]
        inputs[name] = {k: float(np.mean([t[k] for t in tables])) for k in tables[0]}

    # the default model: every single-tensor split point
    name = "fmnist-resnet"
    if wanted is None or any(m == name for m, _ in wanted):
        model = load_model(name)
        images = load_fashion_mnist("test").head(n_images).images
        input_stats(name, images)
        train_cache = {}

        for split in model.split_points:
            if not keep(name, split):
                continue
            if not _single_tensor(model, split):
                notes.append(f"{name} {split}: skipped (not one C x H x W tensor)")
                continue

            def train(split=split, model=model):
                if split not in train_cache:
                    imgs = load_fashion_mnist("train").head(200).images
                    train_cache[split] = _edge_features(model, split, imgs)
                return train_cache[split]

            yield Case(name, split, _edge_features(model, split, images), train)

    name = "efficientnet-lite0"
    if wanted is None or any(m == name for m, _ in wanted):
        try:
            model = load_model(name)
            photos = build("dataset", "sample-photos").load(model.input_shape).images
        except (UserError, ImportError) as exc:
            notes.append(f"{name}: skipped ({str(exc).splitlines()[0]})")
            return
        images, rest = photos[:n_images], photos[n_images:]
        input_stats(name, images)
        for split in EFFICIENTNET_SPLITS:
            if not keep(name, split):
                continue
            if split not in model.split_points or not _single_tensor(model, split):
                notes.append(f"{name} {split}: skipped (not a single-tensor split point)")
                continue
            feats = _edge_features(model, split, images)

            def train(split=split, model=model, feats=feats):
                # the photos not benchmarked; the benchmarked ones when there are none left
                return _edge_features(model, split, rest) if len(rest) else feats

            yield Case(name, split, feats, train)


# --------------------------------------------------------------------------- measuring
def _median_time(fn, budget_s: float, lo: int = 3, hi: int = 15) -> float:
    """Median seconds of ``fn()`` after one warm-up call: at least ``lo`` repeats, at most
    ``hi``, stopping once ``budget_s`` has passed."""
    fn()
    times, t_start = [], time.perf_counter()
    while len(times) < lo or (len(times) < hi and time.perf_counter() - t_start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _lossless_codecs(candidates) -> list[str]:
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


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def _tensor_bits(code) -> int:
    """Bits of what ``encode_tensor`` returned: raw bytes, or an object with ``bits``."""
    if isinstance(code, (bytes, bytearray, memoryview)):
        return 8 * len(code)
    bits = getattr(code, "bits", None)
    if bits is None:
        return 8 * len(code.payload)
    return int(bits)


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
    elements = c * h * w
    layout = PacketLayout.for_shape((c, h, w), packet_rows(h), "row-major")
    k = layout.packets_per_tensor
    codec = build("codec", name, "encoding", bits=bits)
    out = {"rows_per_packet": layout.rows_per_packet, "packets_per_tensor": k}
    if getattr(codec, "needs_fit", False):
        t0 = time.perf_counter()
        codec.fit(case.train() if case.train else feats, layout)
        out["fit_s"] = round(time.perf_counter() - t0, 3)

    # times per tensor, warm (the first call also compiles / fills caches)
    one = feats[:1]
    enc1 = codec.encode(one, layout)
    all_received = np.ones((1, k), bool)
    t_enc = _median_time(lambda: codec.encode(one, layout), timing_s)
    t_dec = _median_time(lambda: codec.decode(enc1, all_received, enc1.side_info), timing_s)
    out["encode_ms"] = 1e3 * t_enc
    out["decode_ms"] = 1e3 * t_dec

    # per packet, on as many tensors as the budget allows
    m = int(min(n, max(1, budget_s // max(t_enc + t_dec, 1e-9))))
    enc = codec.encode(feats[:m], layout)
    payload = np.broadcast_to(np.asarray(enc.payload_bits, np.int64), (m, k))
    side = np.broadcast_to(np.asarray(enc.side_info_bits, np.int64), (m,))
    actual = (payload.sum(axis=1) + side) / elements
    out["packet_images"] = m
    out["packet_bpe"] = float(actual.mean())
    out["payload_bpe"] = float(payload.sum(axis=1).mean() / elements)
    out["side_bpe"] = float(side.mean() / elements)
    out["max_packet_bytes"] = int(math.ceil(payload.max() / 8)) if payload.size else 0
    ideal = getattr(enc, "ideal_bits", None)
    ideal = None if ideal is None else np.broadcast_to(np.asarray(ideal, np.float64), (m,))
    if ideal is None or np.isnan(ideal).all():
        out["ideal_bpe"] = None
    else:
        out["ideal_bpe"] = float(np.nanmean((ideal + side) / elements))
    values, lost = codec.decode(enc, np.ones((m, k), bool), enc.side_info)
    lost = np.asarray(lost, bool)
    wrong = (np.asarray(values) != expected[:m]) & ~lost
    out["packet_exact"] = bool(not lost.any() and not wrong.any())
    if not out["packet_exact"]:  # what went wrong, for the report
        out["packet_lost_values"] = int(lost.sum())
        out["packet_wrong_values"] = int(wrong.sum())

    # whole tensor: one stream per tensor
    if not hasattr(codec, "encode_tensor"):
        out["whole_bpe"] = None
        out["whole_bits"] = None
        return out
    try:
        t_whole = _median_time(lambda: codec.encode_tensor(codes[0]), timing_s, lo=2, hi=7)
    except Exception as exc:  # the per-packet results stand; report the whole-tensor failure
        out.update(whole_bpe=None, whole_bits=None, whole_error=f"{type(exc).__name__}: {exc}")
        return out
    out["whole_encode_ms"] = 1e3 * t_whole
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
        compressors[name] = r
    return {"images": images, "compressors": compressors}


# --------------------------------------------------------------------------- the benchmark
def bench_codecs(args) -> dict:
    """Every registered codec and the anchors on real features (see the module docstring);
    prints the tables and returns everything as a dict.

    ``args``: ``seconds`` (the time each codec may spend on one split point's batch in
    each mode; timing repeats stop after a tenth of it), ``json`` (unused here), and
    optionally ``images`` (tensors per split point, default 100), ``bits`` (default 8),
    ``anchor_images`` (tensors the anchors and whole-tensor modes code, default
    :data:`ANCHOR_IMAGES`, at most ``images``), ``cases`` (a list of (model, split) pairs,
    default all), ``codecs`` (names, default every registered codec)."""
    from dfsim.codecs.quantizer import dequantize, quantize
    from dfsim.codecs.statistics import feature_statistics
    from dfsim.registry import names

    t_start = time.perf_counter()
    n_images = int(getattr(args, "images", None) or 100)
    bits = int(getattr(args, "bits", None) or 8)
    n_anchor = min(int(getattr(args, "anchor_images", None) or ANCHOR_IMAGES), n_images)
    seconds = float(getattr(args, "seconds", None) or 3.0)
    wanted = getattr(args, "cases", None)
    wanted = None if wanted is None else {tuple(p) for p in wanted}
    codec_names = list(getattr(args, "codecs", None) or _lossless_codecs(names("codec")))
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
    for case in _cases(n_images, wanted, notes, inputs):
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
                entry["codecs"][name] = bench_codec(
                    name, case, codes, expected, bits, na, seconds, seconds / 10
                )
            except Exception as exc:  # codecs are written by others: report, go on
                entry["codecs"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                notes.append(f"{case.label}: codec {name} failed: {type(exc).__name__}: {exc}")
                continue
            r = entry["codecs"][name]
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
        result["cases"].append(entry)
        print(
            f"  {case.label:30s} {c}x{h}x{w} ({entry['kind']}): {entry['seconds']:.1f} s",
            flush=True,
        )
    result["reproductions"] = reproductions(result)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    print()
    for table in tables(result):
        print(format_table(table))
        print()
    for note in notes:
        print(f"note: {note}")
    print(f"bench codecs: {result['seconds']:.0f} s")
    return _clean(result)


# --------------------------------------------------------------------------- reproductions
def reproductions(result: dict) -> dict:
    """(a) Chen et al.'s table shape, (b) Choi & Bajić's Table I, (c) their Fig. 6, from
    the benchmark's cases."""
    seed002, table1, fig6 = [], [], []
    for model, sim in result.get("inputs", {}).items():
        table1.append({"model": model, "split": "input image", **sim})
    palette = False
    for e in result["cases"]:
        row = {
            "model": e["model"],
            "split": e["split"],
            "shape": e["shape"],
            "float32_kib": 4 * e["elements"] / 1024,
            "nonzero": e["stats"]["mean"].get("nonzero_features"),
            "nonzero_std": e["stats"]["std"].get("nonzero_features"),
        }
        for name, r in e.get("compressors", {}).items():
            for key in ("ratio_float32", "ratio_float32_std", "ms_float32", "ratio_codes"):
                row[f"{name}_{key}"] = r.get(key)
        seed002.append(row)
        table1.append({"model": e["model"], "split": e["split"], **e["similarity"]})
        pal = e["codecs"].get("palette", {})
        if pal.get("whole_bits") and pal.get("whole_exact") is not False:
            palette = True
            pbits = np.asarray(pal["whole_bits"], np.float64)
            r = {"model": e["model"], "split": e["split"], "palette_bpe": pal["whole_bpe"]}
            for name in FIG6_ANCHORS:
                a = e.get("images", {}).get(name, {})
                if "bits" in a:
                    m = min(len(a["bits"]), len(pbits))
                    r[name] = 100.0 * (np.sum(a["bits"][:m]) / np.sum(pbits[:m]) - 1.0)
                else:
                    r[name] = None
            fig6.append(r)
    for model in dict.fromkeys(r["model"] for r in fig6):  # the paper's averages per network
        rows = [r for r in fig6 if r["model"] == model]
        avg = {
            "model": model,
            "split": "mean",
            "palette_bpe": _mean(r["palette_bpe"] for r in rows),
        }
        fig6.append(avg | {a: _mean(r.get(a) for r in rows) for a in FIG6_ANCHORS})
    note = None
    if not palette:
        note = (
            "the palette codec is not registered, or its whole-tensor mode failed or was not "
            "lossless: Fig. 6 is left out"
        )
    return {"seed002": seed002, "table1": table1, "fig6": {"rows": fig6, "note": note}}


# --------------------------------------------------------------------------- tables
def _f(v, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def tables(result: dict) -> list[dict]:
    """The report's tables: each a dict with ``title``, ``header``, ``rows`` (strings)."""
    cfg = result["config"]
    cases = result["cases"]
    out = []
    n = cfg["images"]
    out.append(
        {
            "title": f"Feature statistics ({cfg['bits']}-bit codes, mean over up to {n} tensors)",
            "header": [
                "model",
                "split",
                "kind",
                "C x H x W",
                "non-zero (float)",
                "non-zero (codes)",
                "H0 (b/elem)",
                "within ±1 of top-8",
            ],
            "rows": [
                [
                    e["model"],
                    e["split"],
                    e["kind"],
                    "x".join(map(str, e["shape"])),
                    _f(e["stats"]["mean"].get("nonzero_features")),
                    _f(e["stats"]["mean"]["nonzero_codes"]),
                    _f(e["stats"]["mean"]["entropy"]),
                    _f(e["stats"]["mean"]["near_top"]),
                ]
                for e in cases
            ],
        }
    )
    rows = []
    for e in cases:
        for name, r in e["codecs"].items():
            if "error" in r:
                rows.append([e["model"], e["split"], name, "error: " + r["error"][:60]])
                continue
            bad = [m for m in ("packet", "whole") if r.get(f"{m}_exact") is False]
            rows.append(
                [
                    e["model"],
                    e["split"],
                    name,
                    _f(r["packet_bpe"]),
                    _f(r["ideal_bpe"]),
                    _f(r.get("whole_bpe")),
                    _f(e["stats"]["mean"]["entropy"]),
                    _f(r["encode_ms"], ".2f"),
                    _f(r["decode_ms"], ".2f"),
                    _f(r.get("whole_encode_ms"), ".2f"),
                    "yes" if not bad else "NO: " + "+".join(bad),
                    f"{r['packet_images']}/{r.get('whole_images', '-')}",
                ]
            )
    out.append(
        {
            "title": (
                f"Codecs, bits per element: per packet ({cfg['rows_per_packet']}-row packets, "
                "payload + side info; ideal = model's -log2 p + side info) and whole tensor "
                "(one stream; without min/max); ms per tensor"
            ),
            "header": [
                "model",
                "split",
                "codec",
                "packet",
                "ideal",
                "whole",
                "H0",
                "enc ms",
                "dec ms",
                "whole enc ms",
                "lossless",
                "tensors",
            ],
            "rows": rows,
        }
    )
    img_names = _names(cases, "images")
    comp_names = _names(cases, "compressors")
    rows = []
    for e in cases:
        best = [
            (r["whole_bpe"], name) for name, r in e["codecs"].items() if r.get("whole_bpe")
        ] or [(None, "-")]
        b = min(best, key=lambda t: math.inf if t[0] is None else t[0])
        rows.append(
            [e["model"], e["split"], _f(e["stats"]["mean"]["entropy"])]
            + [_f(e["images"].get(a, {}).get("bpe")) for a in img_names]
            + [_f(e["compressors"].get(a, {}).get("bpe")) for a in comp_names]
            + [f"{_f(b[0])} {b[1]}"]
        )
    out.append(
        {
            "title": (
                "Anchors, whole tensor, bits per element: image codecs on the tiled image, "
                "stdlib compressors on the code bytes (all verified lossless)"
            ),
            "header": ["model", "split", "H0", *img_names, *comp_names, "best codec (whole)"],
            "rows": rows,
        }
    )
    rep = result["reproductions"]
    rows = []
    for r in rep["seed002"]:
        row = [
            r["model"],
            r["split"],
            "x".join(map(str, r["shape"])),
            _f(r["float32_kib"], ".1f"),
            f"{_f(r['nonzero'])} ± {_f(r['nonzero_std'])}",
        ]
        for name in comp_names:
            row.append(
                f"{_f(r.get(f'{name}_ratio_float32'))} ± {_f(r.get(f'{name}_ratio_float32_std'))}"
                f" ({_f(r.get(f'{name}_ms_float32'), '.1f')} ms)"
            )
        row += [_f(r.get(f"{name}_ratio_codes")) for name in comp_names]
        rows.append(row)
    out.append(
        {
            "title": (
                "(a) Chen et al. Tables II-V: compressed/original size of the float32 features "
                "(mean ± std, median time), the non-zero rate, and the same ratio on the "
                f"{cfg['bits']}-bit codes"
            ),
            "header": [
                "model",
                "split",
                "C x H x W",
                "KiB",
                "non-zero",
                *[n.upper() for n in comp_names],
                *[f"{n} (codes)" for n in comp_names],
            ],
            "rows": rows,
        }
    )
    keys = ("m", "l", "t", "tl", "bl", "tr", "none")
    out.append(
        {
            "title": (
                "(b) Choi & Bajić Table I (T = 2): % of values near one of the 8 most frequent "
                "(m), else near the left/top/top-left/bottom-left/top-right neighbour, else none"
            ),
            "header": ["model", "split", *[f"AD_{k}" if k != "none" else k for k in keys]],
            "rows": [
                [r["model"], r["split"], *[_f(100 * r[k], ".2f") for k in keys]]
                for r in rep["table1"]
            ],
        }
    )
    fig6 = rep["fig6"]
    out.append(
        {
            "title": (
                "(c) Choi & Bajić Fig. 6: % extra bits over the palette codec, whole tensor "
                "(positive: the anchor needs more)"
            ),
            "header": ["model", "split", "palette b/elem", *FIG6_ANCHORS],
            "rows": [
                [r["model"], r["split"], _f(r["palette_bpe"])]
                + [_f(r.get(a), "+.2f") for a in FIG6_ANCHORS]
                for r in fig6["rows"]
            ],
            "note": fig6["note"],
        }
    )
    return out


def _names(cases: list, key: str) -> list[str]:
    seen: list[str] = []
    for e in cases:
        for name, r in e.get(key, {}).items():
            if name not in seen and "skipped" not in r:
                seen.append(name)
    return seen


def format_table(table: dict) -> str:
    """A table as fixed-width text."""
    header, rows = table["header"], table["rows"]
    lines = [table["title"]]
    if table.get("note"):
        lines.append(f"  ({table['note']})")
    if not rows:
        return "\n".join(lines + ["  (no rows)"])
    width = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    ncol = len(header)
    for row in [header, *rows]:
        row = list(row) + [""] * (ncol - len(row))
        if len(row) > ncol:  # an error row: its message runs on
            row = row[: ncol - 1] + [" ".join(row[ncol - 1 :])]
        lines.append("  ".join(str(x).ljust(wd) for x, wd in zip(row, width, strict=False)))
    return "\n".join(lines)


def markdown_table(table: dict) -> str:
    """A table as markdown."""
    header, rows = table["header"], table["rows"]
    lines = [f"### {table['title']}", ""]
    if table.get("note"):
        lines += [f"_{table['note']}_", ""]
    if not rows:
        return "\n".join(lines + ["(no rows)", ""])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in rows:
        row = list(row) + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |")
    return "\n".join(lines + [""])


def write_reproductions(result: dict, out_dir: Path) -> None:
    """Write ``out_dir/reproductions.md`` (the reproductions (a)-(c) and the per-codec and
    anchor tables, as markdown) and ``out_dir/bench.json`` (``result`` itself)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = result["config"]
    parts = [
        "# Feature codecs: benchmark and reproductions",
        "",
        f"{cfg['bits']}-bit quantization (per-tensor min/max), up to {cfg['images']} tensors "
        f"per split point ({cfg['anchor_images']} for whole-tensor modes and anchors), "
        f"{cfg['rows_per_packet']}-row packets ({cfg['order']}). Bits per element divide by "
        "C x H x W. Run time: "
        f"{result.get('seconds', float('nan')):.0f} s.",
        "",
    ]
    ordered = tables(result)
    for t in ordered[3:] + ordered[:3]:  # the reproductions first
        parts.append(markdown_table(t))
    if result.get("notes"):
        parts += ["### Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    (out_dir / "reproductions.md").write_text("\n".join(parts))
    (out_dir / "bench.json").write_text(json.dumps(_clean(result), indent=1) + "\n")


def _clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------- lossy codecs
LOSSY_IMAGES = 6  # test images (tensors) per setting
# codec -> its knob and the values tried (finest first), the picture coder's effort
# attribute and its settings (dfsim's first; a label for each)
LOSSY_SETTINGS = {
    "hevc": {
        "knob": "qp",
        "values": (22, 32, 42),
        "attr": "preset",
        "efforts": (("ultrafast", "dfsim's"), ("medium", "x265's default")),
    },
    "avif": {
        "knob": "quality",
        "values": (80, 50, 20),
        "attr": "speed",
        "efforts": (
            (8, "dfsim's"),
            (6, "avifenc's default"),
            (None, "libavif's default: libaom's own"),
        ),
    },
    "jpeg-xl": {
        "knob": "quality",
        "values": (90, 60, 30),
        "attr": "effort",
        "efforts": ((3, "dfsim's"), (7, "libjxl's default")),
    },
    "jpeg": {
        "knob": "quality",
        "values": (90, 60, 20),
        "attr": None,
        "efforts": ((None, "libjpeg-turbo, baseline"),),
    },
}


def _effort_label(attr: str | None, value, note: str) -> str:
    if attr is None:
        return note
    return f"{attr} {'default' if value is None else value} ({note})"


def _lscpu_model() -> str:
    """The CPU's model name as lscpu gives it (else /proc/cpuinfo's)."""
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            return value.strip()
    from dfsim.reproducibility import cpu_model

    return cpu_model()


def _command() -> str:
    import shlex
    import sys

    if sys.argv[1:3] == ["bench", "lossy"]:  # dfsim's command line
        return shlex.join(["dfsim", *sys.argv[1:]])
    return "dfsim bench lossy (called from Python)"


def bench_lossy_setting(codec, features: np.ndarray, layout) -> dict:
    """One codec instance (its knob and effort set) on ``features`` (N x C x H x W), one
    tensor at a time as the simulator codes them: bits per tensor (the counted codestream
    plus the quantizer's min/max), fragments at the default MTU, PSNR against the
    unquantized features (as ``feature_psnr_db``), median encode and decode time per
    tensor (after a warm-up; fast settings repeated three times)."""
    from dfsim.codecs.accounting import distortion

    n = len(features)
    one = features[:1]
    # the coding itself: not an on-disk cache of codings in front of it, if there is one
    encode = getattr(codec, "_encode", codec.encode)
    encode(one, layout)  # warm-up: libraries load
    t0 = time.perf_counter()
    encode(one, layout)
    repeats = 1 if time.perf_counter() - t0 > 0.05 else 3
    enc_s, dec_s, bits, stream_bits, packets, decoded = [], [], [], [], [], []
    for i in range(n):
        x = features[i : i + 1]
        for _ in range(repeats):
            t0 = time.perf_counter()
            e = encode(x, layout)
            enc_s.append(time.perf_counter() - t0)
        received = np.ones((1, e.packets_per_image), bool)
        for _ in range(repeats):
            t0 = time.perf_counter()
            values, lost = codec.decode(e, received, e.side_info)
            dec_s.append(time.perf_counter() - t0)
        if lost.any():
            raise RuntimeError(f"{codec!r}: tensor {i} did not decode")
        bits.append(int(e.bits_per_image()[0]))
        stream_bits.append(int(e.packet_bits().sum()))
        packets.append(e.packets_per_image)
        decoded.append(values[0])
    dist = distortion([features], [np.stack(decoded)], camera=False)
    return {
        "images": n,
        "bits_per_tensor": float(np.mean(bits)),
        "stream_bits_per_tensor": float(np.mean(stream_bits)),
        "bits_per_element": float(np.mean(bits)) / features[0].size,
        "fragments": float(np.mean(packets)),
        "psnr_db": dist["feature_psnr_db"],
        "encode_ms": 1e3 * float(np.median(enc_s)),
        "decode_ms": 1e3 * float(np.median(dec_s)),
    }


def bench_lossy(args) -> dict:
    """The lossy picture codecs (whole-tensor mode, 8 bits) on the default model's features
    at its default split, at each effort setting and a few rates (:data:`LOSSY_SETTINGS`):
    bits per tensor, PSNR, encode and decode time per tensor, and what each effort setting
    costs in rate against dfsim's (the first) at the same knob. ``args``: ``out`` (a
    directory: also write lossy-codecs.txt and lossy-codecs.json there), and for tests
    ``lossy_images`` (default :data:`LOSSY_IMAGES`) and ``lossy_settings`` (a subset of
    :data:`LOSSY_SETTINGS` in its form)."""
    import datetime
    import io
    import os
    from contextlib import redirect_stdout

    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import load_model
    from dfsim.registry import build
    from dfsim.transport.packets import PacketLayout

    t_start = time.perf_counter()
    n = int(getattr(args, "lossy_images", None) or LOSSY_IMAGES)
    settings = getattr(args, "lossy_settings", None) or LOSSY_SETTINGS
    model = load_model("fmnist-resnet")
    split = model.default_split
    feats = _edge_features(model, split, load_fashion_mnist("test").head(n).images)
    c, h, w = feats.shape[1:]
    layout = PacketLayout.for_shape((c, h, w), packet_rows(h))
    result = {
        "command": _command(),
        "cpu": _lscpu_model(),
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "model": model.name,
        "split": split,
        "shape": [c, h, w],
        "images": n,
        "bits": 8,
        "mode": "tensor",
        "rows": [],
    }
    for name, spec in settings.items():
        for value in spec["values"]:
            first = None
            for effort, note in spec["efforts"]:
                codec = build("codec", name, "encoding", **{spec["knob"]: value})
                if spec["attr"] is not None:
                    setattr(codec.coder, spec["attr"], effort)  # this instance only
                r = bench_lossy_setting(codec, feats, layout)
                row = {
                    "codec": name,
                    "effort": _effort_label(spec["attr"], effort, note),
                    "knob": spec["knob"],
                    "value": value,
                    **r,
                }
                row["reference"] = first is None  # dfsim's setting: the others against it
                if first is None:
                    first = row
                ratio = r["bits_per_tensor"] / first["bits_per_tensor"]
                row["rate_vs_first_pct"] = 100.0 * (ratio - 1)
                row["psnr_vs_first_db"] = r["psnr_db"] - first["psnr_db"]
                row["encode_vs_first"] = r["encode_ms"] / first["encode_ms"]
                result["rows"].append(row)
                print(
                    f"  {name} {spec['knob']} {value}, {row['effort']}: "
                    f"{r['bits_per_tensor']:.0f} bits, {r['encode_ms']:.1f} ms",
                    flush=True,
                )
    result["summary"] = lossy_summary(result["rows"])
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    text = io.StringIO()
    with redirect_stdout(text):
        print_lossy(result)
    print()
    print(text.getvalue(), end="")
    out = getattr(args, "out", None)
    if out:
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        (d / "lossy-codecs.txt").write_text(text.getvalue())
        (d / "lossy-codecs.json").write_text(json.dumps(_clean(result), indent=1) + "\n")
    return _clean(result)


def _bd_rate(ref: list[dict], test: list[dict]) -> float | None:
    """Bjøntegaard delta rate (%) of ``test`` against ``ref`` on their (bits, PSNR)
    points: the rate change at the same PSNR; None when it cannot be had."""
    from dfsim.experiment.statistics import bd_rate

    pts = [sorted((r["bits_per_tensor"], r["psnr_db"]) for r in rows) for rows in (ref, test)]
    if any(len(p) < 2 for p in pts):
        return None
    try:
        v = bd_rate(*pts)
    except (ValueError, ZeroDivisionError):
        return None
    return float(v) if np.isfinite(v) else None


def lossy_summary(rows: list[dict]) -> list[dict]:
    """Per codec and effort setting other than dfsim's: mean rate change, PSNR change and
    encode-time factor against dfsim's setting at the same knob, over the knob values, and
    the rate change at the same PSNR (Bjøntegaard, over the same points)."""
    out = []
    for name in dict.fromkeys(r["codec"] for r in rows):
        mine = [r for r in rows if r["codec"] == name]
        efforts = list(dict.fromkeys(r["effort"] for r in mine))
        ref = [r for r in mine if r["effort"] == efforts[0]]
        for effort in efforts[1:]:
            sel = [r for r in mine if r["effort"] == effort]
            out.append(
                {
                    "codec": name,
                    "effort": effort,
                    "against": efforts[0],
                    "knob": sel[0]["knob"],
                    "values": [r["value"] for r in sel],
                    "rate_pct": float(np.mean([r["rate_vs_first_pct"] for r in sel])),
                    "psnr_db": float(np.mean([r["psnr_vs_first_db"] for r in sel])),
                    "encode_x": float(np.mean([r["encode_vs_first"] for r in sel])),
                    "bd_rate_pct": _bd_rate(ref, sel),
                }
            )
    return out


def print_lossy(result: dict) -> None:
    """The lossy-codec benchmark as text: the command, CPU and date, the table, what each
    effort setting costs."""
    c, h, w = result["shape"]
    from dfsim.codecs.tiling import grid

    down, across = grid(c)
    print(
        f"# {result['command']}; {result['cpu']}, {result['cores']} cores; {result['date']}; "
        f"load average {result['load_average']:.1f} at the start (other processes share the "
        "cores: times are indicative)"
    )
    print(
        f"Lossy codecs, whole-tensor mode, {result['bits']}-bit quantizer: {result['model']} "
        f"{result['split']} features ({c}x{h}x{w}, tiled as one {across * w}x{down * h} "
        f"picture) of the first {result['images']} Fashion-MNIST test images, one tensor at a "
        "time, one thread. bits: the counted codestream plus the quantizer's min/max (64 "
        "bits); frags: fragments at a 1500-byte MTU; PSNR against the unquantized features "
        "(peak: each tensor's range); ms: median per tensor. vs dfsim's: the same knob at "
        "dfsim's effort setting (the first of each codec)."
    )
    header = [
        "codec",
        "effort",
        "knob",
        "bits/tensor",
        "bits/elem",
        "frags",
        "PSNR dB",
        "enc ms",
        "dec ms",
        "rate vs dfsim's",
        "PSNR vs dfsim's",
    ]
    rows = []
    for r in result["rows"]:
        same = r["reference"]
        rows.append(
            [
                r["codec"],
                r["effort"],
                f"{r['knob']} {r['value']}",
                f"{r['bits_per_tensor']:.0f}",
                f"{r['bits_per_element']:.3f}",
                f"{r['fragments']:.1f}",
                f"{r['psnr_db']:.2f}",
                f"{r['encode_ms']:.1f}",
                f"{r['decode_ms']:.2f}",
                "-" if same else f"{r['rate_vs_first_pct']:+.1f} %",
                "-" if same else f"{r['psnr_vs_first_db']:+.2f} dB",
            ]
        )
    print(format_table({"title": "", "header": header, "rows": rows}).lstrip("\n"))
    if result["summary"]:
        print()
        print("What each effort setting costs against dfsim's, at the same knob (mean over it):")
        for s in result["summary"]:
            knobs = ", ".join(f"{s['knob']} {v}" for v in s["values"])
            bd = "n/a" if s["bd_rate_pct"] is None else f"{s['bd_rate_pct']:+.1f} %"
            print(
                f"  {s['codec']}: {s['effort']} vs {s['against']}: rate {s['rate_pct']:+.1f} %, "
                f"PSNR {s['psnr_db']:+.2f} dB, encoding x{s['encode_x']:.1f} ({knobs}); "
                f"rate at the same PSNR (BD-rate): {bd}"
            )
    print(f"bench lossy: {result.get('seconds', float('nan')):.0f} s")
