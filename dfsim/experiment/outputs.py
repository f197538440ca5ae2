"""A finished run's files: results.csv, manifest.json, summary.csv/.md, the standard figure,
devices.csv (several devices) and, on request, the loss patterns. Each file is written
atomically; results.csv last, so a directory with one holds a whole run."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from dfsim import reproducibility
from dfsim.errors import UserError
from dfsim.experiment import plots, statistics
from dfsim.experiment.checkpoint import Checkpoint
from dfsim.experiment.prepare import Prepared
from dfsim.experiment.results import (
    ResultsSchema,
    atomic_write,
    refresh_results_parquet,
    write_json,
    write_results_csv,
    write_table,
)
from dfsim.experiment.statistics import varying_config_keys
from dfsim.experiment.trial import transmit
from dfsim.transport.network import per_device

VERSIONED = (
    "dfsim",
    "numpy",
    "torch",
    "simpy",
    "scipy",
    "opencv-python-headless",
    "tensorly",
    "numba",
    "pyyaml",
    "matplotlib",
    "faster-coco-eval",
    "pytorch-msssim",
)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def references(preps: list[Prepared]) -> dict[str, float]:
    """Loss-free reference values of the task's primary metric, for the figure."""
    primary = preps[0].task.primary
    out = {"full model, no loss": preps[0].clean[primary]}
    several = len({p.split for p in preps}) > 1
    params = [dict(p.config.codec.params) for p in preps]
    # name a config by the coding parameters that vary (lossless codecs at one bit depth
    # share one line; the codec is named when two configs of a label differ)
    varying = [
        k
        for k in dict.fromkeys(k for d in params for k in d)
        if len({d.get(k) for d in params if k in d}) > 1
    ]
    if len({p.config.codec.name for p in preps}) == 1:
        varying = varying or list(params[0])
    for p, d in zip(preps, params, strict=True):
        where = f" at {p.split}" if several else ""
        coding = ", ".join(f"{k} {d[k]}" for k in varying if k in d)
        label = f"split model{where}{', ' + coding if coding else ''}, no loss"
        if out.get(label, p.quantized[primary]) != p.quantized[primary]:
            label = label.replace(", no loss", f", {p.config.codec.name}, no loss")
        out.setdefault(label, p.quantized[primary])
    return out


def manifest(scn, preps: list[Prepared], n_rows: int, elapsed: float, executor: str) -> dict:
    """The resolved scenario, versions, references, per-config packet figures and timing."""
    prep = preps[0]
    primary = prep.task.primary
    configs = [
        {
            **p.columns(),
            "feature_shape": [list(s.crossing.shape) for s in p.streams],
            "rows_per_packet_used": [s.layout.rows_per_packet for s in p.streams],
            "packets_per_image": p.packets_per_image,
            # coded bits plus one header per data packet (no parity or retransmissions)
            "wire_bits_per_image": p.coding["bits_per_image"]
            + 8 * scn.network.header_bytes * p.packets_per_image,
            **{k: v for k, v in p.coding.items() if k != "encode_ms_per_tensor"},
            f"quantized_{primary}": p.quantized[primary],
        }
        for p in preps
    ]
    return {
        "scenario": scn.resolved(),
        "scenario_file": scn.source,
        "seed": scn.seed,
        "versions": versions(),
        "machine": reproducibility.state(),
        "model": {
            "name": prep.model.name,
            "weights_sha256_16": prep.model.weights_id,
            "split": prep.split if len(preps) == 1 else [c["split"] for c in configs],
        },
        "task": prep.task.name,
        **({"tasks": tasks_section(prep)} if hasattr(prep.task, "shown") else {}),
        "reference": {
            **{f"clean_{k}": v for k, v in prep.clean.items()},
            **{f"quantized_{k}": v for k, v in prep.quantized.items()},
        },
        "configs": configs,
        "rows": n_rows,
        "wall_time_s": round(elapsed, 2),
        "executor": executor,
    }


