"""The ``dfsim`` command line.

    dfsim run SCENARIO.yaml [--out DIR] [--quiet] [--workers N | --dask ADDRESS] [--dry-run]
                            [--save-losses] [--profile] [--max-configs N] [--max-units N]
    dfsim fit METHOD|all SCENARIO.yaml [--force]
    dfsim plot DIR [DIR ...] [--x loss_rate|burst_length|kbpi] [--y METRIC] [--by F,...]
               [--panels F] [--methods M,...] [--out DIR]
    dfsim compare DIR... [--metric METRIC] [--reference METHOD]
    dfsim example SCENARIO [--loss P] [--methods A,B] [--image K] [--out PNG]
    dfsim train [--model fmnist-resnet|fmnist-detector|fmnist-mirror] [--epochs N]
                [--seed S] [--out PATH]
                [--augment-split SPLIT --augment-codec NAME --augment-rates R,...
                 [--augment-loss-rates P,... [--augment-fill zeros|linear]] ...]
    dfsim evaluate [--model NAME] [--weights PATH]
    dfsim bench completion|model|network|codecs|lossy [--json PATH] [...]
    dfsim models [describe MODEL [--import P:F --weights W --input-size C,H,W]]

User mistakes (bad scenario, missing file) print one line ``dfsim: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from dfsim.errors import UserError, one_line


def _load(args):
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


def cmd_run(args) -> int:
    scn = _load(args)
    if args.device is not None:
        from dfsim import devices

        scn = dataclasses.replace(scn, device=devices.check(args.device, "--device"))
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be >= 1, got {args.workers}")
    out = Path(args.out or scn.output)
    check_output_dir(out, "--out" if args.out else f"{args.scenario}: output")
    if args.dry_run:
        return _dry_run(scn, out)
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


def _dry_run(scn, out: Path) -> int:
    """Print the configs, settings and the work a run would do; validate model and data."""
    from dfsim.experiment import build_model, load_images
    from dfsim.experiment.checkpoint import PARTIAL
    from dfsim.experiment.prepare import build_task

    try:
        shapes, models = {}, {}
        for cfg in scn.configs:  # one model per split point; every config's packets checked
            if cfg.split not in models:
                model, split = build_model(scn, cfg)
                build_task(scn, model, split)  # a task that needs this model and split checks it
                models[cfg.split] = model
            model, split = build_model(scn, cfg, models[cfg.split])
            shapes[cfg] = (
                split,
                " + ".join("x".join(map(str, t.shape)) for t in model.crossing(split)),
            )
        load_images(scn, model.input_shape)
    except UserError as exc:
        raise UserError(f"{scn.source}: {exc}") from None
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
    done = len(list((out / PARTIAL).glob("unit-*.json"))) if (out / PARTIAL).is_dir() else 0
    print(f"output: {out}" + (f" ({done} units already done: a run would resume)" if done else ""))
    return 0


def _read_results(d: str):
    """A result directory's rows and their schema: the task (and the plugins that may
    register it) from its manifest; classification for a directory without one."""
    import json

    from dfsim.experiment.results import ResultsSchema, read_results_csv
    from dfsim.experiment.scenario import load_plugins
    from dfsim.registry import build

    path, manifest = Path(d) / "results.csv", Path(d) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{d}: no results.csv (run `dfsim run` with --out {d} first)")
    scenario = {}
    if manifest.is_file():
        try:
            scenario = json.loads(manifest.read_text()).get("scenario", {})
        except (ValueError, OSError, AttributeError, RecursionError) as exc:
            raise UserError(f"{manifest}: not a dfsim manifest ({exc})") from None
    load_plugins(scenario.get("plugins") or ())
    task = dict(scenario.get("task") or {"name": "classification"})
    task = build("task", task.pop("name"), f"{manifest}: task", **task)
    try:
        rows = read_results_csv(path)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path}: not a dfsim results file ({exc})") from None
    return rows, ResultsSchema.for_rows(task, rows)


def _metric_name(schema, rows, given: str | None, option: str) -> str:
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


def cmd_compare(args) -> int:
    from dfsim.experiment import statistics
    from dfsim.experiment.outputs import comparison_notes

    rows, schema = [], None
    for line in comparison_notes(args.dirs):
        print(f"dfsim: note: {line}", file=sys.stderr)
    for d in args.dirs:
        part, schema = _read_results(d)
        if len(args.dirs) > 1:
            for r in part:
                r["method"] = f"{Path(d).name}:{r['method']}"
        rows.extend(part)
    if not rows:
        raise UserError(f"{', '.join(args.dirs)}: results.csv has no rows")
    schema = type(schema).for_rows(schema.task, rows)  # every directory's config columns
    reference = args.reference
    if reference and reference not in {r["method"] for r in rows}:
        raise UserError(f"--reference: {reference!r} is not a method in these results")
    metric = _metric_name(schema, rows, args.metric, "--metric")
    if args.gain:
        lo, hi = _loss_range(args.loss_range)
        ref = reference or ("zeros" if any(r["method"] == "zeros" for r in rows) else None)
        if ref is None:
            raise UserError("--gain: name the method to measure gains against with --reference")
        gains = statistics.average_gain(rows, schema, metric, ref, (lo, hi))
        if not gains:
            raise UserError(
                f"--gain: no channel family has two or more loss rates in {lo:g}-{hi:g} "
                f"with {ref!r} results (--loss-range)"
            )
        print(statistics.gain_table(gains, schema, metric, lo, hi))
        return 0
    if args.bd_rate:
        curves = args.curves or ("method" if len(args.dirs) > 1 else "codec")
        fields = ("method", *schema.config_columns)
        if curves == "codec" and len({r.get("codec") for r in rows}) < 2:
            raise UserError(
                f"--bd-rate: {', '.join(args.dirs)} has one codec: name the field whose "
                "values are the curves with --curves"
            )
        for f in statistics.curve_fields(curves):
            if f not in fields:
                raise UserError(f"--curves: unknown field {f!r} (one of {', '.join(fields)})")
        if not schema.has_values(rows, args.rate):
            raise UserError(f"--rate: {args.rate!r} has no values in these results")
        try:
            print(statistics.bd_rate_table(rows, schema, metric, args.rate, curves, args.anchor))
        except KeyError:
            raise UserError(
                f"--anchor: {args.anchor!r} is not a {curves} in these results"
            ) from None
        return 0
    summary = statistics.summarize(rows, schema, reference)
    print(statistics.markdown_table(summary, schema, metric))
    return 0


def _loss_range(text: str) -> tuple[float, float]:
    """``LO,HI`` loss rates (fractions) with 0 <= LO < HI <= 1."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--loss-range: {text!r} is not LO,HI (e.g. 0,0.3)") from None
    if not 0 <= lo < hi <= 1:
        raise UserError(f"--loss-range: {text!r} needs 0 <= LO < HI <= 1")
    return lo, hi


