"""``dfsim plot DIR...``: a metric against a channel parameter or a rate, and completion
times, from one or more result directories (PNG and SVG, :mod:`dfsim.experiment.plots`)."""

from __future__ import annotations

from pathlib import Path

from dfsim.errors import UserError
from dfsim.tools.cli.common import metric_name, read_result_dirs

FORMATS = ("png", "svg")  # dfsim.experiment.plot_style.FORMATS (not imported: matplotlib)


def add_parser(sub):
    """The ``plot`` subcommand and its options."""
    pl = sub.add_parser("plot", help="figures from result directories (PNG and SVG)")
    pl.add_argument(
        "dir",
        metavar="DIR",
        nargs="+",
        help="a result directory, or several drawn together (their methods named DIR:method)",
    )
    pl.add_argument(
        "--out", help="where the figures go (default: the first DIR; needed for several)"
    )
    pl.add_argument(
        "--x",
        default="loss_rate",
        help="x axis: the channel's loss rate or burst length (loss_rate, burst_length), or a "
        "rate (kbpi, bits_per_image, bpp, bits_per_element, a stream's kbpi_s<i>, or "
        "wire_bits_per_image: everything the network carried, a config's mean over trials)",
    )
    pl.add_argument(
        "--y",
        help="a metric column, or its short name (latency_p95, completion_ms, "
        "...; default: the task's primary metric)",
    )
    pl.add_argument(
        "--by",
        help="comma-separated fields that split lines (default: channel,burst_length for "
        "--x loss_rate; channel,loss_rate for --x burst_length)",
    )
    pl.add_argument(
        "--panels", help="one subplot per value of this field (e.g. loss_rate), shared legend"
    )
    pl.add_argument(
        "--methods", help="comma-separated methods to draw (default: all; several DIRs: DIR:method)"
    )
    pl.add_argument(
        "--format",
        default=",".join(FORMATS),
        help=f"comma-separated file formats, of png, svg, pdf (default: {','.join(FORMATS)})",
    )
    return pl


def cmd_plot(args) -> int:
    formats = tuple(f for f in args.format.split(",") if f)
    bad = [f for f in formats if f not in ("png", "svg", "pdf")] or ([] if formats else [""])
    if bad:
        raise UserError(f"--format: unknown format {bad[0]!r} (png, svg or pdf)")
    _, written = draw(args, formats)
    print("\n".join(str(p) for p in written))
    return 0


def draw(args, formats: tuple[str, ...]) -> tuple[list, list[Path]]:
    """The figures of one ``dfsim plot`` command (``args`` as parsed), written in
    ``formats`` (none: drawn only): the (closed, still drawable) figures and the files."""
    from dfsim.experiment import plots

    dirs = args.dir
    if plots.x_axis(args.x) is None:
        raise UserError(f"--x: {args.x!r} is not an axis (one of {plots.axis_names()})")
    if len(dirs) > 1 and not args.out:
        raise UserError("--out: several directories need a directory for their figures")
    d = Path(args.out or dirs[0])
    rows, schema = read_result_dirs(dirs, each_has_rows=True)
    order = list(dict.fromkeys(r["method"] for r in rows))  # colours: the run's methods
    if args.methods:
        rows = _only_methods(rows, args.methods.split(","))
    schema = type(schema).for_rows(schema.task, rows)  # every directory's config columns
    y = metric_name(schema, rows, args.y, "--y")
    if args.x not in plots.X_AXES and not schema.has_values(rows, args.x):
        raise UserError(f"--x: {args.x!r} has no values in these results")
    by = _lines_by(args, plots.group_fields(schema))
    stem = d / (f"{args.y or y}_vs_{args.x}" + (f"_by_{args.panels}" if args.panels else ""))
    out = [stem.with_suffix(f".{f}") for f in formats]
    bars = [(d / "completion_time").with_suffix(f".{f}") for f in formats]
    try:
        figures = [
            plots.metric_plot(rows, schema, out, args.x, y, by, panel=args.panels, methods=order),
            plots.completion_time_bars(rows, bars, methods=order),
        ]
    except OSError as exc:
        raise UserError(f"{d}: cannot write figures: {exc.strerror or exc}") from None
    return figures, out + bars


def _only_methods(rows: list[dict], wanted: list[str]) -> list[dict]:
    """The rows of the ``--methods`` named, each checked to be in the results."""
    known = list(dict.fromkeys(r["method"] for r in rows))
    for m in wanted:
        if m not in known:
            raise UserError(
                f"--methods: {m!r} is not a method of these results ({', '.join(known)})"
            )
    return [r for r in rows if r["method"] in wanted]


def _lines_by(args, fields) -> tuple[str, ...]:
    """The fields that split lines (``--by``, else the x axis's default), with ``--panels``
    checked too."""
    by = (
        tuple(args.by.split(","))
        if args.by
        else (("channel", "burst_length") if args.x == "loss_rate" else ("channel", "loss_rate"))
    )
    for f in by:
        if f not in fields:
            raise UserError(f"--by: unknown field {f!r} (one of {', '.join(fields)})")
    if args.panels is not None and args.panels not in fields:
        raise UserError(f"--panels: unknown field {args.panels!r} (one of {', '.join(fields)})")
    return by
