"""The look shared by every figure: a colour per method (or per codec when the method is
fixed) from a stable order, a line style and marker per secondary group, the choice of
panels that keeps a legend short, and the loss-free reference lines."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAX_ENTRIES = 10  # legend entries of one figure, beyond which its lines go into panels
MAX_REFERENCE_LINES = 3  # more distinct references are drawn as one band
LINESTYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v"]  # 5 markers against 4 styles: 20 distinct pairs
FORMATS = ("png", "svg")  # what `dfsim plot` and a run write by default; pdf on request


def palette(values: list) -> dict:
    """A colour per value, by its place in ``values`` (a stable order: the run's methods
    as its scenario lists them, so a method keeps its colour in every figure of a run)."""
    cmap = plt.cm.tab10 if len(values) <= 10 else plt.cm.tab20
    return {v: cmap(i % cmap.N) for i, v in enumerate(values)}


def line_style(i: int) -> tuple[str, str]:
    """The ``i``-th (line style, marker) pair: distinct for the first 20."""
    return LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]


def choose_panels(rows: list[dict], value, fields: tuple, panel: tuple, limit: int = MAX_ENTRIES):
    """The panel dimensions (each a tuple of fields) and the fields left to split lines:
    while the lines (one per method and ``fields`` value) would need more than ``limit``
    legend entries, the line field whose removal leaves fewest entries (then: with most
    values) becomes a panel dimension, with the fields it settles (burst length, settled
    by an i.i.d. channel) (at most two dimensions: columns and rows). ``value(row,
    field)`` is a row's value of a field."""

    def entries(fs) -> int:
        return len({(r["method"], *(value(r, f) for f in fs)) for r in rows})

    def settled(dim: tuple, g: str) -> bool:
        seen: dict = {}
        return all(
            seen.setdefault(tuple(value(r, f) for f in dim), value(r, g)) == value(r, g)
            for r in rows
        )

    fields = tuple(f for f in fields if f not in panel)
    dims = [tuple(panel)] if panel else []
    while len(dims) < 2 and entries(fields) > limit:
        counts = {f: len({value(r, f) for r in rows}) for f in fields}
        options = [f for f in fields if counts[f] > 1]
        if not options:
            break
        f = min(options, key=lambda g: (entries([h for h in fields if h != g]), -counts[g]))
        dim = (f, *(g for g in fields if g != f and counts[g] > 1 and settled((f,), g)))
        dims.append(dim)
        fields = tuple(g for g in fields if g not in dim)
    return dims, fields


def grid_shape(panel_keys: list, dims: list) -> tuple[int, int]:
    """Rows and columns of the panels (keys: a tuple of values per dimension): one row
    per value of a second dimension, else up to four panels a row."""
    if len(dims) == 2:
        return len({k[1] for k in panel_keys}), len({k[0] for k in panel_keys})
    cols = min(len(panel_keys), 4)
    return math.ceil(len(panel_keys) / cols), cols


def merged_references(reference: dict | None, decl) -> list[tuple[str, float]]:
    """The references to draw (NaN: none), those equal at the axis's resolution (the
    metric's shown decimals) under one label."""
    out: dict[float, list[str]] = {}
    for label, value in (reference or {}).items():
        if value == value:
            out.setdefault(round(decl.scale * value, decl.decimals), []).append(label)
    merged = []
    for shown, labels in out.items():
        if len(labels) > 1:
            names = [lab.removesuffix(", no loss") for lab in labels]
            label = f"{' = '.join(names[:2])}{' = ...' if len(names) > 2 else ''}, no loss"
        else:
            label = labels[0]
        merged.append((label, shown))
    return merged


def draw_references(axes, reference: dict | None, decl, room: int) -> int:
    """The loss-free references on every panel, each in its own grey style and named in
    the legend (at most ``room`` entries: the full model's line and, past that, the
    others as one band from their lowest to highest value); returns the entries used."""
    refs = merged_references(reference, decl)
    unit = f" {decl.unit}" if decl.unit else ""
    if not refs or room <= 0:
        return 0
    lines = refs if len(refs) <= min(room, MAX_REFERENCE_LINES) else refs[:1]
    rest = refs[len(lines) :]
    styles = [(0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2))]
    for i, ax in enumerate(axes):
        for k, (label, v) in enumerate(lines):
            ax.axhline(
                v,
                color=("0.15", "0.45", "0.3")[k],
                lw=1.0,
                ls=styles[k],
                label=f"{label} ({v:.{decl.decimals}f}{unit})" if i == 0 else "_nolegend_",
            )
        if rest and room > 1:
            lo, hi = min(v for _, v in rest), max(v for _, v in rest)
            ax.axhspan(
                lo,
                hi if hi > lo else lo + 10**-decl.decimals,
                color="0.5",
                alpha=0.12,
                lw=0,
                label=f"{len(rest)} coded configs, no loss ({lo:.{decl.decimals}f}-"
                f"{hi:.{decl.decimals}f}{unit})"
                if i == 0
                else "_nolegend_",
            )
    return len(lines) + (1 if rest and room > 1 else 0)


def shared_legend(fig, axes, extra: dict | None = None) -> int:
    """One legend for every panel, right of them; returns its number of entries."""
    handles: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    handles.update(extra or {})
    if handles:
        fig.legend(
            handles.values(), handles.keys(), loc="outside right center", fontsize=8, frameon=False
        )
    return len(handles)
