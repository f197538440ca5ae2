"""The Python API, for notebooks: run a scenario or load a results directory, and read its
trials, summary and comparisons as pandas DataFrames.

>>> import dfsim
>>> res = dfsim.run({"data": {"n_images": 20}, "channels": [{"kind": "iid",
...                  "loss_rates": [0.1]}], "methods": ["zeros", "linear"], "trials": 2})
>>> res.compare(reference="zeros")

It is a thin layer over what the ``dfsim`` commands do: :func:`run` is ``dfsim run``
(:func:`dfsim.experiment.executors.run`, then the same files written), :meth:`Results.summary`
is ``summary.csv``, :meth:`Results.compare` the paired test of ``dfsim compare``,
:meth:`Results.plot` the figure of ``dfsim plot`` (:mod:`dfsim.experiment.plots`).
Mistakes (a missing file, an unknown key, metric or method) raise
:class:`dfsim.errors.UserError` with one line naming them.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from dfsim.errors import UserError

__all__ = ["Results", "example", "load", "run"]


def run(
    scenario,
    *,
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
    seed: int | None = None,
) -> Results:
    """Run a scenario as ``dfsim run`` does and return its :class:`Results`.

    :param scenario: a scenario file's path (``str`` or ``Path``), a dict of the scenario's
        keys, or YAML text (a string with a newline or a ``key: value``).
    :param out: the results directory to write (results.csv, manifest.json, summary and
        the standard figure); by default a temporary directory that lives as long as the
        returned object (``Results.directory``). A rerun into the same ``out`` resumes.
    :param workers: worker processes (default: all cores; results do not depend on it);
        ``1`` runs in this process, the quickest for a tiny scenario.
    :param progress: show a progress bar and the run's messages.
    :param seed: the scenario's ``seed``, replaced.
    """
    from dfsim.experiment.outputs import executor_text, provenance_notes, write_outputs
    from dfsim.tools.cli.common import check_output_dir

    scn, label = _scenario(scenario, seed)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise UserError(f"workers: expected an integer, got {workers!r}")
    if workers is not None and workers < 1:
        raise UserError(f"workers: must be >= 1, got {workers}")
    keep = None
    if out is None:
        keep = tempfile.TemporaryDirectory(prefix=f"dfsim-{scn.name}-")
        directory = Path(keep.name)
    else:
        directory = Path(out)
        check_output_dir(directory, "out")
    for line in provenance_notes(directory):
        print(f"dfsim: note: {line}", file=sys.stderr)
    from dfsim import experiment  # after the checks: a refused scenario does not wait for it

    bar = _bar(scn) if progress else None
    t0 = time.perf_counter()
    try:
        rows, preps = experiment.run(
            scn,
            progress=bar.update if bar else None,
            log=(lambda m: print(m, file=sys.stderr)) if progress else None,
            workers=workers,
            checkpoint_dir=directory,
            dask=scn.dask_scheduler,
        )
    except UserError as exc:  # found while loading the model or data: the scenario's fault
        raise UserError(f"{label}: {exc}") from None
    finally:
        if bar:
            bar.close()
    elapsed = time.perf_counter() - t0
    write_outputs(directory, scn, preps, rows, elapsed, executor_text(workers, scn.dask_scheduler))
    results = load(directory)
    results._keep = keep  # the temporary directory goes when the results do
    return results


def example(
    scenario,
    loss: float = 0.3,
    methods: str | list[str] | None = None,
    *,
    image: int | None = None,
    trial: int = 0,
    save: str | os.PathLike | None = None,
):
    """The figure of ``dfsim example``: one image of ``scenario`` (a path, a built-in's name,
    a dict or YAML text) through its pipeline at the channel setting of loss rate ``loss``,
    its lost feature rows repaired by zero-fill, ``methods`` (default: the scenario's first
    two) and none lost, with each one's task metrics on that image; returns the matplotlib
    Figure (written to ``save`` too where given).

    :param image: an image index (default: one that lost a quarter to a half of its values
        and on which zero-fill does worst).
    """
    from dfsim.tools.examples import example as draw

    scn, label = _scenario(scenario, None)
    if trial < 0:
        raise UserError(f"trial: must be >= 0, got {trial}")
    if isinstance(methods, str):
        import re

        # commas inside a label's parentheses (halrtc(max_iters=50,tol=0.001)) do not split
        methods = re.findall(r"(?:[^,(]|\([^)]*\))+", methods)
    try:
        fig, _ = draw(scn, loss, list(methods) if methods else None, image, trial)
    except UserError as exc:
        raise UserError(f"{label}: {exc}") from None
    if save is not None:
        try:
            fig.savefig(save, dpi=150)
        except OSError as exc:
            raise UserError(f"save: cannot write the figure: {exc.strerror or exc}") from None
    return fig


def load(directory: str | os.PathLike) -> Results:
    """The :class:`Results` of a results directory (one ``dfsim run`` or :func:`run`
    wrote, or a committed one such as ``results/default``). Its trials are read straight
    into a DataFrame, from results.parquet where a large run wrote one and it is the
    results.csv beside it, else from results.csv."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"{d}: no such results directory")
    path = d / "results.csv"
    if not path.is_file():
        raise UserError(f"{d}: no results.csv (run `dfsim run` with --out {d} first)")
    from dfsim.experiment.results import read_manifest

    manifest, task = read_manifest(d)
    return Results(d, _trials(d), task, manifest)


