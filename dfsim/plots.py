"""Figures: a metric against a channel parameter, one line per method (and group), with a
shaded 95 % t-interval over trials; and a bar chart of completion time per method."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: editable for papers
import matplotlib.pyplot as plt  # noqa: E402

from dfsim.results import mean_ci95  # noqa: E402

CHANNEL_LABELS = {"iid": "i.i.d.", "gilbert-elliott": "Gilbert-Elliott"}
LINESTYLES = ["-", "--", ":", "-."]
# y metrics: (results column, axis label, factor applied to values)
Y_METRICS = {
    "top1": ("top1", "top-1 accuracy (%)", 100.0),
    "agreement": ("agreement", "top-1 agreement with loss-free model (%)", 100.0),
    "latency_p95": ("latency_p95_ms", "95th-percentile latency (ms)", 1.0),
    "latency_p99": ("latency_p99_ms", "99th-percentile latency (ms)", 1.0),
    "e2e_latency_p95": ("e2e_latency_p95_ms", "95th-percentile end-to-end latency (ms)", 1.0),
    "bits_per_image": ("bits_per_image", "bits on the wire per image", 1.0),
    "completion_ms": ("completion_ms_per_tensor", "completion time per tensor (ms)", 1.0),
    "mse_lost": ("mse_lost", "MSE on lost entries", 1.0),
}
NETWORK_METRICS = {"latency_p95", "latency_p99", "bits_per_image"}  # do not depend on the method
X_AXES = {"loss_rate": ("packet loss rate (%)", 100.0), "burst_length": ("mean burst length (packets)", 1.0)}
GROUP_FIELDS = ("channel", "loss_rate", "burst_length", "rows_per_packet", "bits", "order", "split", "error_control")


def _group_value(row: dict, field: str):
    # i.i.d. is one channel whatever its loss rate, although its mean burst 1/(1-P) varies with it
    if field == "burst_length" and row["channel"] == "iid":
        return None
    return row[field]


def _group_label(row: dict, by: tuple[str, ...]) -> str:
    parts = []
    for f in by:
        v = row[f]
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


def metric_plot(rows: list[dict], paths: list[Path], x: str = "loss_rate", y: str = "top1",
                by: tuple[str, ...] = ("channel", "burst_length"), reference: dict | None = None,
                title: str | None = None, panel: str | None = None) -> None:
    """Mean ``y`` against ``x``; one line per (method, ``by`` group); 95 % band over trials.

    Grid keys (split, bits, rows per packet, order) that vary in ``rows`` are always added
    to ``by``: lines never pool different configs. With ``panel`` (e.g. ``loss_rate``),
    one subplot per value of that field, sharing the y axis and one legend. With
    ``x = burst_length``, i.i.d. rows (mean burst 1/(1-P)) are drawn as star markers on
    the method's colour, not as lines.
    """
    from dfsim.statistics import varying_config_keys

    by = tuple(f for f in by if f != panel)
    by += tuple(k for k in varying_config_keys(rows) if k not in by and k != panel)
    col, ylabel, yscale = Y_METRICS[y]
    xlabel, xscale = X_AXES[x]
    network_only = y in NETWORK_METRICS
    if network_only:  # the same for every method of a trial: one line per group, not per method
        first = rows[0]["method"] if rows else None
        rows = [{**r, "method": ""} for r in rows if r["method"] == first]
    groups: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[tuple, str] = {}
    for r in rows:
        key = (r.get(panel),) + (r["method"],) + tuple(_group_value(r, f) for f in by)
        groups[key][r[x]].append(r[col])
        labels[key[1:]] = _group_label(r, by)
    methods = list(dict.fromkeys(k[1] for k in groups))
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    styles = {g: LINESTYLES[i % len(LINESTYLES)] for i, g in enumerate(dict.fromkeys(k[2:] for k in groups))}
    panels = sorted({k[0] for k in groups}, key=lambda v: (v is None, v))
    width = 7.5 if len(panels) == 1 else 2.6 * len(panels) + 2.8
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.6), dpi=120, sharey=True, squeeze=False)
    iid_marked = False
    for ax, pv in zip(axes[0], panels, strict=True):
        for key in sorted((k for k in groups if k[0] == pv), key=lambda k: (methods.index(k[1]), str(k[2:]))):
            by_x = groups[key]
            xs = sorted(by_x)
            stats = [mean_ci95(by_x[v]) for v in xs]
            mean = [yscale * s[0] for s in stats]
            half = [yscale * s[2] for s in stats]
            px = [xscale * v for v in xs]
            c = colours[key[1]]
            label = " — ".join(p for p in (key[1], labels[key[1:]]) if p) or "all"
            if x == "burst_length" and "channel" in by and key[2 + by.index("channel")] == "iid":
                ax.errorbar(px, mean, yerr=half, fmt="*", ms=8, color=c, capsize=2, label="_nolegend_")
                iid_marked = True
                continue
            ax.plot(px, mean, styles[key[2:]], marker="o", ms=3.5, color=c, label=label)
            ax.fill_between(px, [m - h for m, h in zip(mean, half, strict=True)],
                            [m + h for m, h in zip(mean, half, strict=True)], color=c, alpha=0.18, lw=0)
        for i, (label, value) in enumerate((r for r in (reference or {}).items() if r[1] == r[1])):  # NaN: none
            ax.axhline(yscale * value, color="0.35", lw=0.9, ls=(0, (1, 2 + i)),
                       label=f"{label} ({yscale * value:.2f} %)")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if pv is not None:
            ax.set_title(_group_label({panel: pv, "channel": None}, (panel,)), fontsize=9)
    axes[0][0].set_ylabel(ylabel)
    handles: dict[str, object] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if iid_marked:
        (h,) = axes[0][-1].plot([], [], "*", ms=8, color="0.35")
        handles["i.i.d. loss (mean burst 1/(1-P)), same colours"] = h
    axes[0][-1].legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       fontsize=8, frameon=False)
    text = title or f"{ylabel.split(' (')[0]} vs {xlabel.split(' (')[0]} (mean and 95 % CI over trials)"
    if len(panels) == 1:
        axes[0][0].set_title(text, fontsize=10)
    else:
        fig.suptitle(text, fontsize=10)
    fig.tight_layout()
    _save(fig, paths)


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


def accuracy_vs_loss(rows: list[dict], path: Path, reference: dict | None = None) -> None:
    """The run's standard figure: top-1 vs loss rate, one line per method per channel setting."""
    metric_plot(rows, [Path(path)], "loss_rate", "top1", ("channel", "burst_length"), reference,
                title="Accuracy vs packet loss (mean and 95 % CI over trials)")


def _save(fig, paths: list[Path]) -> None:
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, bbox_inches="tight")
        tmp.replace(path)
    plt.close(fig)
