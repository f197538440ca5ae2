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
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfsim.cache import atomic_write
from dfsim.errors import UserError
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


# Per-stream rates (a cut with ``encoding.streams``): each tensor's share of a pipeline
# rate, ``<rate>_s<index>`` (``kbpi_s1``), declared for the streams a run's rows have.
STREAM_RATES = ("bits_per_image", "kbpi")
_PER_STREAM = re.compile(r"(.+)_s(\d+)")


def per_stream(column: str) -> tuple[str, int] | None:
    """``(column it is a stream's share or parameter of, stream index)`` of a per-stream
    column (``kbpi_s1``: ``("kbpi", 1)``; ``bits_s0``: ``("bits", 0)``), else None."""
    m = _PER_STREAM.fullmatch(column)
    return (m[1], int(m[2])) if m else None


def stream_metrics(columns: Iterable[str]) -> tuple[Metric, ...]:
    """The declarations of the per-stream rate columns among ``columns``, rates in
    :data:`STREAM_RATES` order, then by stream."""
    rates = {m.name: m for m in pipeline_metrics() if m.name in STREAM_RATES}
    found = []
    for c in dict.fromkeys(columns):
        m = _PER_STREAM.fullmatch(c)
        if m and m[1] in rates:
            found.append((STREAM_RATES.index(m[1]), int(m[2]), c))
    return tuple(
        Metric(
            c,
            f"{rates[STREAM_RATES[r]].label}, tensor {i}",
            rates[STREAM_RATES[r]].unit,
            False,
            per="trial",
        )
        for r, i, c in sorted(found)
    )


def _with_stream_columns(types: dict, columns: Iterable[str]) -> dict:
    """``types`` with a per-stream column (``bits_s1``, ``kbpi_s0``) of ``columns`` typed
    as the column it is a stream's share or parameter of."""
    out = dict(types)
    for c in columns:
        m = _PER_STREAM.fullmatch(c)
        if m and c not in out and m[1] in out:
            out[c] = out[m[1]]
    return out


@dataclass(frozen=True)
class ResultsSchema:
    """The columns of one run's results: identity, metrics (the task's, then the
    pipeline's) and the config columns the run's rows carry."""

    task: object
    config_columns: tuple[str, ...]
    stream_metrics: tuple[Metric, ...] = ()  # per-stream rates (:func:`stream_metrics`)

    @classmethod
    def for_rows(cls, task, rows: list[dict]) -> ResultsSchema:
        """The schema of ``rows``: config columns are those not identity or metric columns."""
        streams = stream_metrics(k for r in rows for k in r)
        known = set(IDENTITY_COLUMNS) | {m.name for m in cls(task, (), streams).metrics}
        config = tuple(dict.fromkeys(k for r in rows for k in r if k not in known))
        return cls(task, config, streams)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The task's metrics, then the pipeline's (and the per-stream rates)."""
        return tuple(self.task.metrics) + pipeline_metrics() + self.stream_metrics

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


def read_manifest(directory) -> tuple[dict, object]:
    """A results directory's manifest (empty without one) and the task it names, built
    unbound with the plug-ins that may register it (classification without one); a
    damaged manifest is a one-line error naming it."""
    from dfsim.experiment.multi_task import task_of_section
    from dfsim.experiment.scenario import load_plugins

    path, manifest = Path(directory) / "manifest.json", {}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
            plugins = manifest.get("scenario", {}).get("plugins") or ()
        except (ValueError, OSError, AttributeError, RecursionError) as exc:
            raise UserError(f"{path}: not a dfsim manifest ({exc})") from None
        load_plugins(plugins)
    task = (manifest.get("scenario") or {}).get("task")
    return manifest, task_of_section(task, f"{path}: task")


def read_results_csv(path: Path) -> list[dict]:
    """Rows of a results.csv, each column typed by its declaration (unknown ones as
    numbers where they parse); empty cells (a column a run did not produce) are left out."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    types = _with_stream_columns(column_types(), reader.fieldnames or ())
    return [
        {k: _parse(v, types.get(k, float)) for k, v in r.items() if v != "" or types.get(k) is str}
        for r in rows
    ]


# Above this many rows a run also writes results.parquet: results.csv then runs to megabytes
# and parsing it takes a good part of a second (benchmarks/load-results.md); below it the CSV
# loads in tens of milliseconds and a second, binary copy of every small committed results
# directory (the largest, results/burst-grid, has 5 120 rows) would buy nothing.
PARQUET_MIN_ROWS = 10_000
_FINGERPRINT = b"dfsim.results_csv.sha256"  # the results.csv a results.parquet was made from
_STAT = b"dfsim.results_csv.stat"  # its size and mtime: unchanged, no need to hash it again
_WORDS = b"dfsim.mixed_columns"  # columns of numbers and words (rows_per_packet: 4 and fill)


