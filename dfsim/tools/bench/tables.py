"""What the benchmarks print and write: their lines and tables as text, the codec tables
as markdown, and results made JSON-safe. Nothing here measures; every function takes
numbers the measuring modules produced."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dfsim.tools.bench.reproductions import FIG6_ANCHORS


# --------------------------------------------------------------------------- generic
def cell(v, fmt: str = ".3f") -> str:
    """A number for a table cell; ``-`` for none (None or NaN)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def format_table(table: dict) -> str:
    """A table (``title``, ``header``, ``rows`` of strings, optional ``note``) as
    fixed-width text."""
    header, rows = table["header"], table["rows"]
    lines = [table["title"]]
    if table.get("note"):
        lines.append(f"  ({table['note']})")
    if not rows:
        return "\n".join(lines + ["  (no rows)"])
    ncol = len(header)
    # an error row's message (its last cell) runs on: only its other cells set widths
    aligned = [[str(x) for x in (r if len(r) == ncol else r[:-1])] for r in [header, *rows]]
    width = [max((len(r[j]) for r in aligned if j < len(r)), default=0) for j in range(ncol)]
    for row in [header, *rows]:
        row = [str(x) for x in row]
        if len(row) == ncol:
            lines.append("  ".join(x.ljust(wd) for x, wd in zip(row, width, strict=True)))
        else:  # an error row: its first cells aligned, then its message runs on
            head = min(len(row) - 1, ncol - 1)
            cells = [x.ljust(wd) for x, wd in zip(row[:head], width, strict=False)]
            lines.append("  ".join([*cells, " ".join(row[head:])]))
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


def json_safe(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------- model, network
def model_line(split: str, feature_shape, batch: int, device: str, images_per_s: float) -> str:
    """One line of ``dfsim bench model``."""
    return (
        f"back sub-model ({split} {'x'.join(map(str, feature_shape))}), batch {batch:5d}, "
        f"{device}: {images_per_s:9.0f} images/s"
    )


def network_line(label: str, packets_per_s: float, per_image: float, setup: str) -> str:
    """One line of ``dfsim bench network``: a case's packets per second, the packets per
    image on the wire, and the setup every case shares."""
    return (
        f"network, {label}: {packets_per_s:,.0f} packets/s "
        f"({per_image:.0f} packets/image on the wire, {setup})"
    )


# --------------------------------------------------------------------------- completion
def completion_case_header(
    label: str, shape, rows: int, lost_fraction: float, loss, burst, batch: int
) -> str:
    """The lines above one case's table of ``dfsim bench completion``: what was lost, and
    the column names."""
    c, h, w = shape
    return (
        f"\n{label}: {c}x{h}x{w}, {rows} rows/packet, "
        f"{lost_fraction:.1%} of entries lost (Gilbert-Elliott {loss}/{burst})\n"
        f"{'method':14s} {'ms/tensor':>10s} {'ms/iter':>8s} {'iters':>6s} {'MSE lost':>9s} "
        f"{'tensors/s (batch ' + str(batch) + ')':>24s} {'ms/iter (batch)':>16s} "
        f"{'ms/tensor (batch)':>18s} {'single/batch':>12s}"
    )


def completion_row(name: str, r: dict) -> str:
    """One method's row of ``dfsim bench completion`` (``nan`` for a method without
    iterations): ``ms/tensor`` is one ``complete()`` call, ``ms/tensor (batch)`` the batched
    path's time per tensor and ``single/batch`` their ratio."""
    per_iter = r["ms_per_iter"] or float("nan")
    batched_iter = r["ms_per_iter_batched"] or float("nan")
    return (
        f"{name:14s} {r['ms_per_tensor']:10.3f} {per_iter:8.3f} {r['iters']:6.1f} "
        f"{r['mse']:9.4f} {r['tensors_per_s_batched']:24.1f} {batched_iter:16.4f} "
        f"{r['ms_per_tensor_batched']:18.4f} {r['single_vs_batched']:12.2f}"
    )


# --------------------------------------------------------------------------- codecs
def tables(result: dict) -> list[dict]:
    """The codec benchmark's tables, each a dict with ``title``, ``header``, ``rows``
    (strings): feature statistics, the codecs, the anchors, then the reproductions
    (a)-(c)."""
    cfg, cases, rep = result["config"], result["cases"], result["reproductions"]
    return [
        statistics_table(cfg, cases),
        codec_table(cfg, cases),
        anchor_table(cases),
        chen_table(cfg, rep["seed002"], names(cases, "compressors")),
        choi_table(rep["table1"]),
        fig6_table(rep["fig6"]),
    ]


def names(cases: list, key: str) -> list[str]:
    """The anchors (``key``: ``images`` or ``compressors``) that coded something in any
    case, in order of first appearance."""
    seen: list[str] = []
    for e in cases:
        for name, r in e.get(key, {}).items():
            if name not in seen and "skipped" not in r:
                seen.append(name)
    return seen


def statistics_table(cfg: dict, cases: list) -> dict:
    """Non-zero rates, order-0 entropy and concentration of each split point's features."""
    return {
        "title": (
            f"Feature statistics ({cfg['bits']}-bit codes, mean over up to {cfg['images']} tensors)"
        ),
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
                cell(e["stats"]["mean"].get("nonzero_features")),
                cell(e["stats"]["mean"]["nonzero_codes"]),
                cell(e["stats"]["mean"]["entropy"]),
                cell(e["stats"]["mean"]["near_top"]),
            ]
            for e in cases
        ],
    }


