"""``dfsim fit-rd DIR|SCENARIO``: the distortion-rate model ``D = gamma + sum_j alpha_j
2^(-beta_j R_j)`` with the task distortion ``D = |A - Â| / A x 100`` against the loss-free,
uncompressed model's metric ``A``.

* ``DIR`` (a directory holding results.csv): fitted to a run's points (one per config: the
  mean over trials at one loss rate and method), one fit per curve (by default one per
  split and codec).
* ``SCENARIO`` (a scenario file or built-in name): the loss-free points of the scenario's
  encoding grid measured per image without the network, fitted on a seeded random
  ``--fit-fraction`` of the images and scored on the rest (:mod:`dfsim.experiment.
  rd_measure`).

``--total-rate`` adds the closed-form bit allocation at each total rate and the nearest
operating point (:func:`dfsim.experiment.rd_allocation.allocation_report`).
"""

from __future__ import annotations

import json
from pathlib import Path

from dfsim.errors import UserError
from dfsim.tools.cli.common import limit_options, metric_name, numbers, read_results

FIT_FRACTION = 0.2  # the tutorial's: fitted on 20 % of the images, tested on the other 80 %


def add_parser(sub):
    """The ``fit-rd`` subcommand and its options."""
    f = sub.add_parser(
        "fit-rd",
        parents=[limit_options()],
        help="fit the distortion-rate model D = gamma + sum alpha 2^(-beta R) to a run's "
        "points (DIR) or to a scenario's encoding grid measured on held-out images (SCENARIO)",
        description="DIR, a directory holding results.csv, is a finished run: its points "
        "(means over trials and images) are fitted. Anything else is a SCENARIO (a scenario "
        "file or built-in name, as for dfsim run): its configs are prepared (no network, no "
        "loss), measured per image, fitted on a seeded random --fit-fraction of the images "
        "and scored on the rest.",
    )
    f.add_argument(
        "source",
        metavar="DIR|SCENARIO",
        help="a result directory (holding results.csv) or a scenario file or built-in name",
    )
    f.add_argument(
        "--rate",
        help="the rate column(s), one per stream, comma-separated (DIR: default kbpi, e.g. "
        "kbpi_s0,kbpi_s1; SCENARIO: kbpi for the total, kbpi_s0,... per crossing tensor, "
        "the default where several cross the cut)",
    )
    f.add_argument(
        "--metric",
        help="the task metric (default: the task's primary metric; coding_agreement for "
        "unlabelled images); several, comma-separated (top1,ssim: one per task), fit one "
        "surface each and, with --total-rate, allocate for all of them together",
    )
    f.add_argument(
        "--weights",
        help="with several metrics: each one's weight in the allocation that minimises "
        "the weighted sum of their distortions (comma-separated, default all 1)",
    )
    f.add_argument(
        "--loss", type=float, help="DIR: the loss rate of the points (default: the lowest)"
    )
    f.add_argument("--method", help="DIR: the completion method of the points (default: the first)")
    f.add_argument(
        "--by",
        help="fields whose values tell curves apart, comma-separated (default: split and "
        "codec where they vary; '' for one fit of every point)",
    )
    f.add_argument(
        "--fit-fraction",
        type=float,
        help=f"SCENARIO: the fraction of the images fitted on, the rest held out (default "
        f"{FIT_FRACTION})",
    )
    f.add_argument(
        "--seed", type=int, help="SCENARIO: the seed of the image split (default: the scenario's)"
    )
    f.add_argument(
        "--n-images", type=int, help="SCENARIO: use the first N images (overrides data.n_images)"
    )
    f.add_argument(
        "--total-rate",
        action="append",
        metavar="R",
        help="allocate total rate R (in the rate columns' unit; repeatable or comma-separated) "
        "between the streams: the closed form, the nearest operating point, and (SCENARIO) "
        "the held-out distortion of it, of the equal split and of the size-proportional split",
    )
    f.add_argument("--json", action="store_true", help="print the fits as JSON")
    f.add_argument("--out", type=Path, help="write rd_fit.png and rd_fit.svg there")
    return f


def is_results_dir(source) -> bool:
    """Whether ``source`` is a result directory (a directory holding results.csv); a
    directory without one is a one-line error (it is no scenario either)."""
    p = Path(source)
    if not p.is_dir():
        return False
    if not (p / "results.csv").is_file():
        raise UserError(
            f"{source}: a directory without results.csv (DIR must hold a run's results; a "
            "SCENARIO is a scenario file or built-in name)"
        )
    return True