def _na_values(columns: list[str], types: dict) -> dict[str, list[str]]:
    """Per column, the cells that mean "no value": empty ones (a column the row's config
    lacks), and ``nan`` in number columns; a text column keeps its empty cells as ""."""
    return {c: ["", "nan"] for c in columns if types.get(c) is not str}


def read_table_frame(path: Path):
    """A CSV :func:`write_table` wrote (summary.csv) as a DataFrame, typed as its rows were:
    text columns ``str`` with their empty cells "", others numbers with NaN for no value."""
    import pandas as pd

    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    types = _with_stream_columns(column_types(), header)
    return pd.read_csv(
        path,
        dtype={c: str for c in header if types.get(c) is str},
        keep_default_na=False,
        na_values=_na_values(header, types),
    )


def read_results_frame(path: Path):
    """results.csv as a pandas DataFrame, read directly (not through rows of dicts), each
    column typed as :func:`read_results_csv` types it: text columns ``str`` (empty cells
    ""), the others ``int64`` or ``float64`` (NaN where a row has no value), a column of
    numbers and words (``rows_per_packet``: 4 and ``fill``) ``object``; the types pandas
    gives the same values as rows (``pandas.DataFrame.from_records``)."""
    import pandas as pd

    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    types = _with_stream_columns(column_types(), header)
    df = pd.read_csv(
        path,
        dtype={c: str for c in header if types.get(c) is str},
        keep_default_na=False,
        na_values=_na_values(header, types),
    )
    for c in header:
        tp = types.get(c, float)
        if tp is str:
            continue
        kind = df[c].dtype.kind
        if kind in "OUT":  # numbers and words: each cell as read_results_csv parses it
            parsed = [v if v != v else _parse(v, tp) for v in df[c]]
            df[c] = pd.Series(parsed, index=df.index, dtype=None)  # typed as the values are
        elif kind == "b":  # True/False in a number column: words, as read_results_csv
            df[c] = df[c].map(str).astype(object)
        elif tp is float and kind in "iu":
            df[c] = df[c].astype("float64")
    return df


def csv_fingerprint(path: Path) -> str:
    """The SHA-256 of a file's bytes (what ties a results.parquet to its results.csv)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _stat(path: Path) -> str:
    st = Path(path).stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def write_results_parquet(csv_path: Path, path: Path) -> None:
    """results.parquet: the DataFrame :func:`read_results_frame` makes of ``csv_path``, the
    same columns, types and values (floats exact), with the CSV's fingerprint, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = read_results_frame(csv_path)
    mixed = [c for c in df.columns if df[c].dtype == object]
    for c in mixed:  # Parquet has no column of numbers and words: their text, parsed back
        df[c] = df[c].map(lambda v: None if v != v else str(v)).astype("str")
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {**(table.schema.metadata or {}), _FINGERPRINT: csv_fingerprint(csv_path).encode()}
    meta[_STAT] = _stat(csv_path).encode()
    meta[_WORDS] = json.dumps(mixed).encode()
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda f: pq.write_table(table, f), binary=True)


def refresh_results_parquet(directory: Path, n_rows: int) -> None:
    """Beside a results.csv of more than :data:`PARQUET_MIN_ROWS` rows, its results.parquet;
    beside a smaller one, none (one left by an earlier, larger run is removed)."""
    directory = Path(directory)
    if n_rows > PARQUET_MIN_ROWS:
        write_results_parquet(directory / "results.csv", directory / "results.parquet")
    else:
        (directory / "results.parquet").unlink(missing_ok=True)


def read_results_parquet(path: Path, csv_path: Path):
    """The DataFrame of a results.parquet, or None (and why) where it is not the
    results.csv beside it: unreadable, or made from another version of the CSV (a rerun or
    a resumed run rewrote it)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        same = meta.get(_STAT, b"").decode() == _stat(csv_path)  # else hash (a git checkout)
        if not same and meta.get(_FINGERPRINT, b"").decode() != csv_fingerprint(csv_path):
            return None, "made from another version of results.csv"
        df = pq.read_table(path).to_pandas()
        types = _with_stream_columns(column_types(), df.columns)
        for c in json.loads(meta.get(_WORDS, b"[]")):
            tp = types.get(c, float)
            parsed = [math.nan if v != v else _parse(v, tp) for v in df[c]]
            df[c] = pd.Series(parsed, index=df.index, dtype=None)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        return None, f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return df, ""


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
