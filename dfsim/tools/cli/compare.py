"""``dfsim compare DIR...``: the summary table of one or more result directories, or the
average gain of each method over a reference (``--gain``), or the Bjøntegaard-delta rate
between rate-metric curves (``--bd-rate``). Directories of different scenarios or image
sets are refused unless ``--allow-mixed`` is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dfsim.errors import UserError
from dfsim.tools.cli.common import metric_name, numbers, read_result_dirs


def add_parser(sub):
    """The ``compare`` subcommand and its options."""
    c = sub.add_parser("compare", help="print the summary table of one or more result directories")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    c.add_argument(
        "--metric",
        help="a metric column of the results (default: the task's "
        "primary metric, e.g. top1; agreement without labels)",
    )
    c.add_argument(
        "--reference", help="method for the paired test (default: zeros, else the first)"
    )
    c.add_argument(
        "--bd-rate",
        action="store_true",
        help="Bjontegaard-delta rate between rate-metric curves instead of the summary",
    )
    c.add_argument(
        "--curves",
        help="--bd-rate: the field whose values are the curves (default: codec; with several "
        "directories: method, i.e. directory:method); several comma-separated fields name a "
        "curve by their values joined by / (--curves split,codec --anchor input/hevc)",
    )
    c.add_argument(
        "--rate",
        default="kbpi",
        help="--bd-rate, --best-within: the rate column (default kbpi; bits_per_image, bpp, "
        "bits_per_element, wire_bits_per_image, or a stream's kbpi_s<i>)",
    )
    c.add_argument(
        "--best-within",
        metavar="B[,B...]",
        help="per channel setting and method, the config with the best mean metric whose "
        "mean --rate is at most each budget B (over per-stream bits and error controls with "
        "--rate wire_bits_per_image: the joint choice of rate and protection)",
    )
    c.add_argument("--anchor", help="--bd-rate: the reference curve (default: the first)")
    c.add_argument(
        "--gain",
        action="store_true",
        help="average gain of each method over --reference (default zeros) across a loss "
        "range: area between the metric-vs-loss curves / the range's width, paired by trial",
    )
    c.add_argument("--loss-range", default="0,0.3", help="--gain: LO,HI loss rates (default 0,0.3)")
    c.add_argument(
        "--allow-mixed",
        action="store_true",
        help="merge directories of different scenarios or image sets (by default refused: "
        f"their {', '.join(SAME)} must match)",
    )
    return c


# What result directories compared together must share: their scenario's name, seed, model,
# images and task (from each manifest's resolved scenario).
SAME = ("name", "seed", "model", "data", "task")


def cmd_compare(args) -> int:
    from dfsim.experiment import statistics
    from dfsim.experiment.outputs import comparison_notes

    if not args.allow_mixed:
        check_same_scenario(args.dirs)
    for line in comparison_notes(args.dirs):
        print(f"dfsim: note: {line}", file=sys.stderr)
    rows, schema = read_result_dirs(args.dirs)
    if not rows:
        raise UserError(f"{', '.join(args.dirs)}: results.csv has no rows")
    schema = type(schema).for_rows(schema.task, rows)  # every directory's config columns
    reference = args.reference
    if reference and reference not in {r["method"] for r in rows}:
        raise UserError(f"--reference: {reference!r} is not a method in these results")
    metric = metric_name(schema, rows, args.metric, "--metric")
    if args.gain:
        print(_gain_table(args, rows, schema, metric))
        return 0
    if args.bd_rate:
        print(_bd_rate_table(args, rows, schema, metric))
        return 0
    summary = statistics.summarize(rows, schema, reference)
    if args.best_within is not None:
        budgets = numbers(args.best_within, "--best-within")
        options = ("--rate", "--best-within")
        found = statistics.best_within(summary, schema, metric, args.rate, budgets, options)
        print(statistics.best_within_table(found, metric, args.rate, schema.metric(metric)))
        return 0
    print(statistics.markdown_table(summary, schema, metric))
    return 0


def _gain_table(args, rows, schema, metric: str) -> str:
    """``--gain``: each method's average gain over the reference across ``--loss-range``."""
    from dfsim.experiment import statistics

    lo, hi = _loss_range(args.loss_range)
    ref = args.reference or ("zeros" if any(r["method"] == "zeros" for r in rows) else None)
    if ref is None:
        raise UserError("--gain: name the method to measure gains against with --reference")
    gains = statistics.average_gain(rows, schema, metric, ref, (lo, hi))
    if not gains:
        raise UserError(
            f"--gain: no channel family has two or more loss rates in {lo:g}-{hi:g} "
            f"with {ref!r} results (--loss-range)"
        )
    return statistics.gain_table(gains, schema, metric, lo, hi)