_STALE_NOTED: set[str] = set()  # results.parquet files already said to be passed over


def _trials(d: Path):
    """results.parquet's DataFrame where it is there and made from this results.csv (else,
    once per file, a note on stderr), otherwise results.csv's."""
    from dfsim.experiment.results import read_results_frame, read_results_parquet

    path, parquet = d / "results.csv", d / "results.parquet"
    if parquet.is_file():
        frame, why = read_results_parquet(parquet, path)
        if frame is not None:
            return frame
        if str(parquet) not in _STALE_NOTED:
            _STALE_NOTED.add(str(parquet))
            print(f"dfsim: note: {parquet} {why}: reading results.csv", file=sys.stderr)
    try:
        return read_results_frame(path)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path}: not a dfsim results file ({exc})") from None


class Results:
    """One run's results: :attr:`trials`, :attr:`summary`, :attr:`manifest`, and
    :meth:`compare`, :meth:`plot` and :meth:`bd_rate` over them."""

    def __init__(self, directory: Path, trials, task, manifest: dict):
        self.directory = Path(directory)  #: where the results are
        self.manifest: dict = manifest  #: manifest.json: the resolved scenario, versions, ...
        self._trials, self._task = trials, task
        self._methods = list(dict.fromkeys(trials["method"])) if "method" in trials else []
        self._keep = None

    def __repr__(self) -> str:
        methods = ", ".join(self.methods)
        return f"<dfsim Results {str(self.directory)!r}: {len(self._trials)} rows; {methods}>"

    @property
    def methods(self) -> list[str]:
        """The methods, in results order."""
        return list(self._methods)

    @property
    def trials(self):
        """results.csv as a DataFrame: one row per (config, channel setting, method, trial),
        its columns and their types (a cell a run did not produce is NaN)."""
        return self._trials

    @cached_property
    def _rows(self) -> list[dict]:
        """results.csv as rows of dicts, for the comparisons and figures (read on first use)."""
        from dfsim.experiment.results import read_results_csv

        path = self.directory / "results.csv"
        try:
            return read_results_csv(path)
        except (ValueError, KeyError) as exc:
            raise UserError(f"{path}: not a dfsim results file ({exc})") from None

    @cached_property
    def _schema(self):
        from dfsim.experiment.results import ResultsSchema

        return ResultsSchema.for_rows(self._task, self._rows)

    @cached_property
    def summary(self):
        """summary.csv as a DataFrame (read where the run wrote it, else computed from the
        trials): per (config, channel setting, method) the mean, SD
        and 95 % interval half-width (``_ci95``) of every metric over trials, and the
        paired test of the task's shown metric against the scenario's reference method
        (:func:`dfsim.experiment.statistics.summarize`)."""
        import pandas as pd

        from dfsim.experiment import statistics
        from dfsim.experiment.results import read_table_frame

        path = self.directory / "summary.csv"
        if path.is_file():  # the run wrote it from these trials: read, not recomputed
            try:
                table = read_table_frame(path)
            except (ValueError, KeyError):
                table = None
            if table is not None and self._summarises_trials(table):
                return table
        return pd.DataFrame(statistics.summarize(self._rows, self._schema, self._reference()))

    def _summarises_trials(self, table) -> bool:
        """summary.csv counts these trials: as many, of the same methods (not one left from
        an earlier run into the same directory)."""
        if not {"method", "trials"} <= set(table.columns):
            return False
        counts = self._trials.groupby("method", sort=False).size()
        theirs = table.groupby("method", sort=False)["trials"].sum()
        return counts.sort_index().to_dict() == theirs.sort_index().to_dict()

    def _reference(self) -> str | None:
        return (self.manifest.get("scenario") or {}).get("reference_method")

    def compare(self, metric: str | None = None, reference: str | None = None):
        """Each method against ``reference`` per (config, channel setting), paired by trial
        as ``dfsim compare`` does: ``METRIC_mean``, ``_ci95`` and the interval's bounds
        ``_low`` / ``_high``, the mean paired difference ``METRIC_diff_vs_reference`` and the
        paired t-test's ``p_vs_reference`` (NaN for the reference itself, and where the
        trials do not pair). Config columns appear where they vary.

        :param metric: a metric column or its short name (default: the task's primary
            metric, top1 for classification; the label-free one without labels).
        :param reference: a method of the results (default: the scenario's reference method,
            else ``zeros``, else the first).
        """
        import pandas as pd

        from dfsim.experiment.statistics import varying_config_keys
        from dfsim.tools.cli.common import metric_name

        rows, schema = self._rows, self._schema
        metric = metric_name(schema, rows, metric, "metric")
        reference = self._method(reference, "reference")
        if reference is None:
            default = self._reference()
            methods = self.methods
            reference = default if default in methods else "zeros"
            reference = reference if reference in methods else methods[0]
        keys = ("channel", "loss_rate", "burst_length", *varying_config_keys(rows, schema))
        cells: dict = defaultdict(lambda: defaultdict(dict))  # cell -> method -> trial -> value
        for r in rows:
            if metric in r:
                cells[tuple(r.get(k) for k in keys)][r["method"]][r["trial"]] = r[metric]
        out = [
            {**dict(zip(keys, cell, strict=True)), **_paired(by, m, reference, metric)}
            for cell, by in cells.items()
            for m in self.methods
            if m in by
        ]
        return pd.DataFrame(out)

    def _method(self, name: str | None, option: str) -> str | None:
        if name is not None and name not in self.methods:
            raise UserError(
                f"{option}: {name!r} is not a method of these results ({', '.join(self.methods)})"
            )
        return name

    def plot(
        self,
        x: str = "loss_rate",
        y: str | None = None,
        by: str | list[str] | None = None,
        *,
        panels: str | None = None,
        methods: list[str] | None = None,
        save: str | os.PathLike | list | None = None,
    ):
        """The figure of ``dfsim plot``: mean ``y`` against ``x``, one line per method and
        ``by`` group, 95 % band over trials; returns the matplotlib Figure.

        :param x: ``loss_rate``, ``burst_length`` or a rate (``kbpi``, ``bpp``, ...).
        :param y: a metric column or its short name (default: the task's primary metric).
        :param by: fields whose values split lines (default as ``dfsim plot``).
        :param panels: one subplot per value of this field.
        :param methods: only these methods.
        :param save: a file (or list of files; .png, .svg, .pdf) to write; none by default.
        """
        from dfsim.experiment import plots
        from dfsim.tools.cli.common import metric_name

        if plots.x_axis(x) is None:
            raise UserError(f"x: {x!r} is not an axis (one of {plots.axis_names()})")
        rows = self._rows
        if methods is not None:
            wanted = [self._method(m, "methods") for m in _names(methods)]
            rows = [r for r in rows if r["method"] in wanted]
        schema = self._schema
        y = metric_name(schema, rows, y, "y")
        if x not in plots.X_AXES and not schema.has_values(rows, x):
            raise UserError(f"x: {x!r} has no values in these results")
        fields = plots.group_fields(schema)
        default = ("channel", "burst_length") if x == "loss_rate" else ("channel", "loss_rate")
        by = tuple(_names(by)) if by is not None else default
        for option, values in (("by", by), ("panels", [panels] if panels else [])):
            for f in values:
                if f not in fields:
                    raise UserError(f"{option}: unknown field {f!r} (one of {', '.join(fields)})")
        one = isinstance(save, str | os.PathLike)
        paths = [] if save is None else [Path(p) for p in ([save] if one else save)]
        try:
            # colours by the run's whole method list: a method keeps its colour in a subset
            return plots.metric_plot(
                rows, schema, paths, x, y, by, panel=panels, methods=self.methods
            )
        except OSError as exc:
            raise UserError(f"save: cannot write the figure: {exc.strerror or exc}") from None

    def bd_rate(
        self,
        metric: str | None = None,
        rate: str = "kbpi",
        curves: str = "codec",
        anchor: str | None = None,
    ):
        """The Bjøntegaard-delta rate (%, negative: fewer bits at equal ``metric``) of each
        rate-metric curve against ``anchor`` (default: the first), per channel setting
        (and method), as ``dfsim compare --bd-rate`` computes it
        (:func:`dfsim.experiment.statistics.bd_rate` over each curve's Pareto front).
        ``bd_rate`` is NaN where the curves cannot be compared, and ``note`` says why.

        :param curves: the field whose values are the curves (``codec``, ``method``, or
            several comma-separated: ``split,codec``).
        """
        import pandas as pd

        from dfsim.experiment import statistics
        from dfsim.tools.cli.common import metric_name

        rows, schema = self._rows, self._schema
        metric = metric_name(schema, rows, metric, "metric")
        fields = ("method", *schema.config_columns)
        for f in statistics.curve_fields(curves):
            if f not in fields:
                raise UserError(f"curves: unknown field {f!r} (one of {', '.join(fields)})")
        if not statistics.is_rate_column(rate) or not schema.has_values(rows, rate):
            raise UserError(f"rate: {rate!r} has no values in these results")
        try:
            found = statistics.bd_rates(rows, schema, metric, rate, curves, anchor)
        except KeyError:
            raise UserError(f"anchor: {anchor!r} is not a {curves} of these results") from None
        return pd.DataFrame(found)

    def gain(
        self,
        metric: str | None = None,
        reference: str | None = None,
        loss_range: tuple[float, float] = (0.0, 0.3),
    ):
        """Each method's average gain in ``metric`` over ``reference`` across
        ``loss_range`` (the area between their metric-vs-loss-rate curves divided by the
        range's width), per config and channel family, paired by trial, as
        ``dfsim compare --gain`` computes it (:func:`dfsim.experiment.statistics.average_gain`):
        ``gain`` (in the metric's own units: 0.05 is 5 points of top-1), ``gain_sd``,
        ``gain_ci95`` and the loss rates it covers.

        :param reference: a method of the results (default: ``zeros``, else the first).
        """
        import pandas as pd

        from dfsim.experiment import statistics
        from dfsim.tools.cli.common import metric_name

        rows, schema = self._rows, self._schema
        metric = metric_name(schema, rows, metric, "metric")
        reference = self._method(reference, "reference")
        if reference is None:
            reference = "zeros" if "zeros" in self.methods else self.methods[0]
        lo, hi = (float(v) for v in loss_range)
        if not 0 <= lo < hi <= 1:
            raise UserError(f"loss_range: expected 0 <= low < high <= 1, got {loss_range!r}")
        found = statistics.average_gain(rows, schema, metric, reference, (lo, hi))
        if not found:
            raise UserError(
                f"loss_range: no channel family has two or more loss rates in {lo:g}-{hi:g} "
                f"with {reference!r} results"
            )
        return pd.DataFrame(found)

    def best_within(self, budgets, rate: str = "kbpi", metric: str | None = None):
        """The operational choice over the run's configs: per channel setting, method and
        budget, the config whose mean ``rate`` is at most the budget and whose mean
        ``metric`` is best (a tie goes to the cheaper). Over a grid of per-stream bits and
        error controls with ``rate="wire_bits_per_image"`` (parity, retransmissions and
        headers included) it is the joint choice of rate and protection per stream.

        :param budgets: one budget or several, in ``rate``'s units.
        :param rate: a numeric column of the summary (``kbpi``, ``wire_bits_per_image``,
            ``kbpi_s1``, ...).
        :returns: a DataFrame: the setting, method and ``budget``, the chosen config's
            columns that vary in the run, its ``rate`` and ``metric`` (mean and 95 %
            interval), and ``note`` (empty, or why a setting has no config within the
            budget); a budget below every config's rate is a one-line error.
        """
        import numpy as np
        import pandas as pd

        from dfsim.experiment import statistics
        from dfsim.tools.cli.common import metric_name

        rows, schema = self._rows, self._schema
        metric = metric_name(schema, rows, metric, "metric")
        summary = self.summary.to_dict("records")
        found = statistics.best_within(summary, schema, metric, rate, np.atleast_1d(budgets))
        return pd.DataFrame(found)