def cmd_example(args) -> int:
    import json

    from dfsim.tools.examples import example_figure

    scn = _load(args)
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


def cmd_plot(args) -> int:
    from dfsim.experiment import plots

    dirs = args.dir
    if len(dirs) > 1 and not args.out:
        raise UserError("--out: several directories need a directory for their figures")
    d = Path(args.out or dirs[0])
    rows, schema = [], None
    for one in dirs:
        part, schema = _read_results(one)
        if not part:
            raise UserError(f"{Path(one) / 'results.csv'}: has no rows")
        if len(dirs) > 1:  # as in compare: each line says which directory it is from
            for r in part:
                r["method"] = f"{Path(one).name}:{r['method']}"
        rows.extend(part)
    if args.methods:
        wanted = args.methods.split(",")
        known = list(dict.fromkeys(r["method"] for r in rows))
        for m in wanted:
            if m not in known:
                raise UserError(
                    f"--methods: {m!r} is not a method of these results ({', '.join(known)})"
                )
        rows = [r for r in rows if r["method"] in wanted]
    schema = type(schema).for_rows(schema.task, rows)  # every directory's config columns
    y = _metric_name(schema, rows, args.y, "--y")
    fields = plots.group_fields(schema)
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
    stem = d / (f"{args.y or y}_vs_{args.x}" + (f"_by_{args.panels}" if args.panels else ""))
    out = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    bars = [d / "completion_time.png", d / "completion_time.svg"]
    try:
        plots.metric_plot(rows, schema, out, args.x, y, by, panel=args.panels)
        plots.completion_time_bars(rows, bars)
    except OSError as exc:
        raise UserError(f"{d}: cannot write figures: {exc.strerror or exc}") from None
    print("\n".join(str(p) for p in out + bars))
    return 0