def total_rates(values) -> list[float]:
    """``--total-rate`` values (each a number or comma-separated numbers)."""
    return numbers(values, "--total-rate")


def cmd_fit_rd(args) -> int:
    metrics = [m.strip() for m in (args.metric or "").split(",") if m.strip()]
    is_dir = is_results_dir(args.source)
    if len(metrics) > 1 or args.weights is not None:
        return _fit_tasks(args, metrics, is_dir)
    _check_source_options(args, is_dir)
    if not is_dir:
        return _fit_scenario(args)
    args.dir = args.source
    return _fit_dir(args)


def _check_source_options(args, is_dir: bool) -> None:
    """The options of the other kind of source are one-line errors: ``--loss`` and
    ``--method`` for a SCENARIO, the image split's options for a result directory."""
    if is_dir:
        given = ("--fit-fraction", args.fit_fraction), ("--seed", args.seed)
        given += (("--n-images", args.n_images),)
        where = f"for a SCENARIO; {args.source} is a result directory"
    else:
        given = ("--loss", args.loss), ("--method", args.method)
        where = f"for a result directory; {args.source} is a scenario"
    for option, value in given:
        if value is not None:
            raise UserError(f"{option}: {where}")


def _curve_fields(args) -> list[str] | None:
    """``--by``: the fields that tell curves apart (None: the default)."""
    return None if args.by is None else [f.strip() for f in args.by.split(",") if f.strip()]


def _dir_rows(source):
    """A result directory's rows and schema; no rows is a one-line error."""
    rows, schema = read_results(source)
    if not rows:
        raise UserError(f"{Path(source) / 'results.csv'}: has no rows")
    return rows, schema


def _dir_fits(chosen, schema, rates, metric: str, reference: float, by, where: str = ""):
    """Each curve of a run's points (``chosen``) with its task distortion and its fitted
    surface: ``[(curve, d, fit)]``; a failed fit names ``where`` and the curve."""
    from dfsim.experiment import rd_points
    from dfsim.experiment.rate_distortion import fit_dr, task_distortion

    fits = []
    for curve in rd_points.curves(chosen, schema.config_columns, rates, metric, by):
        d = task_distortion(curve.metric, reference)
        try:
            fit = fit_dr(curve.rates, d, names=rates)
        except UserError as exc:
            raise UserError(f"{where}{curve.label}: {exc}") from None
        fits.append((curve, d, fit))
    return fits


def _image_split(args, scn):
    """``--fit-fraction`` and ``--seed`` (defaults: the tutorial's fraction, the scenario's
    seed) and the images they fit on and hold out."""
    from dfsim.experiment import rd_measure

    fraction = FIT_FRACTION if args.fit_fraction is None else args.fit_fraction
    seed = scn.seed if args.seed is None else args.seed
    fit_idx, held_idx = rd_measure.split_images(scn.data.n_images, fraction, seed)
    return fraction, seed, fit_idx, held_idx


def _fit_dir(args) -> int:
    from dfsim.experiment import rd_points
    from dfsim.experiment.rate_distortion import manifest_reference

    rows, schema = _dir_rows(args.dir)
    rates = _rate_columns(args.rate or "kbpi")
    metric = _metric(args, schema, rows)
    totals = total_rates(args.total_rate)
    reference = manifest_reference(args.dir, metric)
    chosen = rd_points.select_rows(rows, args.loss, args.method)
    fits = _dir_fits(chosen, schema, rates, metric, reference, _curve_fields(args))
    allocs = [[_allocation(f, t, c.rates, c.configs) for t in totals] for c, _, f in fits]
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
            "fits": [
                {"curve": c.label, **fit.as_dict(), **({"allocations": a} if totals else {})}
                for (c, _, fit), a in zip(fits, allocs, strict=True)
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{args.dir}: {metric} at loss rate {where['loss_rate']:g}, method {where['method']}; "
        f"D = |A - Â| / A x 100 with A = {reference:g} (full model, no coding, no loss)"
    )
    for (c, _, fit), curve_allocs in zip(fits, allocs, strict=True):
        print(f"{c.label}: {_formula(fit)}")
        s = fit.as_dict()
        print(
            f"    R2 {s['r2']:.3f}, residual mean {s['residual_mean']:+.3f}, SD "
            f"{s['residual_sd']:.3f} ({s['n_points']} points, fitted on all of them)"
        )
        for a in curve_allocs:
            print("    " + allocation_line(a, rates))
    return 0


