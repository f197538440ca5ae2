"""``dfsim example SCENARIO``: one image through the pipeline at one loss rate, repaired
by a few methods, drawn (:mod:`dfsim.tools.examples`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dfsim.errors import UserError
from dfsim.tools.cli.common import load


def add_parser(sub, limits):
    """The ``example`` subcommand and its options."""
    ex = sub.add_parser(
        "example",
        parents=[limits],
        help="one image through the pipeline at one loss rate, repaired by a few methods",
    )
    ex.add_argument("scenario")
    ex.add_argument("--loss", type=float, default=0.3, help="a loss rate of the scenario")
    ex.add_argument("--methods", help="methods to show besides zeros (default: the first two)")
    ex.add_argument("--image", type=int, help="image index (default: one that lost 25-50 %%)")
    ex.add_argument("--trial", type=int, default=0)
    ex.add_argument("--out", help="PNG (default: example.png in the scenario's output)")
    return ex


def cmd_example(args) -> int:
    from dfsim.tools.examples import example_figure

    scn = load(args)
    # commas inside a label's parentheses (halrtc(max_iters=50,tol=0.001)) do not split
    methods = re.findall(r"(?:[^,(]|\([^)]*\))+", args.methods) if args.methods else None
    if args.trial < 0:
        raise UserError(f"--trial: must be >= 0, got {args.trial}")
    out = Path(args.out) if args.out else Path(scn.output) / "example.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        shown = example_figure(scn, out, args.loss, methods, args.image, args.trial)
    except UserError as exc:
        raise UserError(f"{args.scenario}: {exc}") from None
    print(json.dumps(shown, indent=1))
    print(f"dfsim: wrote {out}")
    return 0
