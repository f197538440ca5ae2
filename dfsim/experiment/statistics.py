"""Statistics over Monte Carlo trials: per (channel setting, method) means, spread, 95 %
confidence intervals, and a paired test of each method against a reference method.

The paired test is the **paired t-test** on the task's per-trial primary metric (top-1 for
classification; its label-free metric on unlabelled images): every method saw the same
loss pattern in a trial, so differences are paired. With few trials, a Wilcoxon
signed-rank test cannot reach p < 0.05 at all (5 trials: p >= 0.0625), which is why
the t-test is used; its p-value assumes roughly normal differences.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict

import numpy as np

from dfsim.errors import UserError
from dfsim.experiment.results import (
    CHANNEL_COLUMNS,
    STREAM_RATES,
    ResultsSchema,
    mean_ci95,
    per_stream,
)


def paired_t_pvalue(a, b) -> float:
    """Two-sided p-value of the paired t-test of a vs b (1.0 when they never differ)."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2 or np.all(d == d[0]):
        return 1.0 if np.all(d == 0) else (0.0 if len(d) >= 2 else math.nan)
    with (
        warnings.catch_warnings()
    ):  # near-constant differences: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(a, b).pvalue)


def summarize(
    rows: list[dict],
    schema: ResultsSchema,
    reference: str | None = None,
    metric: str | None = None,
) -> list[dict]:
    """One row per (config, channel setting, method), in the order they first appear: mean,
    SD and 95 % interval of every metric, and the paired test of ``metric`` (default: the
    task's shown metric, its primary one or the label-free one without labels) against
    ``reference``."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    reference = (
        reference if reference in methods else ("zeros" if "zeros" in methods else methods[0])
    )
    keys = tuple(schema.config_columns) + CHANNEL_COLUMNS
    tested = metric or schema.shown_metric(rows)
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[tuple(r.get(k) for k in keys)][r["method"]].append(r)
    metrics = [m.name for m in schema.summarised(rows)]
    out = []
    for cell, by_method in groups.items():
        ref = sorted(by_method.get(reference, []), key=lambda r: r["trial"])
        for method in methods:
            trials = sorted(by_method.get(method, []), key=lambda r: r["trial"])
            if not trials:
                continue
            values = dict(zip(keys, cell, strict=True))
            row = {k: values[k] for k in CHANNEL_COLUMNS + tuple(schema.config_columns)}
            row.update(method=method, trials=len(trials))
            for m in (m for m in metrics if all(m in t for t in trials)):
                mean, sd, half = mean_ci95([t[m] for t in trials])
                row[f"{m}_mean"], row[f"{m}_sd"], row[f"{m}_ci95"] = mean, sd, half
            row["reference"] = reference
            row.update(_paired(trials, ref, tested, method == reference))
            out.append(row)
    return out


def _paired(trials: list[dict], ref: list[dict], metric: str, is_reference: bool) -> dict:
    """Mean paired difference of ``metric`` against the reference method and its p-value."""
    if is_reference or [t["trial"] for t in trials] != [t["trial"] for t in ref]:
        return {f"{metric}_diff_vs_reference": 0.0, "p_vs_reference": math.nan}
    a, b = [t[metric] for t in trials], [u[metric] for u in ref]
    return {
        f"{metric}_diff_vs_reference": float(np.mean(np.subtract(a, b))),
        "p_vs_reference": paired_t_pvalue(a, b),
    }


def varying_config_keys(rows: list[dict], schema: ResultsSchema) -> list[str]:
    """The config columns that take more than one value in ``rows`` (rows without the
    column, e.g. a parameter of another codec, do not count: the ``codec`` column tells
    those configs apart)."""
    return [
        k
        for k in schema.config_columns
        if len({r.get(k) for r in rows if r.get(k) is not None and r.get(k) == r.get(k)}) > 1
    ]


def markdown_table(summary: list[dict], schema: ResultsSchema, metric: str) -> str:
    """Methods as columns, (config, channel setting) as rows: mean ± 95 % CI (scaled as the
    metric declares; ``± n/a`` from a single trial), best per row in bold. Config columns
    appear only when they vary."""
    decl = schema.metric(metric)
    metric = decl.name
    keys = tuple(schema.config_columns) + CHANNEL_COLUMNS
    methods = list(dict.fromkeys(r["method"] for r in summary))
    cells = list(dict.fromkeys(tuple(r.get(k) for k in keys) for r in summary))
    by = {(tuple(r.get(k) for k in keys), r["method"]): r for r in summary}
    shown = varying_config_keys(summary, schema)
    heads = [
        k.replace("rows_per_packet", "rows/packet").replace("error_control", "error control")
        for k in shown
    ]
    lines = [
        "| "
        + "".join(f"{h} | " for h in heads)
        + "channel | loss | burst | "
        + " | ".join(f"`{m}`" for m in methods)
        + " |",
        "|" + "---|" * len(shown) + "---|---:|---:|" + "---:|" * len(methods),
    ]
    starred = f"{metric}_diff_vs_reference" in (summary[0] if summary else {})
    for cell in cells:
        lines.append(_table_row(cell, keys, shown, methods, by, decl, starred))
    ref = summary[0]["reference"] if summary else ""
    unit = f" ({decl.unit})" if decl.unit else ""
    if starred:
        note = f"; * = differs from `{ref}` (paired t-test, p < 0.05)."
    elif decl.higher_is_better is False:
        note = " (lowest is best)."
    else:
        note = "."
    lines += ["", f"Mean {metric}{unit} ± 95 % CI over trials; best per row in bold{note}"]
    return "\n".join(lines)


def _mean_interval(mean: float, half: float, trials: int | None, decl, decimals: int) -> str:
    """``mean ± half-width``, scaled as the metric declares; ``mean ± n/a`` from fewer than
    two trials, which have no interval (not one of width 0)."""
    shown = f"{decl.scale * mean:.{decimals}f}"
    if trials is not None and trials < 2:
        return f"{shown} ± n/a"
    return f"{shown} ± {decl.scale * half:.{decimals}f}"


def _table_row(cell, keys, shown, methods, by, decl, starred: bool) -> str:
    metric = decl.name
    vals = {m: by[(cell, m)][f"{metric}_mean"] for m in methods if (cell, m) in by}
    finite = [v for v in vals.values() if v == v]
    best = None
    if finite and decl.higher_is_better is not None:
        best = max(finite) if decl.higher_is_better else min(finite)
    entries = []
    for m in methods:
        r = by.get((cell, m))
        if r is None:
            entries.append("—")
            continue
        d = decl.decimals
        text = _mean_interval(r[f"{metric}_mean"], r[f"{metric}_ci95"], r.get("trials"), decl, d)
        p = r.get("p_vs_reference")
        if starred and p is not None and not math.isnan(p) and p < 0.05:
            text += "*"
        entries.append(f"**{text}**" if vals[m] == best else text)
    values = dict(zip(keys, cell, strict=True))
    channel, loss, burst = (values[k] for k in CHANNEL_COLUMNS)
    return (
        "| "
        + "".join(f"{values[k]} | " for k in shown)
        + f"{channel} | {loss:g} | {burst:.3g} | "
        + " | ".join(entries)
        + " |"
    )


# --------------------------------------------------------------------------- rate
RATE_COLUMNS = ("kbpi", "bits_per_image", "bpp", "bits_per_element", "wire_bits_per_image")


def is_rate_column(name: str) -> bool:
    """A rate column: one of :data:`RATE_COLUMNS` or a stream's ``kbpi_s<i>`` /
    ``bits_per_image_s<i>``."""
    stream = per_stream(name)
    return name in RATE_COLUMNS or (stream is not None and stream[0] in STREAM_RATES)


def rate_curves(
    rows: list[dict], schema: ResultsSchema, metric: str, rate: str, curves: str
) -> dict[tuple, dict[str, list[tuple[float, float]]]]:
    """Rate-``metric`` curves: per (channel setting, method), one curve per value of the
    field ``curves`` (a config column such as ``codec``, or ``method``; several fields
    comma-separated, e.g. ``split,codec``, name a curve by their values joined by ``/``:
    ``input/hevc``), each point one config of that curve (e.g. one bit depth): mean rate
    and mean metric over trials."""
    fields = curve_fields(curves)
    point_keys = [k for k in varying_config_keys(rows, schema) if k not in fields]
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        setting = tuple(r[c] for c in CHANNEL_COLUMNS)
        group = setting if "method" in fields else (*setting, r["method"])
        point = tuple(r.get(k) for k in point_keys)
        acc[(group, curve_name(r, fields))][point].append((r[rate], r[metric]))
    out: dict = defaultdict(dict)
    for (group, curve), points in acc.items():
        pts = [tuple(np.mean(np.asarray(v, float), axis=0)) for v in points.values()]
        out[group][curve] = sorted(pts)
    return out


def curve_fields(curves: str) -> tuple[str, ...]:
    """The fields of ``--curves`` (one, or several comma-separated)."""
    return tuple(f.strip() for f in curves.split(","))


def curve_name(row: dict, fields: tuple[str, ...]) -> str:
    """A row's curve: its values of ``fields`` joined by ``/``."""
    return "/".join(str(row.get(f)) for f in fields)