def _rate_columns(text: str) -> list[str]:
    rates = [c.strip() for c in text.split(",") if c.strip()]
    if not rates:
        raise UserError(f"--rate: {text!r} names no rate column")
    return rates


def _allocation(fit, total, achievable, labels, sizes=None, measured=None) -> dict:
    from dfsim.experiment.rd_allocation import allocation_report

    return allocation_report(fit, total, achievable, list(labels), sizes, measured)


def _rates_text(rates, names) -> str:
    return ", ".join(f"{n} {r:.4g}" for n, r in zip(names, rates, strict=True))


def allocation_line(a: dict, names) -> str:
    """One line of an allocation report (:func:`~dfsim.experiment.rd_allocation.
    allocation_report`): the allocation and its nearest config, then the equal and the
    size-proportional splits' nearest configs, with measured distortions where known."""

    def chosen(p: dict) -> str:
        held = p.get("measured_distortion")
        shown = f", held-out D {held:.3g} %" if held is not None else ""
        rates = _rates_text(p["rates"], names)
        return f"{p['config']!r} ({rates}; model D {p['model_distortion']:.3g} %{shown})"

    al = a["allocation"]
    text = (
        f"R_t {a['total_rate']:g}: allocation {_rates_text(al['rates'], names)} (model D "
        f"{al['model_distortion']:.3g} %) -> {chosen(al['nearest'])}"
    )
    for name in ("equal", "proportional"):
        if name in a and (len(names) > 1 or "measured_distortion" in a[name]["nearest"]):
            p = a[name]["nearest"]
            held = p.get("measured_distortion")
            what = (
                f"held-out D {held:.3g} %"
                if held is not None
                else f"model D {p['model_distortion']:.3g} %"
            )
            text += f"; {name} split -> {p['config']!r} ({what})"
    return text


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


# --------------------------------------------------------------------------- SCENARIO
def _scenario_rates(text: str | None) -> bool | None:
    """``--rate`` for a scenario: None (per stream where several cross the cut), False
    (``kbpi``: the total) or True (``kbpi_s0,kbpi_s1,...``: per stream)."""
    if text is None:
        return None
    rates = _rate_columns(text)
    if rates == ["kbpi"]:
        return False
    if rates == [f"kbpi_s{i}" for i in range(len(rates))] and len(rates) > 1:
        return True
    raise UserError(
        f"--rate: {text!r}: a scenario's rates are kbpi (the total) or kbpi_s0,kbpi_s1,... "
        "(one per crossing tensor)"
    )


def _load_scenario(args):
    import dataclasses

    from dfsim.tools.cli.common import load

    scn = load(argparse_namespace(args, scenario=args.source))
    if args.n_images is not None:
        if args.n_images < 2:
            raise UserError(f"--n-images: must be >= 2, got {args.n_images}")
        scn = dataclasses.replace(scn, data=dataclasses.replace(scn.data, n_images=args.n_images))
    return scn


def argparse_namespace(args, **changes):
    """A copy of ``args`` with ``changes``."""
    import argparse

    return argparse.Namespace(**{**vars(args), **changes})