def cmd_fit(args) -> int:
    from dfsim.experiment.prepare import fit_method, prepare

    scn = _load(args)
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


TRAINABLE = {
    # --model: (module with its train(), module with its WEIGHTS_FILE)
    "fmnist-resnet": ("dfsim.models.training", "dfsim.models.fmnist_resnet"),
    "fmnist-detector": ("dfsim.models.training_detector", "dfsim.models.fmnist_detector"),
    "fmnist-mirror": ("dfsim.models.fmnist_mirror", "dfsim.models.fmnist_mirror"),
}


def cmd_train(args) -> int:
    import importlib

    import torch

    if args.threads < 1:
        raise UserError(f"--threads: must be >= 1, got {args.threads}")
    if args.augment_split is not None:
        return _train_augmented(args)
    for option, value in _augment_options(args):
        if value is not None:
            raise UserError(f"{option}: only with --augment-split (compression-augmented training)")
    trainer = importlib.import_module(TRAINABLE[args.model][0])
    defaults = importlib.import_module(TRAINABLE[args.model][1])
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else defaults.WEIGHTS_FILE
    kw = {"seed": args.seed, "data_dir": args.data_dir}
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    result = trainer.train(out, **kw)
    scores = ", ".join(
        f"{k} {v:.4f}" for k, v in result.items() if k not in ("seconds", "epochs", "seed")
    )
    print(
        f"dfsim: trained {args.model} for {result.get('epochs', '?')} epochs in "
        f"{result['seconds']:.0f} s ({scores}); weights in {out}"
    )
    return 0


def _augment_options(args) -> list[tuple[str, object]]:
    """The ``--augment-*`` options besides ``--augment-split``, with their values."""
    return [
        (f"--{k.replace('_', '-')}", v)
        for k, v in vars(args).items()
        if k.startswith("augment_") and k != "augment_split"
    ]


def _train_augmented(args) -> int:
    """``dfsim train --augment-split ...``: fine-tune from the committed weights with the
    split features coded (dfsim.models.augmented_training)."""
    import torch

    from dfsim.models import augmented_training as at

    if args.model not in at.MODELS:
        raise UserError(
            f"--model: compression-augmented training is for {' and '.join(at.MODELS)}, "
            f"not {args.model}"
        )
    aug = at.parse_augmentation(
        args.augment_split,
        args.augment_codec,
        args.augment_rates,
        args.augment_loss_rates,
        args.augment_fill,
        4 if args.augment_rows_per_packet is None else args.augment_rows_per_packet,
    )
    if args.augment_eval_images is not None and args.augment_eval_images < 1:
        raise UserError(f"--augment-eval-images: must be >= 1, got {args.augment_eval_images}")
    out = Path(args.out) if args.out else at.default_out(args.model, aug)
    torch.set_num_threads(args.threads)
    result = at.finetune(
        args.model,
        out,
        aug,
        epochs=1 if args.epochs is None else args.epochs,
        images=args.augment_images,
        lr=args.augment_lr,
        seed=args.seed,
        data_dir=args.data_dir,
        eval_images=args.augment_eval_images,
    )
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k not in ("seconds", "epochs"))
    print(
        f"dfsim: fine-tuned {args.model} with its {args.augment_split} features coded by "
        f"{args.augment_codec} for {result['epochs']} epoch{'s' * (result['epochs'] != 1)} in "
        f"{result['seconds']:.0f} s "
        f"({scores}); weights in {out}"
    )
    return 0


