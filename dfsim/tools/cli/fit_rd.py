"""``dfsim fit-rd DIR``: the distortion-rate model ``D = gamma + sum_j alpha_j 2^(-beta_j
R_j)`` fitted to a run's points (one per config: the mean over trials at one loss rate and
method), one fit per curve (by default one per split and codec), with the task distortion
``D = |A - Â| / A x 100`` against the run's loss-free, uncompressed reference ``A``."""

from __future__ import annotations

import json
from pathlib import Path

from dfsim.errors import UserError
from dfsim.tools.cli.common import metric_name, read_results


def add_parser(sub):
    """The ``fit-rd`` subcommand and its options."""
    f = sub.add_parser(
        "fit-rd",
        help="fit the distortion-rate model D = gamma + sum alpha 2^(-beta R) to a run's points",
    )
    f.add_argument("dir", metavar="DIR", help="a result directory (results.csv, manifest.json)")
    f.add_argument(
        "--rate",
        default="kbpi",
        help="the rate column(s), one per stream, comma-separated (default kbpi; e.g. "
        "kbpi_s0,kbpi_s1)",
    )
    f.add_argument(
        "--metric",
        help="the task metric (default: the task's primary metric; coding_agreement for "
        "unlabelled images)",
    )
    f.add_argument("--loss", type=float, help="the loss rate of the points (default: the lowest)")
    f.add_argument("--method", help="the completion method of the points (default: the first)")
    f.add_argument(
        "--by",
        help="fields whose values tell curves apart, comma-separated (default: split and "
        "codec where they vary; '' for one fit of every point)",
    )
    f.add_argument("--json", action="store_true", help="print the fits as JSON")
    f.add_argument("--out", type=Path, help="write rd_fit.png and rd_fit.svg there")
    return f


def cmd_fit_rd(args) -> int:
    from dfsim.experiment import rd_points
    from dfsim.experiment.rate_distortion import fit_dr, manifest_reference, task_distortion

    rows, schema = read_results(args.dir)
    if not rows:
        raise UserError(f"{Path(args.dir) / 'results.csv'}: has no rows")
    rates = [c.strip() for c in args.rate.split(",") if c.strip()]
    if not rates:
        raise UserError(f"--rate: {args.rate!r} names no rate column")
    metric = _metric(args, schema, rows)
    reference = manifest_reference(args.dir, metric)
    chosen = rd_points.select_rows(rows, args.loss, args.method)
    by = None if args.by is None else [f.strip() for f in args.by.split(",") if f.strip()]
    fits = []
    for curve in rd_points.curves(chosen, schema.config_columns, rates, metric, by):
        d = task_distortion(curve.metric, reference)
        try:
            fit = fit_dr(curve.rates, d, names=rates)
        except UserError as exc:
            raise UserError(f"{curve.label}: {exc}") from None
        fits.append((curve, d, fit))
    where = {"loss_rate": chosen[0]["loss_rate"], "method": chosen[0]["method"]}
    if args.out:
        title = f"{metric} at loss rate {where['loss_rate']:g}: measured vs fitted D"
        paths = [args.out / f"rd_fit.{ext}" for ext in ("png", "svg")]
        rd_points.rd_figure(fits, paths, rates, title)
    if args.json:
        out = {
            "dir": str(args.dir),
            "metric": metric,
            "reference": reference,
            **where,
            "fits": [{"curve": c.label, **fit.as_dict()} for c, _, fit in fits],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{args.dir}: {metric} at loss rate {where['loss_rate']:g}, method {where['method']}; "
        f"D = |A - Â| / A x 100 with A = {reference:g} (full model, no coding, no loss)"
    )
    for c, _, fit in fits:
        print(f"{c.label}: {_formula(fit)}")
        s = fit.as_dict()
        print(
            f"    R2 {s['r2']:.3f}, residual mean {s['residual_mean']:+.3f}, SD "
            f"{s['residual_sd']:.3f} ({s['n_points']} points, fitted on all of them)"
        )
    return 0


def _metric(args, schema, rows) -> str:
    """``--metric``, or the primary metric when it has values, else coding_agreement (the
    loss-free coded model against the uncoded one) where the results carry it."""
    if args.metric == "coding_agreement" or (
        args.metric is None
        and not schema.has_values(rows, schema.task.primary)
        and schema.has_values(rows, "coding_agreement")
    ):
        return "coding_agreement"
    if args.metric is None:
        return schema.task.primary
    return metric_name(schema, rows, args.metric, "--metric")


def _formula(fit) -> str:
    terms = " + ".join(
        f"{a:.4g} 2^(-{b:.4g} {name})"
        for a, b, name in zip(fit.alpha, fit.beta, fit.rates, strict=True)
    )
    return f"D = {fit.gamma:.4g} + {terms}"
