"""The ``dfsim`` command line.

    dfsim run SCENARIO.yaml|NAME [--out DIR] [--quiet] [--workers N | --dask ADDRESS] [--dry-run]
                            [--save-losses] [--profile] [--max-configs N] [--max-units N]
    dfsim fit METHOD|all SCENARIO.yaml [--force]
    dfsim plot DIR [DIR ...] [--x loss_rate|burst_length|kbpi] [--y METRIC] [--by F,...]
               [--panels F] [--methods M,...] [--out DIR]
    dfsim compare DIR... [--metric METRIC] [--reference METHOD] [--allow-mixed]
    dfsim example SCENARIO [--loss P] [--methods A,B] [--image K] [--out PNG]
    dfsim train [--model fmnist-resnet|fmnist-detector|fmnist-mirror] [--epochs N]
                [--seed S] [--out PATH]
                [--augment-split SPLIT --augment-codec NAME --augment-rates R,...
                 [--augment-loss-rates P,... [--augment-fill zeros|linear]] ...]
    dfsim evaluate [--model NAME] [--weights PATH]
    dfsim bench completion|model|network|codecs|lossy [--json PATH] [...]
    dfsim models [describe MODEL [--import P:F --weights W --input-size C,H,W]]
    dfsim scenarios [show NAME]
    dfsim fit-rd DIR [--rate COL[,COL...]] [--metric METRIC] [--loss P] [--method M] [--by F,...]
                 [--json] [--out DIR]
    dfsim --version

A bare ``dfsim`` prints this help.

Each command is a module of this package (``dfsim run``: :mod:`.run`, ...) with its
``add_parser`` (the subcommand's options) and its ``cmd_*`` (what it does); :mod:`.common`
has what several share. User mistakes (bad scenario, missing file) print one line
``dfsim: error: ...`` and exit 2; a scenario with several mistakes prints one such line
for each.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dfsim.errors import UserError, one_line
from dfsim.tools.cli import (
    bench,
    compare,
    evaluate,
    example,
    fit,
    fit_rd,
    models,
    plot,
    precompile,
    run,
    scenarios,
    train,
)
from dfsim.tools.cli.bench import cmd_bench
from dfsim.tools.cli.common import check_output_dir, limit_options
from dfsim.tools.cli.compare import cmd_compare
from dfsim.tools.cli.evaluate import cmd_evaluate
from dfsim.tools.cli.example import cmd_example
from dfsim.tools.cli.fit import cmd_fit
from dfsim.tools.cli.fit_rd import cmd_fit_rd
from dfsim.tools.cli.models import cmd_models
from dfsim.tools.cli.plot import cmd_plot
from dfsim.tools.cli.precompile import cmd_precompile
from dfsim.tools.cli.run import cmd_run
from dfsim.tools.cli.scenarios import cmd_scenarios
from dfsim.tools.cli.train import TRAINABLE, cmd_train

__all__ = [
    "TRAINABLE",
    "build_parser",
    "check_output_dir",
    "cmd_bench",
    "cmd_compare",
    "cmd_evaluate",
    "cmd_example",
    "cmd_fit",
    "cmd_fit_rd",
    "cmd_models",
    "cmd_plot",
    "cmd_precompile",
    "cmd_run",
    "cmd_scenarios",
    "cmd_train",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand, in the order ``dfsim --help`` lists them. Each module adds its
    own options; the function a subcommand calls is this module's ``cmd_*`` of that name
    when the parser is built (so that replacing ``dfsim.tools.cli.cmd_compare`` reaches
    the command line)."""
    p = argparse.ArgumentParser(prog="dfsim", description="Deep-feature transmission simulator.")
    p.add_argument("--version", action="version", version=f"dfsim {version()}")
    sub = p.add_subparsers(dest="command")  # none: main prints the help
    limits = limit_options()  # --max-configs / --max-units, for the commands that load a grid
    run.add_parser(sub, limits).set_defaults(func=cmd_run)
    compare.add_parser(sub).set_defaults(func=cmd_compare)
    example.add_parser(sub, limits).set_defaults(func=cmd_example)
    plot.add_parser(sub).set_defaults(func=cmd_plot)
    fit.add_parser(sub, limits).set_defaults(func=cmd_fit)
    train.add_parser(sub).set_defaults(func=cmd_train)
    evaluate.add_parser(sub).set_defaults(func=cmd_evaluate)
    models.add_parser(sub).set_defaults(func=cmd_models)
    scenarios.add_parser(sub).set_defaults(func=cmd_scenarios)
    fit_rd.add_parser(sub).set_defaults(func=cmd_fit_rd)
    bench.add_parser(sub).set_defaults(func=cmd_bench)
    precompile.add_parser(sub).set_defaults(func=cmd_precompile)
    return p


def version() -> str:
    """The installed dfsim's version; ``pyproject.toml``'s in a checkout that is not
    installed."""
    from importlib import metadata

    try:
        return metadata.version("dfsim")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, ValueError, KeyError):
            return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `dfsim`: what it can do
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except UserError as exc:  # one line per error, whatever the key or value in it holds
        for message in getattr(exc, "errors", None) or (str(exc),):
            print(one_line(f"dfsim: error: {message}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "dfsim: interrupted (finished work units are kept: rerun the same command to resume)",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # the reader went away (`dfsim compare ... | head`): not an error
        # stdout's buffer cannot be flushed any more; point it at nothing so exit is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
