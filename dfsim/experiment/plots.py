"""Figures: a metric against a channel parameter, one line per method (and group), with a
shaded 95 % t-interval over trials; and a bar chart of completion time per method."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: editable for papers
matplotlib.rcParams["svg.hashsalt"] = "dfsim"  # stable ids in SVG files
import matplotlib.pyplot as plt  # noqa: E402

from dfsim.experiment import plot_style as style  # noqa: E402
from dfsim.experiment.plot_style import FORMATS  # noqa: E402, F401  (re-exported)
from dfsim.experiment.results import ResultsSchema, mean_ci95, per_stream  # noqa: E402
from dfsim.experiment.statistics import is_rate_column  # noqa: E402

CHANNEL_LABELS = {"iid": "i.i.d.", "gilbert-elliott": "Gilbert-Elliott"}
X_AXES = {
    "loss_rate": ("packet loss rate (%)", 100.0),
    "burst_length": ("mean burst length (packets)", 1.0),
    # rate-accuracy: the codec's coded bits per image (a config's value, the same each trial)
    "kbpi": ("kbit per image", 1.0),
    "bits_per_image": ("coded bits per image", 1.0),
    "bpp": ("bits per input pixel", 1.0),
    "bits_per_element": ("bits per feature value", 1.0),
    # every bit the network carried (headers, parity, retransmissions): a trial's value; a
    # point is the config's mean over its trials
    "wire_bits_per_image": ("kbit on the wire per image", 1e-3),
}
TRIAL_AXES = ("wire_bits_per_image",)  # differ between trials of a config


def _stream_axis(x: str) -> int | None:
    """The stream whose coded kbit per image ``x`` is (``kbpi_s1``: 1), else None."""
    stream = per_stream(x)
    return stream[1] if stream is not None and stream[0] == "kbpi" else None


def x_axis(x: str) -> tuple[str, float] | None:
    """An x axis's label and scale: one of :data:`X_AXES` or a stream's ``kbpi_s<i>``;
    None for anything else."""
    stream = _stream_axis(x)
    if stream is not None:
        return f"kbit per image, stream {stream}", 1.0
    return X_AXES.get(x)


def axis_names() -> str:
    """The x axes, as an error message lists them."""
    return ", ".join([*X_AXES, "kbpi_s<i>"])


def _config_means(rows: list[dict], schema: ResultsSchema, x: str) -> list[dict]:
    """``rows`` with ``x`` replaced by its mean over each config's trials (per channel
    setting and method): a trial-varying rate drawn as one point per config."""
    keys = (*schema.config_columns, "channel", "loss_rate", "burst_length", "method")
    of = [tuple(repr(r.get(k)) for k in keys) for r in rows]
    values: dict[tuple, list[float]] = defaultdict(list)
    for key, r in zip(of, rows, strict=True):
        values[key].append(float(r[x]))
    return [{**r, x: float(np.mean(values[key]))} for key, r in zip(of, rows, strict=True)]


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
    *,
    methods: list[str] | None = None,
):
    """Mean ``y`` against ``x``; one line per (method, ``by`` group); 95 % band over trials.
    Saved to each of ``paths`` (none: drawn only); returns the (closed, still drawable)
    matplotlib figure.

    Config columns that vary in ``rows`` are always added to ``by``: lines never pool
    different configs; except on a rate axis (``x = kbpi`` ...: rate-accuracy), where the
    points of a line are configs (bit depths) and only ``codec`` is added; a rate axis
    spanning more than a factor 20 is drawn logarithmic. With ``panel`` (e.g.
    ``loss_rate``), one subplot per value of that field, sharing the y axis and one
    legend; and whenever the lines would need more than 10 legend entries, the line field
    with the most values splits panels too (a grid for two). A method's colour is its
    place in ``methods`` (default: the order of ``rows``), the same in every figure of a
    run; with one method, the colour is the codec's (or the first varying field's), and
    line style and marker tell the other groups apart. With ``x = burst_length``, i.i.d.
    rows (mean burst 1/(1-P)) are drawn as star markers on the line's colour.
    """
    # Long: one figure's steps in order (lines, panels, styles, references, legend, title)
    decl = schema.metric(y)
    order = list(dict.fromkeys([*(methods or []), *(r["method"] for r in rows)]))
    by = _line_fields(rows, schema, x, by, panel)
    if decl.per == "trial":  # the same for every method of a trial: one line per group
        first = rows[0]["method"] if rows else None
        rows = [{**r, "method": ""} for r in rows if r["method"] == first]
    dims, by = style.choose_panels(rows, _group_value, by, (panel,) if panel else ())
    if x in TRIAL_AXES:
        rows = _config_means(rows, schema, x)
    groups, labels = _series(rows, decl.name, x, by, dims)
    colour = _colours(groups, by, order, rows)
    rank = {m: i for i, m in enumerate(order)}
    seconds = sorted({k[1:] for k in groups}, key=lambda k: (rank.get(k[0], -1), str(k)))
    lstyle = _line_styles(seconds, colour)
    panels = sorted({k[0] for k in groups}, key=_none_last)
    nrows, ncols = style.grid_shape(panels, dims)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(7.5 if len(panels) == 1 else 2.7 * ncols + 3.0, 3.0 * nrows + 1.4),
        dpi=120,
        sharey=True,
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    flat = _place(axes, panels, len(dims))
    iid_marked = False
    for pv, ax in flat.items():
        lines = {k: groups[k] for k in groups if k[0] == pv}
        lines = dict(sorted(lines.items(), key=lambda kv: seconds.index(kv[0][1:])))
        iid_marked |= _panel(ax, lines, labels, (colour, lstyle), x, by, decl)
        if dims:
            ax.set_title(_panel_title(pv, dims), fontsize=9)
    used = list(flat.values())
    for (r, c), ax in np.ndenumerate(axes):
        if ax not in used:
            ax.axis("off")
        elif r + 1 < nrows and axes[r + 1][c] not in used:  # nothing below: its own x ticks
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(x_axis(x)[0])
    room = style.MAX_ENTRIES - len(seconds) - iid_marked
    style.draw_references(used, reference, decl, room)
    for ax in axes[:, 0]:
        if ax in used:
            ax.set_ylabel(decl.axis_label)
    extra = {}
    if iid_marked:
        (h,) = axes[0][0].plot([], [], "*", ms=8, color="0.35")
        extra["i.i.d. loss (mean burst 1/(1-P)), same colours"] = h
    style.shared_legend(fig, used, extra)
    what = f"{decl.label} vs {x_axis(x)[0].split(' (')[0]} (mean and 95 % CI over trials)"
    # wrapped: a long metric name stays inside the figure
    fig.suptitle(textwrap.fill(title or what, 75), fontsize=10)
    _save(fig, paths)
    return fig


def _none_last(values: tuple):
    return tuple(_none_last(v) if isinstance(v, tuple) else (v is None, v) for v in values)


def _place(axes, panels: list, n_dims: int) -> dict:
    """Each panel's axes: with two panel dimensions, a column per value of the first and
    a row per value of the second; else row by row."""
    if n_dims == 2:
        cols = sorted({p[0] for p in panels}, key=_none_last)
        rows = sorted({p[1] for p in panels}, key=_none_last)
        return {p: axes[rows.index(p[1])][cols.index(p[0])] for p in panels}
    return {p: axes.flat[i] for i, p in enumerate(panels)}


def _panel_title(values: tuple, dims: list) -> str:
    parts = []
    for dim, vs in zip(dims, values, strict=True):
        row = dict(zip(dim, vs, strict=True))
        for f, v in row.items():
            if v is None:
                if f != "burst_length" or row.get("channel") is None:
                    parts.append("i.i.d." if f == "burst_length" else f"no {f.replace('_', ' ')}")
            else:
                parts.append(_group_label({"channel": row.get("channel"), f: v}, (f,)))
    return ", ".join(parts)


def _colours(groups: dict, by: tuple, order: list, rows: list[dict]) -> tuple:
    """(the index in a series key that picks its colour, value -> colour): the method when
    the figure has several, else the codec, else the first line field that varies."""
    methods = {k[1] for k in groups}
    if len(methods) > 1 or not by:
        return 1, style.palette([*order, ""])
    varying = [i for i, f in enumerate(by) if len({k[2 + i] for k in groups}) > 1]
    if not varying:
        return 1, style.palette(list(methods))
    i = by.index("codec") if "codec" in by and by.index("codec") in varying else varying[0]
    values = list(dict.fromkeys(_group_value(r, by[i]) for r in rows))
    return 2 + i, style.palette(values)


def _line_styles(seconds: list, colour: tuple) -> dict:
    """A (line style, marker) per series (``(method, group...)``), numbered within its
    colour: two series of one colour never share a style."""
    at = colour[0] - 1
    seen: dict = defaultdict(int)
    out = {}
    for k in seconds:
        out[k] = style.line_style(seen[k[at]])
        seen[k[at]] += 1
    return out


def _line_fields(rows, schema: ResultsSchema, x: str, by: tuple[str, ...], panel) -> tuple:
    """The fields that split lines: ``by`` without the panel field, plus the config
    columns that vary in ``rows`` (on a rate axis only ``codec``: there a line's points
    are configs)."""
    from dfsim.experiment.statistics import varying_config_keys

    by = tuple(f for f in by if f != panel)
    varying = varying_config_keys(rows, schema)
    stream = _stream_axis(x)
    if stream is not None:  # one stream's rate: its parameters make the points, the rest lines
        varying = [k for k in varying if _keeps_stream_line(k, stream)]
    elif is_rate_column(x):
        varying = [k for k in varying if k == "codec"]
    return by + tuple(k for k in varying if k not in by and k != panel)


def _keeps_stream_line(key: str, i: int) -> bool:
    """On stream ``i``'s rate axis, whether config column ``key`` splits lines: every one
    but the stream's own parameters (``bits_s1``; for stream 0 the shared codec
    parameters, which it reads), which move its rate along the line."""
    own = per_stream(key)
    if own is not None:
        return own[1] != i
    return i != 0 or key in ("split", "codec", "rows_per_packet", "order", "error_control")


def _panel(ax, groups: dict, labels: dict, look: tuple, x: str, by: tuple, decl) -> bool:
    """One panel: its series (``groups``, in drawing order), its x axis (logarithmic for
    a rate axis spanning more than a factor 20) and grid; returns whether it drew i.i.d.
    markers."""
    iid_marked = False
    (at, colours), lstyle = look
    for key, by_x in groups.items():
        iid = x == "burst_length" and "channel" in by and key[2 + by.index("channel")] == "iid"
        label = " — ".join(p for p in (key[1], labels[key[1:]]) if p) or "all"
        drawn = (colours[key[at]], *lstyle[key[1:]])
        _draw(ax, by_x, x_axis(x)[1], decl.scale, drawn, label, iid)
        iid_marked |= iid
    xs = [v for by_x in groups.values() for v in by_x if v > 0]
    if is_rate_column(x) and xs and max(xs) > 20 * min(xs):  # rates spanning decades
        ax.set_xscale("log")
    ax.set_xlabel(x_axis(x)[0])
    ax.grid(True, alpha=0.3)
    return iid_marked


def _series(rows, col: str, x: str, by: tuple[str, ...], dims: list):
    """Values of ``col`` by (panel values, method, group) and x, and each series' label."""
    groups: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[tuple, str] = {}
    for r in rows:
        panel = tuple(tuple(_group_value(r, f) for f in dim) for dim in dims)
        key = (panel, r["method"], *(_group_value(r, f) for f in by))
        groups[key][r[x]].append(r[col])
        labels[key[1:]] = _group_label(r, by)
    return groups, labels


