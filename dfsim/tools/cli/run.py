"""``dfsim run SCENARIO.yaml``: run a scenario (or, with ``--dry-run``, say what a run
would do) and write results.csv, manifest.json and the figures."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from dfsim.errors import UserError
from dfsim.tools.cli.common import check_output_dir, load


def add_parser(sub, limits):
    """The ``run`` subcommand and its options."""
    r = sub.add_parser(
        "run",
        parents=[limits],
        help="run a scenario: results.csv, manifest.json, accuracy_vs_loss.png",
    )
    r.add_argument("scenario")
    r.add_argument("--out", help="output directory (default: the scenario's 'output')")
    r.add_argument(
        "--profile",
        action="store_true",
        help="time every phase of the run, per process (profile.md in the output directory)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the cells and the work, and estimate the wall time from a short "
        "calibration on a sample of the images; run nothing",
    )
    r.add_argument(
        "--no-estimate",
        action="store_true",
        help="with --dry-run: skip the calibration and its wall-time estimate",
    )
    r.add_argument(
        "--dask",
        metavar="SCHEDULER_ADDRESS",
        help="run the work units on a Dask distributed cluster (same results as local)",
    )
    r.add_argument(
        "--save-losses",
        action="store_true",
        help="also write each (setting, trial)'s packet loss flags to DIR/losses/*.npy + index.csv",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: all cores); results do not depend on it",
    )
    r.add_argument(
        "--device",
        help="cpu, cuda or cuda:N for model passes and torch-backed completion "
        "(default: the scenario's device, else cpu)",
    )
    return r


def cmd_run(args) -> int:
    scn = load(args)
    if args.device is not None:
        from dfsim import devices

        scn = dataclasses.replace(scn, device=devices.check(args.device, "--device"))
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be >= 1, got {args.workers}")
    out = Path(args.out or scn.output)
    check_output_dir(out, "--out" if args.out else f"{args.scenario}: output")
    if args.dry_run:
        return dry_run(scn, out, args.workers, estimate=not args.no_estimate)
    from dfsim.experiment.outputs import provenance_notes

    for line in provenance_notes(out):
        print(f"dfsim: note: {line}", file=sys.stderr)
    from dfsim import experiment  # after the checks: a refused scenario does not wait for it
    from dfsim.experiment.outputs import executor_text, write_outputs

    dask = args.dask or scn.dask_scheduler
    if args.profile:
        from dfsim.experiment import profiling

        profiling.enable()
        profiling.add("start-up and imports (main process)", profiling.process_age())
    t0 = time.perf_counter()
    bar = _progress(scn, args.quiet)
    try:
        rows, preps = experiment.run(
            scn,
            progress=bar.update if bar else None,
            log=None if args.quiet else (lambda m: print(m, file=sys.stderr)),
            workers=args.workers,
            checkpoint_dir=out,
            dask=dask,
        )
    except UserError as exc:  # found while loading the model or data: still the scenario's fault
        raise UserError(f"{args.scenario}: {exc}") from None
    finally:
        if bar:
            bar.close()
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    write_outputs(
        out, scn, preps, rows, elapsed, executor_text(args.workers, dask), args.save_losses
    )
    if args.profile:
        _write_profile(out, args, time.perf_counter() - t1, time.perf_counter() - t0)
    if not args.quiet:
        refs = ", ".join(f"{k} {v:.4f}" for k, v in preps[0].quantized.items())
        print(
            f"dfsim: wrote {len(rows)} rows to {out / 'results.csv'} in {elapsed:.1f} s "
            f"(loss-free split model: {refs})",
            file=sys.stderr,
        )
    return 0


def _progress(scn, quiet: bool):
    """A progress bar on a terminal; else one line saying what runs."""
    if quiet:
        return None
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=scn.n_units, desc=scn.name, unit="trial", file=sys.stderr)
    grid = f"{len(scn.configs)} configs x " if len(scn.configs) > 1 else ""
    print(
        f"dfsim: {scn.name}: {grid}{len(scn.cells)} channel settings x {scn.trials} trials x "
        f"{len(scn.methods)} methods on {scn.data.n_images} images",
        file=sys.stderr,
    )
    return None


def _write_profile(out: Path, args, writing_s: float, wall_s: float) -> None:
    """``profile.md`` in the output directory, and the table on stdout."""
    from dfsim.experiment import profiling

    per = profiling.last_run or {"main": {}}
    profiling.merge(per.setdefault("main", {}), profiling.take())
    profiling.merge(per["main"], {"result writing": (writing_s, 1)})
    text = (
        f"# Profile of `dfsim run {args.scenario} --profile"
        + (f" --workers {args.workers}" if args.workers else "")
        + "`\n\n"
        + profiling.table(per, wall_s + profiling.process_age_at_start)
        + "\n"
    )
    (out / "profile.md").write_text(text)
    print(text)


def dry_run(scn, out: Path, workers: int | None = None, estimate: bool = True) -> int:
    """Print the configs, settings and the work a run would do; validate model and data;
    with ``estimate``, estimate the wall time from a short calibration
    (:mod:`dfsim.experiment.estimate`)."""
    shapes, model = _check_models_and_data(scn)
    units = scn.n_units
    print(
        f"scenario {scn.name!r}: model {model.name}, {scn.data.n_images} images, "
        f"task {scn.task.name}"
    )
    print(f"{len(scn.configs)} config{'s' if len(scn.configs) > 1 else ''}:")
    for cfg in scn.configs:
        split, shape = shapes[cfg]
        print(f"  split {split} ({shape}), {cfg.describe(with_split=False)}")
    print(f"{len(scn.cells)} channel settings:")
    for c in scn.cells:
        print(
            f"  {c.kind:16s} loss {c.loss_rate:<6g} mean burst {c.burst_length:<8.4g} {c.channel!r}"
        )
    print(f"{len(scn.methods)} methods: {', '.join(m.label for m in scn.methods)}")
    print(
        f"{len(scn.configs)} configs x {len(scn.cells)} settings x {scn.trials} trials = "
        f"{units} work "
        f"units; at most {units * len(scn.methods) * scn.data.n_images:,} tensor completions and "
        "cloud passes"
    )
    print(f"output: {out}" + _resume_note(out))
    if estimate:
        print(_estimate_line(scn, workers), flush=True)
    return 0


def _estimate_line(scn, workers: int | None) -> str:
    """The estimated wall time, or one line saying why there is none."""
    from dfsim.experiment.estimate import calibrate

    try:
        return calibrate(scn, workers).line()
    except Exception as exc:  # noqa: BLE001 - a dry run reports, it does not fail on this
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"estimated wall time: not available (the calibration could not run: {why})"


def _check_models_and_data(scn):
    """Build each split point's model once and the task that needs it, check every
    config's packets, load the images: what a run would refuse, refused now. Returns each
    config's (split, crossing shapes) and the last model built."""
    from dfsim.experiment import build_model, load_images
    from dfsim.experiment.prepare import build_task, check_streams

    try:
        shapes, models = {}, {}
        for cfg in scn.configs:  # one model per split point; every config's packets checked
            if cfg.split not in models:
                model, split = build_model(scn, cfg)
                build_task(scn, model, split)  # a task that needs this model and split checks it
                models[cfg.split] = model
            model, split = build_model(scn, cfg, models[cfg.split])
            check_streams(cfg, model.crossing(split), split)
            shapes[cfg] = (
                split,
                " + ".join("x".join(map(str, t.shape)) for t in model.crossing(split)),
            )
        load_images(scn, model.input_shape)
    except UserError as exc:
        raise UserError(f"{scn.source}: {exc}") from None
    return shapes, model


def _resume_note(out: Path) -> str:
    """Words for the units a run in ``out`` already finished (empty when none)."""
    from dfsim.experiment.checkpoint import PARTIAL

    done = len(list((out / PARTIAL).glob("unit-*.json"))) if (out / PARTIAL).is_dir() else 0
    return f" ({done} units already done: a run would resume)" if done else ""
