"""Figures: a metric against a channel parameter, one line per method (and group), with a
shaded 95 % t-interval over trials; and a bar chart of completion time per method."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: editable for papers
import matplotlib.pyplot as plt  # noqa: E402

from dfsim.experiment.results import ResultsSchema, mean_ci95  # noqa: E402

CHANNEL_LABELS = {"iid": "i.i.d.", "gilbert-elliott": "Gilbert-Elliott"}
LINESTYLES = ["-", "--", ":", "-."]
X_AXES = {
    "loss_rate": ("packet loss rate (%)", 100.0),
    "burst_length": ("mean burst length (packets)", 1.0),
    # rate-accuracy: the codec's coded bits per image (a config's value, the same each trial)
    "kbpi": ("kbit per image", 1.0),
    "bits_per_image": ("coded bits per image", 1.0),
    "bpp": ("bits per input pixel", 1.0),
    "bits_per_element": ("bits per feature value", 1.0),
}
RATE_AXES = ("kbpi", "bits_per_image", "bpp", "bits_per_element")


def group_fields(schema: ResultsSchema) -> tuple[str, ...]:
    """Fields that may split lines or panels: the channel's and the config columns."""
    return ("channel", "loss_rate", "burst_length", *schema.config_columns)


def _group_value(row: dict, field: str):
    # i.i.d. is one channel whatever its loss rate, although its mean burst 1/(1-P) varies with it
    if field == "burst_length" and row["channel"] == "iid":
        return None
    return row.get(field)  # None: a config column this row's config lacks


def _group_label(row: dict, by: tuple[str, ...]) -> str:
    parts = []
    for f in by:
        v = row.get(f)
        if v is None or v == "":
            continue  # a config column this row's config lacks (a codec parameter)
        if f == "channel":
            parts.append(CHANNEL_LABELS.get(v, v))
        elif f == "burst_length":
            parts.append("" if row["channel"] == "iid" else f"burst {v:g}")
        elif f == "loss_rate":
            parts.append(f"loss {100 * v:g} %")
        elif f == "error_control":
            parts.append(str(v))
        else:
            parts.append(f"{f.replace('_', ' ')} {v}")
    return ", ".join(p for p in parts if p)


def metric_plot(
    rows: list[dict],
    schema: ResultsSchema,
    paths: list[Path],
    x: str = "loss_rate",
    y: str = "top1",
    by: tuple[str, ...] = ("channel", "burst_length"),
    reference: dict | None = None,
    title: str | None = None,
    panel: str | None = None,
):
    """Mean ``y`` against ``x``; one line per (method, ``by`` group); 95 % band over trials.
    Saved to each of ``paths`` (none: drawn only); returns the (closed, still drawable)
    matplotlib figure.

    Config columns that vary in ``rows`` are always added to ``by``: lines never pool
    different configs; except on a rate axis (``x = kbpi`` ...: rate-accuracy), where the
    points of a line are configs (bit depths) and only ``codec`` is added; a rate axis
    spanning more than a factor 20 is drawn logarithmic. With ``panel``
    (e.g. ``loss_rate``), one subplot per value of that field, sharing the y axis and one
    legend. With ``x = burst_length``, i.i.d. rows (mean
    burst 1/(1-P)) are drawn as star markers on the method's colour, not as lines.
    """
    decl = schema.metric(y)
    by = _line_fields(rows, schema, x, by, panel)
    if decl.per == "trial":  # the same for every method of a trial: one line per group
        first = rows[0]["method"] if rows else None
        rows = [{**r, "method": ""} for r in rows if r["method"] == first]
    groups, labels = _series(rows, decl.name, x, by, panel)
    methods = list(dict.fromkeys(k[1] for k in groups))
    style = _style(methods, list(dict.fromkeys(k[2:] for k in groups)))
    panels = sorted({k[0] for k in groups}, key=lambda v: (v is None, v))
    width = 7.5 if len(panels) == 1 else 2.6 * len(panels) + 2.8
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width, 4.6), dpi=120, sharey=True, squeeze=False
    )
    iid_marked = False
    for ax, pv in zip(axes[0], panels, strict=True):
        keys = sorted(
            (k for k in groups if k[0] == pv), key=lambda k: (methods.index(k[1]), str(k[2:]))
        )
        lines = {k: groups[k] for k in keys}
        iid_marked |= _panel(ax, lines, labels, style, x, by, decl, reference)
        if pv is not None:
            ax.set_title(_group_label({panel: pv, "channel": None}, (panel,)), fontsize=9)
    axes[0][0].set_ylabel(decl.axis_label)
    entries = _legend(axes[0], iid_marked)
    # tall enough for the legend beside the panels (one line per entry, ~0.19 in at 8 pt)
    fig.set_figheight(max(4.6, 0.19 * entries + 0.8))
    what = f"{decl.label} vs {X_AXES[x][0].split(' (')[0]} (mean and 95 % CI over trials)"
    if len(panels) == 1:
        axes[0][0].set_title(title or what, fontsize=10)
    else:
        fig.suptitle(title or what, fontsize=10)
    fig.tight_layout()
    _save(fig, paths)
    return fig


