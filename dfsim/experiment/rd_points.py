"""Distortion-rate points from a run's results (mean over trials of each config at one
channel setting and method, grouped into curves) and the figure of points against the
fitted model (:mod:`dfsim.experiment.rate_distortion`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfsim.errors import UserError
from dfsim.experiment import plot_style
from dfsim.experiment.plot_style import plt
from dfsim.experiment.rate_distortion import DRFit

CURVE_FIELDS = ("split", "codec")  # what tells rate-distortion curves apart by default


@dataclass(frozen=True)
class Curve:
    """One curve's measured points: ``rates`` (n x N, the rate columns' means over
    trials), ``metric`` (n, the metric's mean over trials) and the configs' labels."""

    label: str
    rates: np.ndarray
    metric: np.ndarray
    configs: tuple[str, ...]


def _present(rows: list[dict], column: str) -> bool:
    return any(r.get(column) == r.get(column) and r.get(column) is not None for r in rows)


def select_rows(rows: list[dict], loss_rate: float | None, method: str | None) -> list[dict]:
    """The rows of one loss rate (default: the smallest present) and one method (default:
    the first); a value the results lack is a one-line error listing those they have."""
    rates = sorted({r["loss_rate"] for r in rows})
    loss = rates[0] if loss_rate is None else loss_rate
    if loss not in rates:
        raise UserError(f"--loss: no rows at loss rate {loss!r} (have {rates})")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    m = methods[0] if method is None else method
    if m not in methods:
        raise UserError(f"--method: {m!r} is not a method of these results ({', '.join(methods)})")
    return [r for r in rows if r["loss_rate"] == loss and r["method"] == m]


def curves(
    rows: list[dict], config_columns, rates: list[str], metric: str, by: list[str] | None = None
) -> list[Curve]:
    """``rows`` (one loss rate and method: :func:`select_rows`) as curves: the rows of one
    value of the ``by`` fields (default: those of :data:`CURVE_FIELDS` that vary) form a
    curve, whose points are its configs (and channel settings), each the mean over trials
    of the ``rates`` columns and the ``metric``."""
    for col in (*rates, metric):
        if not _present(rows, col):
            have = sorted({k for r in rows for k, v in r.items() if isinstance(v, float)})
            raise UserError(f"{col!r}: not a numeric column of these results (have {have})")
    if by is None:
        by = [f for f in CURVE_FIELDS if len({r.get(f) for r in rows}) > 1]
    for f in by:
        if not any(f in r for r in rows):
            raise UserError(f"--by: {f!r} is not a column of these results")
    point_keys = [c for c in config_columns if c not in rates] + ["channel", "burst_length"]
    groups: dict[tuple, dict[tuple, list[dict]]] = {}
    for r in rows:
        curve = tuple(r.get(f) for f in by)
        groups.setdefault(curve, {}).setdefault(tuple(r.get(k) for k in point_keys), []).append(r)
    out = []
    for curve, points in groups.items():
        label = ", ".join(f"{f} {v}" for f, v in zip(by, curve, strict=True)) or "all configs"
        keys = list(points)
        r = np.array([[np.mean([x[c] for x in points[k]]) for c in rates] for k in keys])
        m = np.array([np.mean([x[metric] for x in points[k]]) for k in keys])
        names = tuple(_config_label(k, point_keys, by) for k in keys)
        out.append(Curve(label, r, m, names))
    return out


def _config_label(key: tuple, fields: list[str], by: list[str]) -> str:
    return ", ".join(
        f"{f} {v}" for f, v in zip(fields, key, strict=True) if f not in by and v is not None
    )


def rd_figure(items: list[tuple[Curve, np.ndarray, DRFit]], paths, rates: list[str], title: str):
    """Measured distortion against the fitted model: for one rate, each curve's points
    and its fitted curve on one axes; for two, one panel per curve with the fitted
    surface's contours and the points coloured by their distortion. Written to each of
    ``paths`` (PNG, SVG: the house style, no dates in vector files). Returns the figure."""
    if len(rates) == 1:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
        colours = plot_style.palette([c.label for c, _, _ in items])
        for i, (c, d, fit) in enumerate(items):
            _, marker = plot_style.line_style(i)
            x = c.rates[:, 0]
            grid = np.linspace(x.min(), x.max(), 200)
            ax.plot(x, d, marker, ls="none", color=colours[c.label], ms=5, label=c.label)
            ax.plot(grid, fit.predict(grid), "-", color=colours[c.label], lw=1.2)
        ax.set_xlabel(rates[0])
        axes = [ax]
    elif len(rates) == 2:
        cols = min(len(items), 3)
        rows_ = -(-len(items) // cols)
        fig, axs = plt.subplots(
            rows_, cols, figsize=(4.2 * cols, 3.6 * rows_), layout="constrained", squeeze=False
        )
        axes = list(axs.ravel())
        for ax, (c, d, fit) in zip(axes, items, strict=False):
            g1 = np.linspace(c.rates[:, 0].min(), c.rates[:, 0].max(), 80)
            g2 = np.linspace(c.rates[:, 1].min(), c.rates[:, 1].max(), 80)
            x1, x2 = np.meshgrid(g1, g2)
            z = fit.predict(np.column_stack([x1.ravel(), x2.ravel()])).reshape(x1.shape)
            cs = ax.contour(x1, x2, z, levels=8, cmap="viridis", linewidths=1.0)
            ax.clabel(cs, fontsize=7)
            sc = ax.scatter(c.rates[:, 0], c.rates[:, 1], c=d, cmap="viridis", edgecolor="k")
            fig.colorbar(sc, ax=ax, label="measured distortion (%)")
            ax.set(title=c.label, xlabel=rates[0], ylabel=rates[1])
        for ax in axes[len(items) :]:
            ax.set_visible(False)
        axes = axes[: len(items)]
    else:
        raise UserError(f"figure: drawn for one or two rate columns, not {len(rates)}")
    if len(rates) == 1:
        axes[0].set_ylabel("task distortion D (%)")
        axes[0].grid(alpha=0.3)
        fig.legend(loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, paths)


def _save(fig, paths):
    for path in map(Path, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {".svg": {"Date": None}, ".pdf": {"CreationDate": None}}.get(path.suffix)
        fig.savefig(path, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return fig


def pareto_figure(fits, tasks: list[str], totals, reports, measured, box, paths, title: str):
    """Two tasks' distortions over the allocations of two streams: for each total rate in
    ``totals``, every split of it with both rates in ``box`` (each stream's measured
    range; a line, its non-dominated part bold) and the weighted
    allocation of ``reports`` (:func:`~dfsim.experiment.rd_allocation.tasks_report`, a
    star); ``measured`` (m x 2): the operating points' measured distortions (grey dots).
    Written to each of ``paths``. Returns the figure."""
    from dfsim.experiment.rd_allocation import pareto_front_two_streams

    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    colours = plot_style.palette([f"{t:g}" for t in totals])
    m = np.asarray(measured, float)
    ax.plot(m[:, 0], m[:, 1], "o", color="0.6", ms=4, label="measured configs (all rates)")
    for total, report in zip(totals, reports, strict=True):
        if report.get("pareto") is None:
            continue  # no split of this total inside the measured rates
        front = pareto_front_two_streams(fits, total, bounds=box)
        c = colours[f"{total:g}"]
        d = front.distortion
        ax.plot(d[:, 0], d[:, 1], "-", color=c, lw=0.8, alpha=0.6)
        nd = front.nondominated
        ax.plot(d[nd, 0], d[nd, 1], "-", color=c, lw=2.4, label=f"R_t {total:g}")
        w = report["weighted"]["model_distortion"]
        ax.plot(w[0], w[1], "*", color=c, ms=12, mec="k")
    ax.set(xlabel=f"{tasks[0]} distortion D (%)", ylabel=f"{tasks[1]} distortion D (%)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, paths)
