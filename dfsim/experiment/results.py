"""The results table: its schema, derived from the stages' metric declarations, and atomic
CSV I/O.

``results.csv`` has one row per (config, channel setting, method, trial). Its columns, in
order: the identity columns (``method, channel, loss_rate, burst_length, trial,
n_images``); the core metrics (for classification ``top1, agreement``, then
``realised_loss_rate, completion_ms_per_tensor``); the other metrics (the task's, then the
transport's and completion's); then the config columns (``split``, the codec's parameters,
``rows_per_packet``, ``order``, ``error_control``; empty where a config has no such value).
Summaries, ``dfsim compare`` and plots take units, scales, which way is better and labels
from the same declarations.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfsim.cache import atomic_write
from dfsim.stages import Metric

IDENTITY_COLUMNS = ("method", "channel", "loss_rate", "burst_length", "trial", "n_images")
CHANNEL_COLUMNS = ("channel", "loss_rate", "burst_length")
_IDENTITY_TYPES = {"method": str, "channel": str, "trial": int, "n_images": int}
_CONFIG_TYPES = {
    "split": str,
    "codec": str,
    "order": str,
    "error_control": str,
    "rows_per_packet": int,
}


def pipeline_metrics() -> tuple[Metric, ...]:
    """The transport's, the codec's and completion's metrics (every run has them)."""
    from dfsim.codecs import accounting
    from dfsim.completion import base
    from dfsim.transport import network

    return network.METRICS + accounting.METRICS + base.METRICS


@dataclass(frozen=True)
class ResultsSchema:
    """The columns of one run's results: identity, metrics (the task's, then the
    pipeline's) and the config columns the run's rows carry."""

    task: object
    config_columns: tuple[str, ...]

    @classmethod
    def for_rows(cls, task, rows: list[dict]) -> ResultsSchema:
        """The schema of ``rows``: config columns are those not identity or metric columns."""
        known = set(IDENTITY_COLUMNS) | {m.name for m in cls(task, ()).metrics}
        config = tuple(dict.fromkeys(k for r in rows for k in r if k not in known))
        return cls(task, config)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The task's metrics, then the pipeline's."""
        return tuple(self.task.metrics) + pipeline_metrics()

    @property
    def columns(self) -> list[str]:
        """Every column, in results.csv order."""
        core = [m.name for m in self.metrics if m.core]
        rest = [m.name for m in self.metrics if not m.core]
        return [*IDENTITY_COLUMNS, *core, *rest, *self.config_columns]

    def metric(self, name: str) -> Metric:
        """The declaration of a metric column, by name or short alias."""
        for m in self.metrics:
            if name in (m.name, m.alias):
                return m
        raise KeyError(name)

    def has_values(self, rows: list[dict], name: str) -> bool:
        """Some row has a (non-NaN) value of ``name``."""
        return any(r.get(name) == r.get(name) and r.get(name) is not None for r in rows)

    def shown_metric(self, rows: list[dict]) -> str:
        """The task's primary metric, or its label-free one when the primary has no values
        (unlabelled images)."""
        primary = self.task.primary
        return primary if self.has_values(rows, primary) else self.task.label_free

    def summarised(self, rows: list[dict]) -> list[Metric]:
        """The metrics summaries report: those present in ``rows`` (numeric, not counts)."""
        present = {k for r in rows for k in r}
        return [m for m in self.metrics if m.name in present and m.name != "packets_per_image"]


def _fmt(v):
    if isinstance(v, float):
        return repr(v)  # exact round trip
    return v


def write_results_csv(rows: Iterable[dict], schema: ResultsSchema, path: Path) -> None:
    """results.csv in the schema's column order; a row missing a column is a bug."""
    rows = list(rows)
    columns = schema.columns

    def write(f):
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="raise")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in columns})  # "": not this config's

    atomic_write(path, write)


def write_json(obj, path: Path) -> None:
    """JSON, atomically."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=False, default=str))


def write_table(rows: list[dict], path: Path) -> None:
    """Any list of dicts as CSV, atomically: columns in first-seen order, floats exact."""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def write(f):
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in cols})

    atomic_write(path, write)


def column_types() -> dict[str, type]:
    """The type of every column any registered task or the pipeline declares."""
    from dfsim.registry import entry, names

    types = {**_IDENTITY_TYPES, **_CONFIG_TYPES}
    for m in pipeline_metrics():
        types[m.name] = m.dtype
    for t in names("task"):
        for m in getattr(entry("task", t).factory, "metrics", ()):
            types[m.name] = m.dtype
    for c in names("codec"):
        for p in entry("codec", c).params.values():
            if p.type in (int, float, str):
                types.setdefault(p.name, p.type)
    return types


def _parse(value: str, tp):
    if tp is str:
        return value
    if tp is int:
        try:
            return int(value)
        except ValueError:
            return value  # a word where a number may be (rows_per_packet: fill)
    try:
        return float(value)
    except ValueError:
        return value


def read_results_csv(path: Path) -> list[dict]:
    """Rows of a results.csv, each column typed by its declaration (unknown ones as
    numbers where they parse); empty cells (a column a run did not produce) are left out."""
    types = column_types()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {k: _parse(v, types.get(k, float)) for k, v in r.items() if v != "" or types.get(k) is str}
        for r in rows
    ]


def mean_ci95(values) -> tuple[float, float, float]:
    """Mean, sample standard deviation and half-width of the 95 % t-interval."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, 0.0, 0.0
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(x) - 1) * sd / math.sqrt(len(x)))
    return m, sd, half