def _bd_rate_table(args, rows, schema, metric: str) -> str:
    """``--bd-rate``: the rate change of each curve against ``--anchor`` at equal metric."""
    from dfsim.experiment import statistics

    curves = args.curves or ("method" if len(args.dirs) > 1 else "codec")
    fields = ("method", *schema.config_columns)
    if curves == "codec" and len({r.get("codec") for r in rows}) < 2:
        raise UserError(
            f"--bd-rate: {', '.join(args.dirs)} has one codec: name the field whose "
            "values are the curves with --curves"
        )
    for f in statistics.curve_fields(curves):
        if f not in fields:
            raise UserError(f"--curves: unknown field {f!r} (one of {', '.join(fields)})")
    if not statistics.is_rate_column(args.rate):
        raise UserError(
            f"--rate: {args.rate!r} is not a rate column ({', '.join(statistics.RATE_COLUMNS)}, "
            "kbpi_s<i>)"
        )
    if not schema.has_values(rows, args.rate):
        raise UserError(f"--rate: {args.rate!r} has no values in these results")
    try:
        return statistics.bd_rate_table(rows, schema, metric, args.rate, curves, args.anchor)
    except KeyError:
        raise UserError(f"--anchor: {args.anchor!r} is not a {curves} in these results") from None


def _loss_range(text: str) -> tuple[float, float]:
    """``LO,HI`` loss rates (fractions) with 0 <= LO < HI <= 1."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--loss-range: {text!r} is not LO,HI (e.g. 0,0.3)") from None
    if not 0 <= lo < hi <= 1:
        raise UserError(f"--loss-range: {text!r} needs 0 <= LO < HI <= 1")
    return lo, hi


def check_same_scenario(dirs: list[str]) -> None:
    """Refuse result directories whose scenarios differ (in :data:`SAME`) from the first
    one's, naming the differing fields and the directories; directories without a
    manifest cannot be told apart and pass."""
    scenarios = [(d, _scenario_of(d)) for d in dirs]
    first, base = next(((d, s) for d, s in scenarios if s is not None), (None, None))
    differing = []
    for d, scn in scenarios:
        if scn is None or d == first:
            continue
        fields = [f for k in SAME for f in _differences(base.get(k), scn.get(k), k)]
        if fields:
            differing.append(f"{d!r} differs from {first!r} in {', '.join(fields)}")
    if differing:
        raise UserError(
            f"results of different scenarios or image sets: {'; '.join(differing)} "
            "(--allow-mixed merges them anyway)"
        )


def _scenario_of(d: str) -> dict | None:
    """The resolved scenario in ``d``'s manifest, or None without one (read_results has
    refused a manifest that is not one)."""
    path = Path(d) / "manifest.json"
    if not path.is_file():
        return None
    try:
        scn = json.loads(path.read_text()).get("scenario")
    except (ValueError, OSError, AttributeError, RecursionError):
        return None
    return scn if isinstance(scn, dict) else None


def _differences(a, b, where: str) -> list[str]:
    """The dotted names of the fields in which ``a`` and ``b`` differ (``data.n_images``),
    a field missing on one side included."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            f
            for k in dict.fromkeys([*a, *b])
            for f in _differences(a.get(k), b.get(k), f"{where}.{k}")
        ]
    return [] if a == b else [where]