def tasks_section(prep: Prepared) -> list[dict]:
    """The manifest's ``tasks`` (several tasks): each one's name, its metric columns, its
    primary and label-free columns, and its loss-free references (the first config's, as
    ``reference``)."""
    task = prep.task
    return [
        {
            "name": name,
            "columns": list(cols.values()),
            "primary": primary,
            "label_free": label_free,
            "reference": {
                **{f"clean_{c}": prep.clean[c] for c in cols.values() if c in prep.clean},
                **{f"quantized_{c}": prep.quantized[c] for c in cols.values()},
            },
        }
        for (name, primary, label_free), cols in zip(task.shown(), task.columns, strict=True)
    ]


def write_outputs(
    out: Path,
    scn,
    preps: list[Prepared],
    rows: list[dict],
    elapsed: float,
    executor: str,
    save_losses: bool = False,
) -> None:
    """Every file of a finished run (a write failure is a one-line error)."""
    schema = ResultsSchema.for_rows(preps[0].task, rows)
    try:
        out.mkdir(parents=True, exist_ok=True)
        standard_figure(out, schema, rows, references(preps))
        write_json(manifest(scn, preps, len(rows), elapsed, executor), out / "manifest.json")
        summary = statistics.summarize(rows, schema, scn.reference_method)
        write_table(summary, out / "summary.csv")
        text = summary_markdown(summary, schema, rows)
        atomic_write(out / "summary.md", lambda f: f.write(text + "\n"))
        if save_losses:
            save_loss_patterns(preps, out / "losses")
        if scn.network.devices > 1:
            write_device_table(preps, out / "devices.csv")
        write_results_csv(rows, schema, out / "results.csv")
        refresh_results_parquet(out, len(rows))  # a large run's fast copy, after the CSV
        Checkpoint.finish_dir(out)
    except OSError as exc:
        raise UserError(
            f"--out: cannot write results to {str(out)!r}: {exc.strerror or exc}"
        ) from None


def summary_markdown(summary: list[dict], schema: ResultsSchema, rows: list[dict]) -> str:
    """summary.md: the table of the task's shown metric; with several tasks, one table per
    task (its primary metric, or its label-free one without labels), each under its name."""
    shown = getattr(schema.task, "shown", None)
    if shown is None:
        return statistics.markdown_table(summary, schema, schema.shown_metric(rows))
    tables = []
    for name, primary, label_free in shown():
        metric = primary if schema.has_values(rows, primary) else label_free
        tables.append(f"## Task {name}\n\n{statistics.markdown_table(summary, schema, metric)}")
    return "\n\n".join(tables)


def standard_figure(
    out: Path,
    schema: ResultsSchema,
    rows: list[dict],
    reference: dict,
    formats: tuple[str, ...] = plots.FORMATS,
):
    """The task's primary metric against the loss rate when it has values (labelled data:
    ``accuracy_vs_loss`` for classification, ``METRIC_vs_loss_rate`` otherwise); else the
    label-free metric; in each of ``formats`` (PNG and SVG, as ``dfsim plot``). Returns
    the (closed) figure."""
    metric = schema.shown_metric(rows)
    # a codec grid: one panel per codec, or the lines would not be told apart
    panel = "codec" if "codec" in varying_config_keys(rows, schema) else None
    if metric == schema.task.primary:
        parts = getattr(schema.task, "parts", None)  # several tasks: the first one's
        classification = (parts[0][0] if parts else schema.task.name) == "classification"
        label = schema.metric(metric).label
        stem = "accuracy_vs_loss" if classification else f"{metric}_vs_loss_rate"
        title = f"{'Accuracy' if classification else label} vs packet loss "
        title += "(mean and 95 % CI over trials)"
    else:
        stem = f"{metric}_vs_loss_rate"
        title = "Agreement with the loss-free model vs packet loss (unlabelled images)"
        reference = None
    return plots.metric_plot(
        rows,
        schema,
        [out / f"{stem}.{f}" for f in formats],
        "loss_rate",
        metric,
        ("channel", "burst_length"),
        reference,
        title=title,
        panel=panel,
    )