def _paired(by_method: dict, method: str, reference: str, metric: str) -> dict:
    """One method's row of :meth:`Results.compare`: summary statistics of ``metric`` over
    its trials and the paired difference against ``reference``'s same trials."""
    import math

    import numpy as np

    from dfsim.experiment.results import mean_ci95
    from dfsim.experiment.statistics import paired_t_pvalue

    trials = dict(sorted(by_method[method].items()))
    ref = dict(sorted(by_method.get(reference, {}).items()))
    mean, _, half = mean_ci95(list(trials.values()))
    row = {"method": method, "trials": len(trials), f"{metric}_mean": mean, f"{metric}_ci95": half}
    row[f"{metric}_low"], row[f"{metric}_high"] = mean - half, mean + half
    diff, p = math.nan, math.nan
    if method == reference:
        diff = 0.0
    elif list(trials) == list(ref):
        a, b = list(trials.values()), list(ref.values())
        diff, p = float(np.mean(np.subtract(a, b))), paired_t_pvalue(a, b)
    row.update({"reference": reference, f"{metric}_diff_vs_reference": diff, "p_vs_reference": p})
    return row


def _names(value) -> list[str]:
    """Names given as a comma-separated string or a list, as a list."""
    return value.split(",") if isinstance(value, str) else list(value)