def codec_table(cfg: dict, cases: list) -> dict:
    """Each registered codec's bits per element and times, per packet and whole tensor."""
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
                    cell(r["packet_bpe"]),
                    cell(r["ideal_bpe"]),
                    cell(r.get("whole_bpe")),
                    cell(e["stats"]["mean"]["entropy"]),
                    cell(r["encode_ms"], ".2f"),
                    cell(r["decode_ms"], ".2f"),
                    cell(r.get("whole_encode_ms"), ".2f"),
                    "yes" if not bad else "NO: " + "+".join(bad),
                    f"{r['packet_images']}/{r.get('whole_images', '-')}",
                ]
            )
    return {
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


def anchor_table(cases: list) -> dict:
    """The image codecs' and byte compressors' bits per element, and the best registered
    codec in whole-tensor mode."""
    img_names = names(cases, "images")
    comp_names = names(cases, "compressors")
    rows = []
    for e in cases:
        best = [
            (r["whole_bpe"], name) for name, r in e["codecs"].items() if r.get("whole_bpe")
        ] or [(None, "-")]
        b = min(best, key=lambda t: math.inf if t[0] is None else t[0])
        rows.append(
            [e["model"], e["split"], cell(e["stats"]["mean"]["entropy"])]
            + [cell(e["images"].get(a, {}).get("bpe")) for a in img_names]
            + [cell(e["compressors"].get(a, {}).get("bpe")) for a in comp_names]
            + [f"{cell(b[0])} {b[1]}"]
        )
    return {
        "title": (
            "Anchors, whole tensor, bits per element: image codecs on the tiled image, "
            "stdlib compressors on the code bytes (all verified lossless)"
        ),
        "header": ["model", "split", "H0", *img_names, *comp_names, "best codec (whole)"],
        "rows": rows,
    }


def chen_table(cfg: dict, seed002: list, comp_names: list[str]) -> dict:
    """Reproduction (a): the shape of Chen et al.'s Tables II-V."""
    rows = []
    for r in seed002:
        row = [
            r["model"],
            r["split"],
            "x".join(map(str, r["shape"])),
            cell(r["float32_kib"], ".1f"),
            f"{cell(r['nonzero'])} ± {cell(r['nonzero_std'])}",
        ]
        for name in comp_names:
            mean, std = r.get(f"{name}_ratio_float32"), r.get(f"{name}_ratio_float32_std")
            ms = cell(r.get(f"{name}_ms_float32"), ".1f")
            row.append(f"{cell(mean)} ± {cell(std)} ({ms} ms)")
        row += [cell(r.get(f"{name}_ratio_codes")) for name in comp_names]
        rows.append(row)
    return {
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


def choi_table(table1: list) -> dict:
    """Reproduction (b): Choi & Bajić's Table I."""
    keys = ("m", "l", "t", "tl", "bl", "tr", "none")
    return {
        "title": (
            "(b) Choi & Bajić Table I (T = 2): % of values near one of the 8 most frequent "
            "(m), else near the left/top/top-left/bottom-left/top-right neighbour, else none"
        ),
        "header": ["model", "split", *[f"AD_{k}" if k != "none" else k for k in keys]],
        "rows": [
            [r["model"], r["split"], *[cell(100 * r[k], ".2f") for k in keys]] for r in table1
        ],
    }


def fig6_table(fig6: dict) -> dict:
    """Reproduction (c): Choi & Bajić's Fig. 6."""
    return {
        "title": (
            "(c) Choi & Bajić Fig. 6: % extra bits over the palette codec, whole tensor "
            "(positive: the anchor needs more)"
        ),
        "header": ["model", "split", "palette b/elem", *FIG6_ANCHORS],
        "rows": [
            [r["model"], r["split"], cell(r["palette_bpe"])]
            + [cell(r.get(a), "+.2f") for a in FIG6_ANCHORS]
            for r in fig6["rows"]
        ],
        "note": fig6["note"],
    }


def print_codec_report(result: dict) -> None:
    """The codec benchmark's tables, notes and run time, on stdout."""
    print()
    for table in tables(result):
        print(format_table(table))
        print()
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"bench codecs: {result['seconds']:.0f} s")


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
    (out_dir / "bench.json").write_text(json.dumps(json_safe(result), indent=1) + "\n")


# --------------------------------------------------------------------------- lossy codecs
LOSSY_HEADER = [
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


def print_lossy(result: dict) -> None:
    """The lossy-codec benchmark as text: the command, CPU and date, the table, what each
    effort setting costs."""
    print(lossy_intro(result))
    rows = [lossy_row(r) for r in result["rows"]]
    print(format_table({"title": "", "header": LOSSY_HEADER, "rows": rows}).lstrip("\n"))
    if result["summary"]:
        print()
        print("What each effort setting costs against dfsim's, at the same knob (mean over it):")
        for s in result["summary"]:
            print(lossy_summary_line(s))
    print(f"bench lossy: {result.get('seconds', float('nan')):.0f} s")


def lossy_intro(result: dict) -> str:
    """The two lines above the lossy-codec table: where it ran, and what it measured."""
    from dfsim.codecs.tiling import grid

    c, h, w = result["shape"]
    down, across = grid(c)
    return (
        f"# {result['command']}; {result['cpu']}, {result['cores']} cores; {result['date']}; "
        f"load average {result['load_average']:.1f} at the start (other processes share the "
        "cores: times are indicative)\n"
        f"Lossy codecs, whole-tensor mode, {result['bits']}-bit quantizer: {result['model']} "
        f"{result['split']} features ({c}x{h}x{w}, tiled as one {across * w}x{down * h} "
        f"picture) of the first {result['images']} Fashion-MNIST test images, one tensor at a "
        "time, one thread. bits: the counted codestream plus the quantizer's min/max (64 "
        "bits); frags: fragments at a 1500-byte MTU; PSNR against the unquantized features "
        "(peak: each tensor's range); ms: median per tensor. vs dfsim's: the same knob at "
        "dfsim's effort setting (the first of each codec)."
    )


def lossy_row(r: dict) -> list[str]:
    """One (codec, knob value, effort) row of the lossy-codec table."""
    same = r["reference"]
    return [
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


def lossy_summary_line(s: dict) -> str:
    """What one effort setting costs against dfsim's (an entry of ``lossy_summary``)."""
    knobs = ", ".join(f"{s['knob']} {v}" for v in s["values"])
    bd = "n/a" if s["bd_rate_pct"] is None else f"{s['bd_rate_pct']:+.1f} %"
    return (
        f"  {s['codec']}: {s['effort']} vs {s['against']}: rate {s['rate_pct']:+.1f} %, "
        f"PSNR {s['psnr_db']:+.2f} dB, encoding x{s['encode_x']:.1f} ({knobs}); "
        f"rate at the same PSNR (BD-rate): {bd}"
    )


def lossy_setting_line(row: dict) -> str:
    """The progress line after one lossy setting is measured."""
    return (
        f"  {row['codec']} {row['knob']} {row['value']}, {row['effort']}: "
        f"{row['bits_per_tensor']:.0f} bits, {row['encode_ms']:.1f} ms"
    )