def save_loss_patterns(preps: list[Prepared], directory) -> Path:
    """Write every (config, setting, trial)'s packet loss flags as ``.npy`` (bool, True =
    lost; image i's packets are ``[i*K, (i+1)*K)``) and an ``index.csv`` describing them.
    A file replays as a ``kind: trace`` channel."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    index = []
    for k, prep in enumerate(preps):
        scn = prep.scenario
        for ci, cell in enumerate(scn.cells):
            for trial in range(scn.trials):
                lost = transmit(prep, cell, trial).lost
                name = (
                    f"cfg{k:02d}_" if len(preps) > 1 else ""
                ) + f"cell{ci:03d}_trial{trial:03d}.npy"
                tmp = d / f".{name}.tmp.npy"
                np.save(tmp, lost)
                tmp.replace(d / name)
                index.append(
                    {
                        "file": name,
                        "channel": cell.kind,
                        "loss_rate": cell.loss_rate,
                        "burst_length": cell.burst_length,
                        "trial": trial,
                        "n_images": prep.n_images,
                        "packets_per_image": prep.packets_per_image,
                        **prep.columns(),
                        "realised_loss_rate": float(lost.mean()),
                    }
                )
    write_table(index, d / "index.csv")
    return d


def write_device_table(preps: list[Prepared], path) -> None:
    """devices.csv: latency and loss per (config, setting, trial, device). The transport is
    a pure function of (scenario, setting, trial), so it is rerun here."""
    rows = []
    for prep in preps:
        for cell in prep.scenario.cells:
            for trial in range(prep.scenario.trials):
                tx = transmit(prep, cell, trial)
                for d in per_device(tx, prep.packets_per_image):
                    rows.append(
                        {
                            **prep.columns(),
                            "channel": cell.kind,
                            "loss_rate": cell.loss_rate,
                            "burst_length": cell.burst_length,
                            "trial": trial,
                            **d,
                        }
                    )
    write_table(rows, Path(path))


def executor_text(workers: int | None, dask: str | None) -> str:
    return f"dask {dask}" if dask else f"{workers or os.cpu_count()} local processes"


def _manifest_of(directory: Path) -> dict | None:
    """A result directory's manifest, or None where there is none readable."""
    try:
        data = json.loads((Path(directory) / "manifest.json").read_text())
    except (OSError, ValueError, RecursionError):  # missing, damaged or absurdly nested
        return None
    return data if isinstance(data, dict) else None


def provenance_notes(out: Path) -> list[str]:
    """One-line notes for ``dfsim run`` before it starts: results may differ from other
    machines' (kernels not pinned), and the result being regenerated in ``out`` was made
    with other library versions or kernels."""
    notes = [n for n in [reproducibility.note()] if n]
    previous = _manifest_of(out)
    if previous is not None:
        now = {"versions": versions(), "machine": reproducibility.state()}
        diff = reproducibility.differences(previous, now)
        if diff:
            notes.append(
                f"{str(Path(out) / 'manifest.json')!r} was made with other libraries, "
                f"kernels or CPU ({'; '.join(diff)}): {reproducibility.consequence(diff)}"
            )
    return notes


def comparison_notes(dirs: list[str]) -> list[str]:
    """One line per result directory made with other library versions or kernels than the
    first one ``dfsim compare`` reads."""
    manifests = [(d, _manifest_of(Path(d))) for d in dirs]
    first, base = manifests[0]
    if base is None:
        return []
    notes = []
    for d, m in manifests[1:]:
        diff = reproducibility.differences(base, m) if m is not None else []
        if diff:
            notes.append(
                f"{d!r} was made with other libraries, kernels or CPU than {first!r} "
                f"({'; '.join(diff)}): {reproducibility.consequence(diff)}"
            )
    return notes
