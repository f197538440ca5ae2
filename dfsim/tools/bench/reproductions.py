"""The three papers' tables ``dfsim bench codecs`` reproduces, computed from its cases:
(a) the shape of Chen et al.'s Tables II-V (general-purpose compressors on the float32
features, and the non-zero rate), (b) Choi & Bajić's Table I per split point, (c) their
Fig. 6: the extra bits of image codecs over the ``palette`` codec in whole-tensor mode."""

from __future__ import annotations

import math

import numpy as np

FIG6_ANCHORS = ("hevc", "png", "jpeg2000", "jpeg-xl", "jpeg-lossless")


def reproductions(result: dict) -> dict:
    """(a) Chen et al.'s table shape, (b) Choi & Bajić's Table I, (c) their Fig. 6, from
    the benchmark's cases."""
    cases = result["cases"]
    table1 = [
        {"model": model, "split": "input image", **sim}
        for model, sim in result.get("inputs", {}).items()
    ]
    table1 += [{"model": e["model"], "split": e["split"], **e["similarity"]} for e in cases]
    return {"seed002": [chen_row(e) for e in cases], "table1": table1, "fig6": fig6(cases)}


def chen_row(e: dict) -> dict:
    """(a) for one case: size, non-zero rate, and each byte compressor's ratios and time."""
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
    return row


def fig6(cases: list) -> dict:
    """(c): per case whose palette whole-tensor coding is lossless, the % extra bits of
    each of :data:`FIG6_ANCHORS`, then the paper's averages per network; a note when no
    case has one."""
    rows = []
    for e in cases:
        pal = e["codecs"].get("palette", {})
        if pal.get("whole_bits") and pal.get("whole_exact") is not False:
            pbits = np.asarray(pal["whole_bits"], np.float64)
            r = {"model": e["model"], "split": e["split"], "palette_bpe": pal["whole_bpe"]}
            for name in FIG6_ANCHORS:
                a = e.get("images", {}).get(name, {})
                if "bits" in a:
                    m = min(len(a["bits"]), len(pbits))
                    r[name] = 100.0 * (np.sum(a["bits"][:m]) / np.sum(pbits[:m]) - 1.0)
                else:
                    r[name] = None
            rows.append(r)
    palette = bool(rows)
    for model in dict.fromkeys(r["model"] for r in rows):  # the paper's averages per network
        mine = [r for r in rows if r["model"] == model]
        avg = {
            "model": model,
            "split": "mean",
            "palette_bpe": _mean(r["palette_bpe"] for r in mine),
        }
        rows.append(avg | {a: _mean(r.get(a) for r in mine) for a in FIG6_ANCHORS})
    note = None
    if not palette:
        note = (
            "the palette codec is not registered, or its whole-tensor mode failed or was not "
            "lossless: Fig. 6 is left out"
        )
    return {"rows": rows, "note": note}


def _mean(xs) -> float | None:
    """The mean of the values that are not None or NaN; None when there are none."""
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None