def _line_fields(rows, schema: ResultsSchema, x: str, by: tuple[str, ...], panel) -> tuple:
    """The fields that split lines: ``by`` without the panel field, plus the config
    columns that vary in ``rows`` (on a rate axis only ``codec``: there a line's points
    are configs)."""
    from dfsim.experiment.statistics import varying_config_keys

    by = tuple(f for f in by if f != panel)
    varying = varying_config_keys(rows, schema)
    if x in RATE_AXES:
        varying = [k for k in varying if k == "codec"]
    return by + tuple(k for k in varying if k not in by and k != panel)


def _style(methods: list, series: list) -> dict:
    """Colours and line styles: a colour per method and a line style per group; with one
    method and several groups, a colour per group (it reads best)."""
    if len(methods) == 1 and len(series) > 1:
        return {
            "colour": {g: plt.cm.tab10(i % 10) for i, g in enumerate(series)},
            "line": {g: LINESTYLES[(i // 10) % len(LINESTYLES)] for i, g in enumerate(series)},
            "by": "series",
        }
    return {
        "colour": {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)},
        "line": {g: LINESTYLES[i % len(LINESTYLES)] for i, g in enumerate(series)},
        "by": "method",
    }


def _panel(ax, groups: dict, labels: dict, style: dict, x: str, by: tuple, decl, reference) -> bool:
    """One panel: its series (``groups``, in drawing order), the reference lines, its x
    axis (logarithmic for a rate axis spanning more than a factor 20) and grid; returns
    whether it drew i.i.d. markers."""
    iid_marked = False
    for key, by_x in groups.items():
        iid = x == "burst_length" and "channel" in by and key[2 + by.index("channel")] == "iid"
        label = " — ".join(p for p in (key[1], labels[key[1:]]) if p) or "all"
        _draw(ax, by_x, X_AXES[x][1], decl.scale, style, key, label, iid)
        iid_marked |= iid
    _references(ax, reference, decl)
    xs = [v for by_x in groups.values() for v in by_x if v > 0]
    if x in RATE_AXES and xs and max(xs) > 20 * min(xs):  # rates spanning decades
        ax.set_xscale("log")
    ax.set_xlabel(X_AXES[x][0])
    ax.grid(True, alpha=0.3)
    return iid_marked


def _series(rows, col: str, x: str, by: tuple[str, ...], panel):
    """Values of ``col`` by (panel value, method, group) and x, and each series' label."""
    groups: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[tuple, str] = {}
    for r in rows:
        key = (r.get(panel), r["method"], *(_group_value(r, f) for f in by))
        groups[key][r[x]].append(r[col])
        labels[key[1:]] = _group_label(r, by)
    return groups, labels


def _draw(ax, by_x: dict, xscale: float, yscale: float, style: dict, key, label, iid: bool):
    """One series: mean line with a 95 % band, or star markers with error bars (i.i.d.)."""
    xs = sorted(by_x)
    stats = [mean_ci95(by_x[v]) for v in xs]
    mean = [yscale * s[0] for s in stats]
    half = [yscale * s[2] for s in stats]
    px = [xscale * v for v in xs]
    c = style["colour"][key[1] if style["by"] == "method" else key[2:]]
    if iid:
        ax.errorbar(px, mean, yerr=half, fmt="*", ms=8, color=c, capsize=2, label="_nolegend_")
        return
    ax.plot(px, mean, style["line"][key[2:]], marker="o", ms=3.5, color=c, label=label)
    ax.fill_between(
        px,
        [m - h for m, h in zip(mean, half, strict=True)],
        [m + h for m, h in zip(mean, half, strict=True)],
        color=c,
        alpha=0.18,
        lw=0,
    )


def _references(ax, reference: dict | None, decl) -> None:
    """Horizontal lines for the loss-free references (NaN: none)."""
    unit = f" {decl.unit}" if decl.unit else ""
    digits = decl.decimals + 1
    for i, (label, value) in enumerate(r for r in (reference or {}).items() if r[1] == r[1]):
        ax.axhline(
            decl.scale * value,
            color="0.35",
            lw=0.9,
            ls=(0, (1, 2 + i)),
            label=f"{label} ({decl.scale * value:.{digits}f}{unit})",
        )


def _legend(axes, iid_marked: bool) -> int:
    """One legend for every panel, outside the data; returns its number of entries."""
    handles: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if iid_marked:
        (h,) = axes[-1].plot([], [], "*", ms=8, color="0.35")
        handles["i.i.d. loss (mean burst 1/(1-P)), same colours"] = h
    axes[-1].legend(
        handles.values(),
        handles.keys(),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
        frameon=False,
    )
    return len(handles)


def completion_time_bars(rows: list[dict], paths: list[Path]) -> None:
    """Mean completion time per tensor per method (lossy trials only), with 95 % intervals."""
    by_method: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["realised_loss_rate"] > 0:
            by_method[r["method"]].append(r["completion_ms_per_tensor"])
    methods = list(by_method)
    stats = [mean_ci95(by_method[m]) for m in methods]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(methods) + 1.4), dpi=120)
    ax.barh(methods, [s[0] for s in stats], xerr=[s[2] for s in stats], color="tab:blue", alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("completion time per tensor (ms, log scale)")
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("Completion time per tensor (mean and 95 % CI over lossy trials)", fontsize=10)
    fig.tight_layout()
    _save(fig, paths)


def _save(fig, paths: list[Path]) -> None:
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, bbox_inches="tight")
        tmp.replace(path)
    plt.close(fig)