def bd_rates(
    rows: list[dict],
    schema: ResultsSchema,
    metric: str,
    rate: str = "kbpi",
    curves: str = "codec",
    anchor: str | None = None,
) -> list[dict]:
    """The Bjøntegaard-delta rate (%, negative: fewer bits at equal ``metric``) of every
    curve against the ``anchor`` curve (default: the first), per channel setting and
    method: one dict per (group, curve) with the group's fields, ``curve``, ``anchor``,
    ``bd_rate`` (NaN where there is none) and ``note`` (why not; empty otherwise).
    Piecewise cubic Hermite (pchip) interpolation of rate against metric (the
    ``bjontegaard`` package) over each curve's :func:`pareto_front` (a saturated tail has
    no rate-metric trade-off to compare); a curve needs two such points. KeyError: an
    ``anchor`` that is not a curve."""
    table = rate_curves(rows, schema, metric, rate, curves)
    names = list(dict.fromkeys(c for g in table.values() for c in g))
    if anchor is None:
        anchor = names[0]
    elif anchor not in names:
        raise KeyError(anchor)
    group_cols = bd_rate_group_fields(curves)
    out = []
    for group, by_curve in table.items():
        for c in (c for c in names if c != anchor):
            value, note = bd_rate_of_curves(by_curve.get(anchor), by_curve.get(c))
            row = dict(zip(group_cols, group, strict=True))
            row.update(curve=c, anchor=anchor, bd_rate=value, note=note)
            out.append(row)
    return out


