"""``dfsim scenarios``: the built-in scenarios, each with its own one-line description;
``dfsim scenarios show NAME``: one of them verbatim, to copy and edit (``dfsim run NAME``
runs it as it is)."""

from __future__ import annotations

import sys

from dfsim.errors import UserError


def add_parser(sub):
    """The ``scenarios`` subcommand and its options."""
    s = sub.add_parser(
        "scenarios", help="list the built-in scenarios; `scenarios show NAME`: one verbatim"
    )
    s.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    s.add_argument("name", nargs="?", help="a built-in scenario's name (show)")
    return s


def cmd_scenarios(args) -> int:
    from dfsim import builtin_scenarios

    if args.action == "show":
        if args.name is None:
            raise UserError("scenarios show: give a built-in scenario's name (`dfsim scenarios`)")
        sys.stdout.write(builtin_scenarios.text(args.name))
        return 0
    if args.name is not None:
        raise UserError(f"scenarios: unexpected {args.name!r} (did you mean `scenarios show`?)")
    known = builtin_scenarios.names()
    width = max(map(len, known), default=0)
    for name in known:
        print(f"{name:{width}s}  {builtin_scenarios.description(name)}")
    print("\n`dfsim run NAME` runs one; `dfsim scenarios show NAME` prints it to copy and edit.")
    return 0