def cmd_evaluate(args) -> int:
    from dfsim.models import load_model
    from dfsim.models.inference import prepare_for_inference, run_batched

    if args.scenes < 1:
        raise UserError(f"--scenes: must be >= 1, got {args.scenes}")
    if args.model == "fmnist-mirror":
        return _evaluate_mirror(args)
    model = load_model(args.model, weights=args.weights)
    t0 = time.perf_counter()
    full = prepare_for_inference(model.full())
    if getattr(model, "postprocess", None) is not None:  # a detector: its fmnist-scenes test set
        from dfsim.data.scenes import FashionScenes
        from dfsim.tasks.detection import Detection

        test = FashionScenes(scenes=args.scenes, dir=args.data_dir).load(model.input_shape)
        task = Detection()
        task.bind(model, model.default_split)
        pred = task.predict(run_batched(full, model.normalise(test.images), 250))
        scores = {
            k: v for k, v in task.evaluate(pred, pred, test.boxes).items() if k != "agreement"
        }
    else:
        from dfsim.data.datasets import load_fashion_mnist

        test = load_fashion_mnist("test", args.data_dir)
        pred = run_batched(full, model.normalise(test.images), 1000).argmax(axis=1)
        scores = {"top1": float((pred == test.labels).mean())}
    print(
        json.dumps(
            {
                "model": model.name,
                "images": len(test),
                **scores,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    )
    return 0


def _evaluate_mirror(args) -> int:
    """The reconstruction mirror without loss: mean PSNR and SSIM of its images of the
    Fashion-MNIST test set's 8-bit quantized ``add_1`` features."""
    import torch

    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import fmnist_mirror as mirror
    from dfsim.models import load_model

    # the features come from the installed fmnist-resnet's edge
    classifier = load_model("fmnist-resnet").weights_id
    net = mirror.load_mirror(args.weights, key="--weights", classifier_id=classifier)
    t0 = time.perf_counter()
    test = load_fashion_mnist("test", args.data_dir)
    recon = mirror.reconstruct(net, mirror.quantized_features(test.images))
    psnr, ssim = mirror.psnr_ssim(recon, torch.from_numpy(test.images).float() / 255.0)
    scores = {"psnr": psnr, "ssim": ssim, "seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps({"model": "fmnist-mirror", "images": len(test.images), **scores}))
    return 0


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
        m = from_import_path(args.import_path or args.model, args.weights, shape, (0.0,), (1.0,))
    else:
        m = load_model(args.model, **({"weights": args.weights} if args.weights else {}))
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


def cmd_bench(args) -> int:
    from dfsim import devices
    from dfsim.tools import bench

    args.device = devices.check(args.device, "--device")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads: must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    devices.use(args.device)

    result = bench.run(args.what, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def cmd_precompile(args) -> int:
    from dfsim.tools.precompile import precompile

    seconds = precompile()
    if not args.quiet:
        print(f"dfsim: numba kernels compiled and cached in {seconds:.0f} s", file=sys.stderr)
    return 0


def _limit_options() -> argparse.ArgumentParser:
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


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and option. Long, but declarative: one call per option."""
    p = argparse.ArgumentParser(prog="dfsim", description="Deep-feature transmission simulator.")
    sub = p.add_subparsers(dest="command", required=True)
    limits = _limit_options()

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
        "--dry-run", action="store_true", help="print the cells and the work; run nothing"
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
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("compare", help="print the summary table of one or more result directories")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    c.add_argument(
        "--metric",
        help="a metric column of the results (default: the task's "
        "primary metric, e.g. top1; agreement without labels)",
    )
    c.add_argument(
        "--reference", help="method for the paired test (default: zeros, else the first)"
    )
    c.add_argument(
        "--bd-rate",
        action="store_true",
        help="Bjontegaard-delta rate between rate-metric curves instead of the summary",
    )
    c.add_argument(
        "--curves",
        help="--bd-rate: the field whose values are the curves (default: codec; with several "
        "directories: method, i.e. directory:method); several comma-separated fields name a "
        "curve by their values joined by / (--curves split,codec --anchor input/hevc)",
    )
    c.add_argument(
        "--rate",
        default="kbpi",
        choices=("kbpi", "bits_per_image", "bpp", "bits_per_element", "wire_bits_per_image"),
        help="--bd-rate: the rate column (default kbpi)",
    )
    c.add_argument("--anchor", help="--bd-rate: the reference curve (default: the first)")
    c.add_argument(
        "--gain",
        action="store_true",
        help="average gain of each method over --reference (default zeros) across a loss "
        "range: area between the metric-vs-loss curves / the range's width, paired by trial",
    )
    c.add_argument("--loss-range", default="0,0.3", help="--gain: LO,HI loss rates (default 0,0.3)")
    c.set_defaults(func=cmd_compare)

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
    ex.set_defaults(func=cmd_example)

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
        choices=("loss_rate", "burst_length", "kbpi", "bits_per_image", "bpp", "bits_per_element"),
        help="x axis: the channel's loss rate or burst length, or a rate (rate-accuracy)",
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
    pl.set_defaults(func=cmd_plot)

    f = sub.add_parser(
        "fit",
        parents=[limits],
        help="fit a scenario's trained completion methods (ALTeC) into the cache",
    )
    f.add_argument("method", help="a trained method of the scenario (altec), or 'all'")
    f.add_argument("scenario")
    f.add_argument("--force", action="store_true", help="refit even if cached")
    f.set_defaults(func=cmd_fit)

    t = sub.add_parser(
        "train", help="train a built-in model into its committed weights file (deterministic)"
    )
    t.add_argument(
        "--model",
        choices=sorted(TRAINABLE),
        default="fmnist-resnet",
        help="the default classifier, the fmnist-scenes detector, or the reconstruction mirror",
    )
    t.add_argument(
        "--epochs",
        type=int,
        help="default: the model's own (classifier 12, detector 8, mirror at most 8)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument(
        "--out", help="weights file (default: the model's committed file in dfsim/models/weights)"
    )
    t.add_argument("--data-dir")
    a = t.add_argument_group(
        "compression-augmented training",
        "fine-tune the model from its committed weights with the features at a split point "
        "coded and decoded at a rate drawn per batch (Choi & Bajic), optionally with packet "
        "loss; the weights go to dfsim/models/weights/<model>_cat_<codec>_<split>[_loss].pt "
        "unless --out says otherwise (default --epochs 1)",
    )
    a.add_argument("--augment-split", metavar="SPLIT", help="turns it on: the split point")
    a.add_argument("--augment-codec", metavar="NAME", help="hevc, avif, jpeg-xl, jpeg or raw")
    a.add_argument(
        "--augment-rates",
        metavar="R,...",
        help="the codec's rate knob (hevc: qp, avif/jpeg-xl/jpeg: quality, raw: bits), one "
        "drawn per batch; 'lossless' is the 8-bit quantizer alone (e.g. lossless,22,27,32,37)",
    )
    a.add_argument(
        "--augment-loss-rates",
        metavar="P,...",
        help="also lose i.i.d. row packets at a rate drawn per batch from these (in [0, 1))",
    )
    a.add_argument(
        "--augment-fill", metavar="METHOD", help="lost packets' fill: zeros (default) or linear"
    )
    a.add_argument(
        "--augment-rows-per-packet", type=int, metavar="N", help="rows per lost packet (default 4)"
    )
    a.add_argument(
        "--augment-images",
        type=int,
        metavar="N",
        help="training images (classifier, default 60000) or scenes (detector, default 8000) "
        "per epoch",
    )
    a.add_argument(
        "--augment-lr",
        type=float,
        metavar="LR",
        help="initial learning rate, cosine-decayed to 0 (default: a tenth of training's, "
        "0.005 SGD / 2e-4 AdamW)",
    )
    a.add_argument(
        "--augment-eval-images",
        type=int,
        metavar="N",
        help="first N test images (default 2000) or held-out scenes (default 500) scored "
        "after each epoch and coded at each rate before and after",
    )
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate",
        help="the full model without loss: top-1 on the Fashion-MNIST test set, a "
        "detector's COCO mAP on fmnist-scenes test scenes, or the reconstruction mirror's "
        "PSNR/SSIM on the Fashion-MNIST test set",
    )
    e.add_argument(
        "--model",
        default="fmnist-resnet",
        help="a registered model, or fmnist-mirror (default: fmnist-resnet)",
    )
    e.add_argument("--scenes", type=int, default=1000, help="detector: test scenes")
    e.add_argument("--weights")
    e.add_argument("--data-dir")
    e.set_defaults(func=cmd_evaluate)

    m = sub.add_parser("models", help="list models; `models describe MODEL`: its split points")
    m.add_argument("action", nargs="?", choices=("list", "describe"), default="list")
    m.add_argument("model", nargs="?", help="built-in name, or package.module:factory")
    m.add_argument("--import", dest="import_path", help="package.module:factory of your own model")
    m.add_argument("--weights", help="state dict file")
    m.add_argument("--input-size", help="C,H,W (models given by import path)")
    m.set_defaults(func=cmd_models)

    b = sub.add_parser(
        "bench",
        help="benchmarks: completion methods, cloud sub-model, network simulation, codecs, "
        "lossy codecs",
    )
    b.add_argument("what", choices=("completion", "model", "network", "codecs", "lossy"))
    b.add_argument("--json", help="also write the result as JSON")
    b.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="model/network: time per measurement; codecs: time per codec, split and mode",
    )
    b.add_argument(
        "--shape",
        help="completion: synthetic tensor shape CxHxW only (default: the default model's "
        "real features and a synthetic 64x56x56)",
    )
    b.add_argument(
        "--rows-per-packet", type=int, help="completion: default 4 (real features), 8 (synthetic)"
    )
    b.add_argument("--loss", type=float, default=0.33, help="completion: Gilbert-Elliott loss rate")
    b.add_argument(
        "--burst", type=float, default=4.0, help="completion: mean burst length (packets)"
    )
    b.add_argument("--methods", help="completion: comma-separated subset (default: all)")
    b.add_argument(
        "--repeats", type=int, default=20, help="completion: tensors timed one by one (median)"
    )
    b.add_argument(
        "--batch", type=int, default=256, help="completion: batch for the throughput figure"
    )
    b.add_argument(
        "--threads",
        type=int,
        help="completion/model: torch threads (default: torch's, all cores; a run's worker "
        "processes use 1 each)",
    )
    b.add_argument(
        "--device", default="cpu", help="completion/model: cpu, cuda or cuda:N (default cpu)"
    )
    b.add_argument("--images", type=int, default=100, help="codecs: test images per split")
    b.add_argument("--bits", type=int, default=8, help="codecs: quantizer bits")
    b.add_argument(
        "--out",
        help="codecs: also write DIR/reproductions.md and DIR/bench.json; lossy: "
        "DIR/lossy-codecs.txt and DIR/lossy-codecs.json",
    )
    b.set_defaults(func=cmd_bench)

    pc = sub.add_parser(
        "precompile",
        help="compile dfsim's numba kernels into numba's cache (setup.sh runs it once)",
    )
    pc.add_argument("--quiet", action="store_true")
    pc.set_defaults(func=cmd_precompile)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:  # one line, whatever the key or value in it holds
        print(one_line(f"dfsim: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "dfsim: interrupted (finished work units are kept: rerun the same command to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