def _bar(scn):
    from tqdm.auto import tqdm

    return tqdm(total=scn.n_units, desc=scn.name, unit="trial")


def _scenario(scenario, seed: int | None):
    """The validated scenario and the words that name it in messages."""
    from dfsim.experiment.scenario import parse_scenario, parse_yaml, read_yaml

    name = "scenario"
    if isinstance(scenario, Mapping):
        label, raw = "scenario dict", copy.deepcopy(dict(scenario))
    elif isinstance(scenario, str) and _is_yaml_text(scenario):
        label, raw = "scenario YAML", parse_yaml(scenario)
    elif isinstance(scenario, str | os.PathLike):  # a file, else a built-in scenario's name
        from dfsim.builtin_scenarios import resolve

        file, builtin = resolve(scenario)
        label = f"{builtin} (built-in)" if builtin else str(scenario)
        raw, name = read_yaml(file), Path(builtin or file).stem
    else:
        raise UserError(
            f"scenario: expected a file path, a dict or YAML text, got {type(scenario).__name__}"
        )
    if seed is not None and isinstance(raw, dict):
        raw["seed"] = seed
    try:
        scn = parse_scenario(raw, default_name=name, source=label)
    except UserError as exc:
        raise UserError(f"{label}: {exc}") from None
    return scn, label


def _is_yaml_text(text: str) -> bool:
    """A string that reads as YAML rather than as a file name."""
    return "\n" in text or ": " in text or text.lstrip().startswith("{")
