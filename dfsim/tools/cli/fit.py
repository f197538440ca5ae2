"""``dfsim fit METHOD|all SCENARIO``: fit a scenario's trained completion methods (ALTeC)
into the artefact cache, for each config and stream."""

from __future__ import annotations

import sys

from dfsim.errors import UserError
from dfsim.tools.cli.common import load


def add_parser(sub, limits):
    """The ``fit`` subcommand and its options."""
    f = sub.add_parser(
        "fit",
        parents=[limits],
        help="fit a scenario's trained completion methods (ALTeC) into the cache",
    )
    f.add_argument("method", help="a trained method of the scenario (altec), or 'all'")
    f.add_argument("scenario")
    f.add_argument("--force", action="store_true", help="refit even if cached")
    return f


def cmd_fit(args) -> int:
    from dfsim.experiment.prepare import fit_method, prepare

    scn = load(args)
    trained = [m for m in scn.methods if m.build().needs_fit and args.method in ("all", m.name)]
    if not trained:
        which = "" if args.method == "all" else repr(args.method) + " "
        raise UserError(
            f"{args.scenario}: methods: no trained method {which}to fit (trained methods: altec)"
        )
    try:
        for k in range(len(scn.configs)):
            prep = prepare(scn, k)
            for spec in trained:
                for stream in range(len(prep.streams)):
                    fit_method(
                        spec.build(),
                        spec,
                        prep,
                        log=lambda m: print(m, file=sys.stderr),
                        force=args.force,
                        stream=stream,
                    )
    except UserError as exc:
        raise UserError(f"{args.scenario}: {exc}") from None
    return 0