def _fit_scenario(args) -> int:
    from dfsim.experiment import rd_measure, rd_points

    per_stream = _scenario_rates(args.rate)
    totals = total_rates(args.total_rate)
    scn = _load_scenario(args)
    fraction, seed, fit_idx, held_idx = _image_split(args, scn)
    by = _curve_fields(args)
    curves, metric = rd_measure.measure(scn, fit_idx, held_idx, args.metric, per_stream, by)
    names = rd_measure.rate_names(curves)
    fits = rd_measure.fit_held_out(curves, names)
    allocs = [
        [_allocation(h.fit, t, c.rates_held, c.configs, c.sizes, c.d_held) for t in totals]
        for h, c in ((h, h.curve) for h in fits)
    ]
    if args.out:
        items = [
            (rd_points.Curve(c.label, c.rates_held, c.metric_held, c.configs), c.d_held, h.fit)
            for h, c in ((h, h.curve) for h in fits)
        ]
        title = (
            f"{metric}, loss-free: held-out images ({len(held_idx)}) against the model fitted "
            f"on {len(fit_idx)}"
        )
        rd_points.rd_figure(items, [args.out / f"rd_fit.{e}" for e in ("png", "svg")], names, title)
    head = {
        "scenario": str(args.source),
        "metric": metric,
        "n_images": scn.data.n_images,
        "fit_fraction": fraction,
        "seed": seed,
    }
    if args.json:
        out = {
            **head,
            "fit_images": fit_idx.tolist(),
            "held_out_images": held_idx.tolist(),
            "fits": [_curve_json(h, a) for h, a in zip(fits, allocs, strict=True)],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{args.source}: {metric}, loss-free; fitted on {len(fit_idx)} of {scn.data.n_images} "
        f"images (seed {seed}), tested on the other {len(held_idx)}; D = |A - Â| / A x 100 "
        "with A the uncompressed model's on the same images"
    )
    for h, curve_allocs in zip(fits, allocs, strict=True):
        print(f"{h.curve.label}: {_formula(h.fit)}")
        for name, s in (("fit set", h.fit.as_dict()), ("held out", h.held_out)):
            print(
                f"    {name:8s}: R2 {s['r2']:.3f}, residual mean {s['residual_mean']:+.3f}, "
                f"SD {s['residual_sd']:.3f} ({s['n_points']} points)"
            )
        for a in curve_allocs:
            print("    " + allocation_line(a, names))
    return 0


def _curve_json(h, allocations) -> dict:
    c = h.curve
    points = [
        {
            "config": label,
            "rates_fit": c.rates_fit[k].tolist(),
            "rates_held_out": c.rates_held[k].tolist(),
            "distortion_fit": float(c.d_fit[k]),
            "distortion_held_out": float(c.d_held[k]),
        }
        for k, label in enumerate(c.configs)
    ]
    out = {"curve": c.label, "fit": h.fit.as_dict(), "held_out": h.held_out, "points": points}
    return {**out, "allocations": allocations} if allocations else out


# --------------------------------------------------------------------------- several tasks
def _weights(text: str | None, n: int) -> list[float]:
    if text is None:
        return [1.0] * n
    w = numbers(text, "--weights")
    if len(w) != n:
        raise UserError(f"--weights: {len(w)} weights for {n} metrics")
    return w


def _task_fits(args, metrics: list[str], is_dir: bool):
    """Per metric, its curves' fits: ``{metric: [(label, configs, rates, d, fit, scores)]}``
    (rates and d: the points the allocation chooses among, held out for a scenario), the
    rate names and a heading."""
    from dfsim.experiment import rd_measure, rd_points
    from dfsim.experiment.rate_distortion import manifest_reference

    by = _curve_fields(args)
    if is_dir:
        rows, schema = _dir_rows(args.source)
        names = _rate_columns(args.rate or "kbpi")
        chosen = rd_points.select_rows(rows, args.loss, args.method)
        out = {}
        for m in metrics:
            metric = metric_name(schema, rows, m, "--metric")
            reference = manifest_reference(args.source, metric)
            fits = _dir_fits(chosen, schema, names, metric, reference, by, f"{metric}, ")
            out[metric] = [(c.label, c.configs, c.rates, d, fit, None) for c, d, fit in fits]
        where = f"loss rate {chosen[0]['loss_rate']:g}, method {chosen[0]['method']}"
        return out, names, f"{args.source}: {where}; fitted on every point"
    per_stream = _scenario_rates(args.rate)
    scn = _load_scenario(args)
    _, seed, fit_idx, held_idx = _image_split(args, scn)
    found = rd_measure.measure_metrics(scn, fit_idx, held_idx, metrics, per_stream, by)
    names = rd_measure.rate_names(next(iter(found.values())))
    out = {}
    for metric, curves in found.items():
        out[metric] = []
        for h in rd_measure.fit_held_out(curves, names):
            c = h.curve
            out[metric].append((c.label, c.configs, c.rates_held, c.d_held, h.fit, h.held_out))
    head = (
        f"{args.source}: loss-free; fitted on {len(fit_idx)} of {scn.data.n_images} images "
        f"(seed {seed}), allocations scored on the other {len(held_idx)}"
    )
    return out, names, head


