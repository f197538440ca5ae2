"""Statistics over Monte Carlo trials: per (channel setting, method) means, spread, 95 %
confidence intervals, and a paired test of each method against a reference method.

The paired test is the **paired t-test** on per-trial top-1 (every method saw the same
loss pattern in a trial, so differences are paired). With few trials, a Wilcoxon
signed-rank test cannot reach p < 0.05 at all (5 trials: p >= 0.0625), which is why
the t-test is used; its p-value assumes roughly normal differences.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict

import numpy as np

from dfsim.results import mean_ci95

CONFIG_KEYS = ("split", "bits", "rows_per_packet", "order", "error_control")  # the grid
CHANNEL_KEYS = ("channel", "loss_rate", "burst_length")
CELL_KEYS = CONFIG_KEYS + CHANNEL_KEYS
METRICS = ("top1", "agreement", "realised_loss_rate", "completion_ms_per_tensor", "mse_lost", "completion_iters",
           "latency_p95_ms", "latency_p99_ms", "e2e_latency_p95_ms", "bits_per_image", "channel_loss_rate",
           "congestion_loss_rate", "deadline_loss_rate", "retransmissions_per_image")


def paired_t_pvalue(a, b) -> float:
    """Two-sided p-value of the paired t-test of a vs b (1.0 when they never differ)."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2 or np.all(d == d[0]):
        return 1.0 if np.all(d == 0) else (0.0 if len(d) >= 2 else math.nan)
    with warnings.catch_warnings():  # near-constant differences: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(a, b).pvalue)


def summarize(rows: list[dict], reference: str | None = None) -> list[dict]:
    """One row per (config, channel setting, method), in the order they first appear."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    reference = reference if reference in methods else ("zeros" if "zeros" in methods else methods[0])
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[tuple(r.get(k) for k in CELL_KEYS)][r["method"]].append(r)
    out = []
    for cell, by_method in groups.items():
        ref = sorted(by_method.get(reference, []), key=lambda r: r["trial"])
        for method in methods:
            trials = sorted(by_method.get(method, []), key=lambda r: r["trial"])
            if not trials:
                continue
            values = dict(zip(CELL_KEYS, cell, strict=True))
            row = {k: values[k] for k in CHANNEL_KEYS + CONFIG_KEYS}
            row.update(method=method, trials=len(trials))
            for m in METRICS:
                if m in trials[0]:
                    mean, sd, half = mean_ci95([t[m] for t in trials])
                    row[f"{m}_mean"], row[f"{m}_sd"], row[f"{m}_ci95"] = mean, sd, half
            row["reference"] = reference
            if method == reference or [t["trial"] for t in trials] != [t["trial"] for t in ref]:
                row["top1_diff_vs_reference"], row["p_vs_reference"] = 0.0, math.nan
            else:
                row["top1_diff_vs_reference"] = float(np.mean([t["top1"] - u["top1"] for t, u in zip(trials, ref, strict=True)]))
                row["p_vs_reference"] = paired_t_pvalue([t["top1"] for t in trials], [u["top1"] for u in ref])
            out.append(row)
    return out


HIGHER_IS_BETTER = ("top1", "agreement")


def varying_config_keys(rows: list[dict]) -> list[str]:
    """The grid keys that take more than one value in ``rows``."""
    return [k for k in CONFIG_KEYS if len({r.get(k) for r in rows}) > 1]


def markdown_table(summary: list[dict], metric: str = "top1") -> str:
    """Methods as columns, (config, channel setting) as rows: mean ± 95 % CI (in %), best
    per row in bold. Grid keys appear as columns only when they vary."""
    methods = list(dict.fromkeys(r["method"] for r in summary))
    cells = list(dict.fromkeys(tuple(r.get(k) for k in CELL_KEYS) for r in summary))
    by = {(tuple(r.get(k) for k in CELL_KEYS), r["method"]): r for r in summary}
    scale = 100.0 if metric in ("top1", "agreement") else 1.0
    shown = varying_config_keys(summary)
    heads = [k.replace("rows_per_packet", "rows/packet").replace("error_control", "error control") for k in shown]
    lines = ["| " + "".join(f"{h} | " for h in heads) + "channel | loss | burst | "
             + " | ".join(f"`{m}`" for m in methods) + " |",
             "|" + "---|" * len(shown) + "---|---:|---:|" + "---:|" * len(methods)]
    for cell in cells:
        vals = {m: by[(cell, m)][f"{metric}_mean"] for m in methods if (cell, m) in by}
        finite = [v for v in vals.values() if v == v]
        best = (max(finite) if metric in HIGHER_IS_BETTER else min(finite)) if finite else None
        entries = []
        for m in methods:
            r = by.get((cell, m))
            if r is None:
                entries.append("—")
                continue
            text = f"{scale * r[f'{metric}_mean']:.1f} ± {scale * r[f'{metric}_ci95']:.1f}"
            p = r.get("p_vs_reference")
            if metric == "top1" and p is not None and not math.isnan(p) and p < 0.05:
                text += "*"
            entries.append(f"**{text}**" if vals[m] == best else text)
        values = dict(zip(CELL_KEYS, cell, strict=True))
        channel, loss, burst = (values[k] for k in CHANNEL_KEYS)
        lines.append("| " + "".join(f"{values[k]} | " for k in shown)
                     + f"{channel} | {loss:g} | {burst:.3g} | " + " | ".join(entries) + " |")
    ref = summary[0]["reference"] if summary else ""
    lines.append("")
    unit = " (%)" if metric in HIGHER_IS_BETTER else ""
    note = (f"; * = top-1 differs from `{ref}` (paired t-test, p < 0.05)." if metric == "top1"
            else " (lowest is best)." if metric not in HIGHER_IS_BETTER else ".")
    lines.append(f"Mean {metric}{unit} ± 95 % CI over trials; best per row in bold{note}")
    return "\n".join(lines)