def _draw(ax, by_x: dict, xscale: float, yscale: float, look: tuple, label, iid: bool):
    """One series: mean line with a 95 % band, or star markers with error bars (i.i.d.)."""
    xs = sorted(by_x)
    stats = [mean_ci95(by_x[v]) for v in xs]
    mean = [yscale * s[0] for s in stats]
    half = [yscale * s[2] for s in stats]
    px = [xscale * v for v in xs]
    c, ls, marker = look
    if iid:
        ax.errorbar(px, mean, yerr=half, fmt="*", ms=8, color=c, capsize=2, label="_nolegend_")
        return
    ax.plot(px, mean, ls=ls, marker=marker, ms=3.5, color=c, label=label)
    ax.fill_between(
        px,
        [m - h for m, h in zip(mean, half, strict=True)],
        [m + h for m, h in zip(mean, half, strict=True)],
        color=c,
        alpha=0.15,
        lw=0,
    )


def completion_time_bars(rows: list[dict], paths: list[Path], *, methods: list[str] | None = None):
    """Mean completion time per tensor per method (lossy trials only) with its 95 %
    interval, as a dot on a logarithmic axis (the methods span decades, and a bar's length
    means nothing on a log axis; a dot's place and its interval's span do); each method in
    its colour of the run (its place in ``methods``, default the order of ``rows``).
    Returns the (closed) figure."""
    order = list(dict.fromkeys([*(methods or []), *(r["method"] for r in rows)]))
    colours = style.palette(order)
    by_method: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["realised_loss_rate"] > 0:
            by_method[r["method"]].append(r["completion_ms_per_tensor"])
    names = [m for m in order if m in by_method]
    stats = [mean_ci95(by_method[m]) for m in names]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(names) + 1.3), dpi=120, layout="constrained")
    for i, (m, (mean, _, half)) in enumerate(zip(names, stats, strict=True)):
        lo = max(mean - half, mean * 1e-3) if mean > 0 else mean
        ax.plot([lo, mean + half], [i, i], color=colours[m], lw=1.5)
        ax.plot([mean], [i], "o", color=colours[m], ms=5, label=m)
    ax.set_yticks(range(len(names)), names)
    if names and min(s[0] for s in stats) > 0:
        ax.set_xscale("log")
        ax.set_xlabel("completion time per tensor (ms, log scale)")
    else:
        ax.set_xlabel("completion time per tensor (ms)")
    ax.set_ylim(max(len(names), 1) - 0.5, -0.5)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.set_title("Completion time per tensor (mean and 95 % CI over lossy trials)", fontsize=10)
    _save(fig, paths)
    return fig


def _save(fig, paths: list[Path]) -> None:
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        # no dates in vector files: a redrawn figure is byte-identical when nothing changed
        meta = {".svg": {"Date": None}, ".pdf": {"CreationDate": None}}.get(path.suffix)
        fig.savefig(tmp, bbox_inches="tight", metadata=meta)
        tmp.replace(path)
    plt.close(fig)
