"""What several commands share: loading a scenario within the grid limits, checking an
output directory before any work, and reading result directories back."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

from dfsim.errors import UserError


def limit_options() -> argparse.ArgumentParser:
    """``--max-configs`` / ``--max-units``: the size of grid a command takes (checked from
    the scenario's lists before anything is built)."""
    from dfsim.limits import MAX_CONFIGS, MAX_UNITS

    lim = argparse.ArgumentParser(add_help=False)
    lim.add_argument(
        "--max-configs",
        type=int,
        default=MAX_CONFIGS,
        metavar="N",
        help=f"refuse a grid of more than N configs (default {MAX_CONFIGS})",
    )
    lim.add_argument(
        "--max-units",
        type=int,
        default=MAX_UNITS,
        metavar="N",
        help="refuse a scenario of more than N work units, configs x channel settings x "
        f"trials (default {MAX_UNITS})",
    )
    return lim


def load(args):
    """The command's scenario, with the limits of ``--max-configs`` / ``--max-units``."""
    from dfsim.experiment.scenario import load_scenario

    for option, value in (("--max-configs", args.max_configs), ("--max-units", args.max_units)):
        if value < 1:
            raise UserError(f"{option}: must be >= 1, got {value}")
    return load_scenario(args.scenario, args.max_configs, args.max_units)


def check_output_dir(out: Path, option: str = "--out") -> None:
    """A directory that can be created (if missing) and written to, checked before any
    work by doing it: the missing directories are made, a file is written in the deepest,
    and both are removed again, so that nothing is left behind."""
    shown = f"{option}: {str(out)!r}"
    if out.exists() and not out.is_dir():
        raise UserError(f"{shown} exists and is not a directory")
    made = []
    try:
        for p in reversed([out, *out.parents]):
            if p.is_dir():
                continue
            if p.exists() or p.is_symlink():
                raise UserError(f"{shown} is below {str(p)!r}, which is not a directory")
            p.mkdir()
            made.append(p)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UserError(
            f"{shown} is not writable ({exc.strerror or type(exc).__name__}; checked before "
            "running)"
        ) from None
    finally:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()


def read_results(d: str):
    """A result directory's rows and their schema: the task (and the plugins that may
    register it) from its manifest; classification for a directory without one."""
    from dfsim.experiment.results import ResultsSchema, read_manifest, read_results_csv

    path = Path(d) / "results.csv"
    if not path.is_file():
        raise UserError(f"{d}: no results.csv (run `dfsim run` with --out {d} first)")
    _, task = read_manifest(d)
    try:
        rows = read_results_csv(path)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path}: not a dfsim results file ({exc})") from None
    return rows, ResultsSchema.for_rows(task, rows)


def read_result_dirs(dirs: list[str], each_has_rows: bool = False) -> tuple[list[dict], object]:
    """The rows of several result directories and the schema of the last; with more than
    one, each row's method is named ``DIR:method`` (DIR's last part). ``each_has_rows``:
    a directory without rows is an error."""
    rows, schema = [], None
    for d in dirs:
        part, schema = read_results(d)
        if each_has_rows and not part:
            raise UserError(f"{Path(d) / 'results.csv'}: has no rows")
        if len(dirs) > 1:
            for r in part:
                r["method"] = f"{Path(d).name}:{r['method']}"
        rows.extend(part)
    return rows, schema


def metric_name(schema, rows, given: str | None, option: str) -> str:
    """The metric column ``given`` names (by name or short name), checked to be in
    ``rows``; the task's shown metric when none is given."""
    if given is None:
        return schema.shown_metric(rows)
    try:
        name = schema.metric(given).name
    except KeyError:
        name = None
    present = [m.name for m in schema.metrics if any(m.name in r for r in rows)]
    if name is None or name not in present:
        raise UserError(
            f"{option}: {given!r} is not a metric of these results (one of {', '.join(present)})"
        )
    return name


def numbers(values, option: str) -> list[float]:
    """The numbers of an option given as comma-separated text (one string, or several
    for a repeatable option), each part checked: a one-line error names the part."""
    out = []
    for v in [values] if isinstance(values, str) else values or ():
        for part in str(v).split(","):
            try:
                out.append(float(part))
            except ValueError:
                raise UserError(f"{option}: {part.strip()!r} is not a number") from None
    return out