def _fit_tasks(args, metrics: list[str], is_dir: bool) -> int:
    """``--metric A,B,...``: one surface per metric over the same configs and, at each
    ``--total-rate``, the weighted allocation for all of them (with each metric's own, and
    the Pareto front's extent for two streams)."""
    from dfsim.experiment.rd_allocation import tasks_report

    if len(metrics) < 2:
        raise UserError("--weights: needs several metrics (--metric top1,ssim)")
    if len(set(metrics)) < len(metrics):
        raise UserError(f"--metric: {args.metric!r} names a metric twice")
    _check_source_options(args, is_dir)
    weights = _weights(args.weights, len(metrics))
    totals = total_rates(args.total_rate)
    fits, names, head = _task_fits(args, metrics, is_dir)
    if len(fits) < len(metrics):  # two names of one column (top1,top1 or a short name)
        raise UserError(f"--metric: {args.metric!r} names a metric twice")
    metrics = list(fits)
    per_curve = list(zip(*fits.values(), strict=True))  # each curve's entry of every metric
    reports = [
        [
            tasks_report(
                [e[4] for e in entries],
                weights,
                t,
                entries[0][2],
                entries[0][1],
                [e[3] for e in entries],
            )
            for t in totals
        ]
        for entries in per_curve
    ]
    if args.out:
        _task_figures(args.out, fits, per_curve, reports, names, totals)
    if args.json:
        out = {
            "source": str(args.source),
            "metrics": metrics,
            "weights": weights,
            "fits": {
                m: [
                    {"curve": e[0], **e[4].as_dict(), **({"held_out": e[5]} if e[5] else {})}
                    for e in entries
                ]
                for m, entries in fits.items()
            },
            "allocations": [
                {"curve": entries[0][0], "reports": r}
                for entries, r in zip(per_curve, reports, strict=True)
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(head)
    for m, entries in fits.items():
        for label, _, _, _, fit, held in entries:
            s = held or fit.as_dict()
            what = "held out" if held else "fit"
            print(f"{m}, {label}: {_formula(fit)}")
            print(f"    {what}: R2 {s['r2']:.3f}, residual SD {s['residual_sd']:.3f}")
    if totals:
        shown = ", ".join(f"{m} {w:g}" for m, w in zip(metrics, weights, strict=True))
        print(f"together, weights {shown}:")
    for entries, curve_reports in zip(per_curve, reports, strict=True):
        for r in curve_reports:
            print("    " + _tasks_line(r, metrics, names, entries[0][0]))
    return 0


def _task_figures(out: Path, fits: dict, per_curve, reports, names, totals) -> None:
    """``--out`` with several metrics: each metric's rd_fit_<metric> and, for two tasks and
    two streams, rd_pareto (of the first curve)."""
    import numpy as np

    from dfsim.experiment import rd_points
    from dfsim.experiment.rd_allocation import measured_box

    metrics = list(fits)
    for metric, entries in fits.items():
        items = [(rd_points.Curve(lb, r, d, cf), d, f) for lb, cf, r, d, f, _ in entries]
        paths = [out / f"rd_fit_{metric}.{e}" for e in ("png", "svg")]
        rd_points.rd_figure(items, paths, names, f"{metric}: measured vs fitted D")
    if len(metrics) == 2 and len(names) == 2 and totals:
        entries = per_curve[0]
        rd_points.pareto_figure(
            [e[4] for e in entries],
            metrics,
            totals,
            reports[0],
            np.column_stack([e[3] for e in entries]),
            measured_box(entries[0][2]),
            [out / f"rd_pareto.{e}" for e in ("png", "svg")],
            f"{' vs '.join(metrics)} over the splits of each total rate ({entries[0][0]})",
        )


def _tasks_line(r: dict, metrics: list[str], names: list[str], label: str) -> str:
    def ds(values) -> str:
        return ", ".join(f"{m} {v:.3g} %" for m, v in zip(metrics, values, strict=True))

    w, near = r["weighted"], r["weighted"]["nearest"]
    measured = near.get("measured_distortion")
    text = (
        f"{label}, R_t {r['total_rate']:g}: weighted {_rates_text(w['rates'], names)} "
        f"(model D {ds(w['model_distortion'])}) -> {near['config']!r}"
        + (f" (measured D {ds(measured)})" if measured else "")
    )
    for m, own in zip(metrics, r["own"], strict=True):
        text += f"; {m}'s own {_rates_text(own['rates'], names)} (D {ds(own['model_distortion'])})"
    if r.get("pareto"):
        lo, hi = r["pareto"]["share_s0"]
        text += f"; non-dominated: stream 0 gets {100 * lo:.0f}-{100 * hi:.0f} % of R_t"
    return text