def bd_rate_group_fields(curves: str) -> list[str]:
    """The fields that group the curves of :func:`bd_rates`: the channel setting, and the
    method unless the curves are methods."""
    return list(CHANNEL_COLUMNS) + ([] if "method" in curve_fields(curves) else ["method"])


def bd_rate_table(
    rows: list[dict],
    schema: ResultsSchema,
    metric: str,
    rate: str = "kbpi",
    curves: str = "codec",
    anchor: str | None = None,
) -> str:
    """Markdown table of :func:`bd_rates`: a row per channel setting (and method), a column
    per curve against the anchor; a cell without a BD-rate says why."""
    found = bd_rates(rows, schema, metric, rate, curves, anchor)
    group_cols = bd_rate_group_fields(curves)
    anchor = found[0]["anchor"] if found else (anchor or "")
    others = list(dict.fromkeys(r["curve"] for r in found))
    lines = [
        f"BD-rate ({rate} at equal {metric}) against {curves} {anchor}",
        "",
        "| " + " | ".join(group_cols + others) + " |",
        "|" + "---|" * (len(group_cols) + len(others)),
    ]
    by_group: dict[tuple, list[dict]] = defaultdict(list)
    for r in found:
        by_group[tuple(r[k] for k in group_cols)].append(r)
    for group, cells in by_group.items():
        shown = [_cell(v) for v in group]
        lines.append("| " + " | ".join(shown + [_bd_cell(r) for r in cells]) + " |")
    return "\n".join(lines)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (rate, metric) points, sorted by rate, whose metric exceeds that of every point
    of lower rate: the part of a rate-metric curve where more bits buy more accuracy (a
    saturated curve's flat tail, e.g. 6 and 8 bits at the accuracy of 4, is dropped)."""
    out: list[tuple[float, float]] = []
    for rate, metric in sorted(points):
        if not out or metric > out[-1][1]:
            out.append((rate, metric))
    return out


def bd_rate_of_curves(ref, test) -> tuple[float, str]:
    """The BD-rate of curve ``test`` against curve ``ref`` (each (rate, metric) points)
    over their Pareto fronts, and, where there is none (NaN), why."""
    if not ref or not test:
        return math.nan, "missing curve"
    ref, test = pareto_front(ref), pareto_front(test)
    if len(ref) < 2 or len(test) < 2:
        return math.nan, "fewer than two points where the metric rises with the rate"
    try:
        v = float(bd_rate(ref, test))
    except (ValueError, ZeroDivisionError) as exc:
        return math.nan, str(exc)
    return (v, "") if np.isfinite(v) else (math.nan, "no overlap")


def _bd_cell(found: dict) -> str:
    v = found["bd_rate"]
    return f"{v:+.1f} %" if np.isfinite(v) else f"n/a ({found['note']})"


def bd_rate(ref: list[tuple[float, float]], test: list[tuple[float, float]]) -> float:
    """The Bjøntegaard-delta rate (%) of ``test`` against ``ref``, each (rate, metric)
    points sorted by rate: piecewise cubic Hermite (pchip) interpolation, the points need
    not match. ValueError (or ZeroDivisionError) when the curves cannot be compared; NaN or
    infinite when they do not overlap."""
    import bjontegaard

    ra, ma = zip(*ref, strict=True)
    rt, mt = zip(*test, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bjontegaard.bd_rate(
            list(ra), list(ma), list(rt), list(mt), method="pchip", require_matching_points=False
        )


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return f"{v:g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- average gain
def average_gain(
    rows: list[dict],
    schema: ResultsSchema,
    metric: str,
    reference: str = "zeros",
    loss_range: tuple[float, float] = (0.0, 0.3),
) -> list[dict]:
    """Each method's average gain over ``reference`` across a loss range: the area under
    its metric-vs-loss-rate curve minus the reference's, over ``loss_range``, divided by the
    range's width (the tutorial's average mAP gain over 0-30 % loss). One curve per config
    and channel family (kind and mean burst; i.i.d. is one family whatever its rate), the
    loss rates in the range that the results have (trapezoids; at least two; divided by the
    width they cover, shown as ``loss_rates``, when that is less than the range). Paired: trial
    t of a method against trial t of the reference, at every loss rate; mean and 95 %
    t-interval over trials (in the metric's own units)."""
    lo, hi = loss_range
    keys = tuple(schema.config_columns)
    covered = ""
    curves: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for r in rows:
        if not lo - 1e-12 <= r["loss_rate"] <= hi + 1e-12 or metric not in r:
            continue
        family = (r["channel"], None if r["channel"] == "iid" else r["burst_length"])
        group = (*(r.get(k) for k in keys), *family)
        curves[group][r["method"]][r["trial"]][r["loss_rate"]] = r[metric]
    out = []
    for group, by_method in curves.items():
        ref = by_method.get(reference)
        if ref is None:
            continue
        for method, trials in by_method.items():
            gains = []
            for t, points in trials.items():
                rates = sorted(set(points) & set(ref.get(t, {})))
                if len(rates) < 2:
                    continue
                diff = [points[x] - ref[t][x] for x in rates]
                gains.append(float(np.trapezoid(diff, rates)) / (rates[-1] - rates[0]))
                covered = f"{100 * rates[0]:g}-{100 * rates[-1]:g} %"
            if not gains:
                continue
            mean, sd, half = mean_ci95(gains)
            row = dict(zip((*keys, "channel", "burst_length"), group, strict=True))
            row.update(method=method, trials=len(gains), gain=mean, gain_sd=sd, gain_ci95=half)
            row["reference"], row["loss_rates"] = reference, covered
            out.append(row)
    return out


def gain_table(gains: list[dict], schema: ResultsSchema, metric: str, lo: float, hi: float):
    """Markdown: methods as columns, (config, channel family) as rows: average gain ± 95 %
    CI, scaled as the metric declares."""
    decl = schema.metric(metric)
    methods = list(dict.fromkeys(g["method"] for g in gains))
    cols = [*varying_config_keys(gains, schema), "channel", "burst_length", "loss_rates"]
    groups = list(dict.fromkeys(tuple(g.get(k) for k in cols) for g in gains))
    by = {(tuple(g.get(k) for k in cols), g["method"]): g for g in gains}
    unit = f" ({decl.unit})" if decl.unit else ""
    lines = [
        f"Average gain in {decl.label}{unit} over loss {100 * lo:g}-{100 * hi:g} % against "
        f"{gains[0].get('reference', '') or 'the reference'}: area between the curves / "
        f"{hi - lo:g}, mean ± 95 % CI over trials",
        "",
        "| " + " | ".join([*cols, *methods]) + " |",
        "|" + "---|" * (len(cols) + len(methods)),
    ]
    for gkey in groups:
        cells = []
        for m in methods:
            g = by.get((gkey, m))
            d = max(decl.decimals, 2)
            if g is None:
                cells.append("")
            else:
                cells.append(_mean_interval(g["gain"], g["gain_ci95"], g.get("trials"), decl, d))
        lines.append("| " + " | ".join([*(_cell(v) for v in gkey), *cells]) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- budgets
def best_within(
    summary: list[dict],
    schema: ResultsSchema,
    metric: str,
    rate: str,
    budgets,
    options: tuple[str, str] = ("rate", "budgets"),
) -> list[dict]:
    """The operational choice over a run's configs (``summary``: :func:`summarize`'s rows):
    per channel setting, method and budget, the config whose mean ``rate`` is at most the
    budget and whose mean ``metric`` is best (a tie goes to the cheaper). Each row: the
    setting, method, ``budget``, the chosen config's columns that vary in the run, its
    ``rate`` (mean) and ``<metric>_mean`` / ``<metric>_ci95``. A budget below every
    config's rate is a one-line error naming ``options`` (how the caller calls ``rate``
    and ``budgets``: ``--rate`` and ``--best-within`` on the command line)."""
    rate_option, budgets_option = options
    key = f"{rate}_mean"
    have = [r for r in summary if r.get(key) is not None and r[key] == r[key]]
    if not have:
        found = sorted({k[: -len("_mean")] for r in summary for k in r if k.endswith("_mean")})
        raise UserError(
            f"{rate_option}: {rate!r} is not a column of these results ({', '.join(found)})"
        )
    values = [float(b) for b in budgets]
    if not values or not all(math.isfinite(b) for b in values):
        raise UserError(f"{budgets_option}: expected finite numbers, got {budgets!r}")
    cheapest = min(r[key] for r in have)
    if min(values) < cheapest:
        raise UserError(
            f"{budgets_option}: {min(values):g} is below every config's {rate} (the smallest is "
            f"{cheapest:g})"
        )
    better = schema.metric(metric).higher_is_better is not False
    varying = varying_config_keys(summary, schema)
    setting = (*CHANNEL_COLUMNS, "method")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in have:
        groups[tuple(r[k] for k in setting)].append(r)
    out = []
    m = f"{metric}_mean"
    for cell, rows in groups.items():
        scored = [r for r in rows if r.get(m) is not None and r[m] == r[m]]
        for b in values:
            fit = [r for r in scored if r[key] <= b]
            row = {**dict(zip(setting, cell, strict=True)), "budget": b}
            if not fit:  # this setting's configs all cost more (ARQ's retransmissions)
                cheapest = min((r[key] for r in scored), default=math.nan)
                out.append(
                    {
                        **row,
                        **dict.fromkeys(varying),
                        rate: None,
                        m: math.nan,
                        f"{metric}_ci95": math.nan,
                        "note": f"none within the budget (the cheapest: {cheapest:g})",
                    }
                )
                continue
            best = min(fit, key=lambda r: (-r[m] if better else r[m], r[key]))
            out.append(
                {
                    **row,
                    **{c: best[c] for c in varying},
                    rate: best[key],
                    m: best[m],
                    f"{metric}_ci95": best.get(f"{metric}_ci95"),
                    "note": "",
                }
            )
    return out


def best_within_table(found: list[dict], metric: str, rate: str, decl) -> str:
    """:func:`best_within`'s rows as a markdown table."""
    if not found:
        return ""
    fixed = ("channel", "loss_rate", "burst_length", "method", "budget", rate, "note")
    fixed += (f"{metric}_mean", f"{metric}_ci95")
    configs = [k for k in found[0] if k not in fixed]
    head = ["channel", "loss", "method", "budget", *configs, rate, metric]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in found:
        cells = [r["channel"], f"{r['loss_rate']:g}", r["method"], f"{r['budget']:g}"]
        if r["note"]:
            cells += ["-"] * len(configs) + ["-", r["note"]]
        else:
            shown = _mean_interval(r[f"{metric}_mean"], r[f"{metric}_ci95"] or 0.0, None, decl, 1)
            cells += [str(r[k]) for k in configs] + [f"{r[rate]:.6g}", shown]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
