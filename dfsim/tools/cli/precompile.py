"""``dfsim precompile``: compile dfsim's numba kernels into numba's cache
(:mod:`dfsim.tools.precompile`; setup.sh runs it once)."""

from __future__ import annotations

import sys


def add_parser(sub):
    """The ``precompile`` subcommand and its options."""
    pc = sub.add_parser(
        "precompile",
        help="compile dfsim's numba kernels into numba's cache (setup.sh runs it once)",
    )
    pc.add_argument("--quiet", action="store_true")
    return pc


def cmd_precompile(args) -> int:
    from dfsim.tools.precompile import precompile

    seconds = precompile()
    if not args.quiet:
        print(f"dfsim: numba kernels compiled and cached in {seconds:.0f} s", file=sys.stderr)
    return 0
