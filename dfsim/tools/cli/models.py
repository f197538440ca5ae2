"""``dfsim models``: the registered models; ``dfsim models describe MODEL``: a model's
split points, the tensors crossing each cut and the edge's share of the time."""

from __future__ import annotations

from dfsim.errors import UserError


def add_parser(sub):
    """The ``models`` subcommand and its options."""
    m = sub.add_parser("models", help="list models; `models describe MODEL`: its split points")
    m.add_argument("action", nargs="?", choices=("list", "describe"), default="list")
    m.add_argument("model", nargs="?", help="built-in name, or package.module:factory")
    m.add_argument("--import", dest="import_path", help="package.module:factory of your own model")
    m.add_argument("--weights", help="state dict file")
    m.add_argument("--input-size", help="C,H,W (models given by import path)")
    return m


def cmd_models(args) -> int:
    from dfsim.models import available_models, load_model

    if args.action == "describe":
        return _describe_model(args)
    for name in available_models():
        try:
            m = load_model(name)
        except UserError as exc:
            print(f"{name}: unavailable ({exc})")
            continue
        print(
            f"{name} (input {'x'.join(map(str, m.input_shape))}, default split {m.default_split}, "
            f"{len(m.split_points)} split points: `dfsim models describe {name}`)"
        )
    return 0


def _describe_model(args) -> int:
    """Split points with the tensors crossing each cut and the edge's share of the time."""
    m = _model_to_describe(args)
    rows = m.describe()
    print(
        f"{m.name}: input {'x'.join(map(str, m.input_shape))}, default split {m.default_split}; "
        f"edge share = measured fraction of the full model's time spent before the cut"
    )
    print(
        f"  {'split point':28s} {'tensors crossing the cut':34s} {'values':>9s} {'edge share':>10s}"
    )
    for r in rows:
        shapes = " + ".join("x".join(map(str, s)) for s in r["shapes"])
        share = "" if r["edge_share"] is None else f"{100 * r['edge_share']:9.1f}%"
        mark = (
            ""
            if r["tensors"] == 1
            else f"  ({r['tensors']} tensors: each sent with its own quantizer)"
        )
        print(f"  {r['split']:28s} {shapes:34s} {r['values']:9d} {share:>10s}{mark}")
    return 0


def _model_to_describe(args):
    """The model ``models describe`` names: built in, or your own by import path (with
    ``--input-size``)."""
    from dfsim.models import load_model
    from dfsim.models.sources import from_import_path

    if not args.model and not args.import_path:
        raise UserError(
            "models describe: name a model (`dfsim models` lists them) or give --import"
        )
    if args.import_path or ":" in args.model:
        if not args.input_size:
            raise UserError(
                "--input-size: required for a model given by import path (e.g. 3,224,224)"
            )
        try:
            shape = tuple(int(v) for v in args.input_size.split(","))
        except ValueError:
            raise UserError(
                f"--input-size: expected C,H,W integers, got {args.input_size!r}"
            ) from None
        return from_import_path(args.import_path or args.model, args.weights, shape, (0.0,), (1.0,))
    return load_model(args.model, **({"weights": args.weights} if args.weights else {}))
