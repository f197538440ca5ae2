"""How long ``dfsim.load`` takes on a large results directory, from results.csv and from
results.parquet.

It synthesises a results directory of ``--rows`` rows (default 10^5: 10 configs x 25
channel settings x 50 trials x 8 methods) with the real schema (the columns and types of
a classification run, the config columns of results/default), random metric values,
results.csv, results.parquet, summary.csv and a manifest as ``dfsim run`` writes them,
then times, each in a fresh process (imports and the component registry not counted),
``dfsim.load(d)`` followed by ``.trials`` and ``.summary``: with the Parquet file, with the
CSV alone, and the way
``dfsim.load`` read results before (every row parsed into a dict, the DataFrame built from
the dicts, the summary recomputed from them).

    .venv/bin/python benchmarks/load_results.py   # writes benchmarks/load-results.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("zeros", "linear", "nearest", "inpaint", "halrtc", "silrtc", "altec", "tucker")

TIMER = r"""
import sys, time
import pandas, dfsim
from dfsim.api import load
from dfsim.experiment.results import read_results_csv
from dfsim.registry import names
mode, d = sys.argv[1], sys.argv[2]
t = time.perf_counter()
names("task")  # the component registry (torch with it): once per process, whatever reads
registry_s = time.perf_counter() - t
t0 = time.perf_counter()
if mode == "before":  # the earlier dfsim.load: rows of dicts, then DataFrames from them
    from dfsim.experiment import statistics
    from dfsim.tools.cli.common import read_results
    rows, schema = read_results(d)
    trials = pandas.DataFrame.from_records(rows)
    t1 = time.perf_counter()
    summary = pandas.DataFrame(statistics.summarize(rows, schema, "zeros"))
else:
    res = load(d)
    trials = res.trials
    t1 = time.perf_counter()
    summary = res.summary
t2 = time.perf_counter()
print(f"{t1 - t0:.4f} {t2 - t1:.4f} {registry_s:.4f} {len(trials)} {len(summary)}")
"""


def synthesise(d: Path, n_rows: int, seed: int = 0) -> None:
    """A results directory of about ``n_rows`` rows as a classification run writes it."""
    from dfsim.experiment import statistics
    from dfsim.experiment.results import (
        ResultsSchema,
        write_json,
        write_results_csv,
        write_results_parquet,
        write_table,
    )
    from dfsim.registry import build

    rng = np.random.default_rng(seed)
    configs = [(bits, rpp) for bits in (2, 4, 6, 8, 10) for rpp in (2, 4)]
    cells = [(lr, bl) for lr in (0.0, 0.05, 0.1, 0.2, 0.3) for bl in (1.0, 2.0, 4.0, 8.0, 16.0)]
    trials = max(1, n_rows // (len(configs) * len(cells) * len(METHODS)))
    task = build("task", "classification", "task")
    metrics = [m.name for m in ResultsSchema(task, ()).metrics]
    rows = []
    for bits, rpp in configs:
        for lr, bl in cells:
            for trial in range(trials):
                for method in METHODS:
                    row = {
                        "method": method,
                        "channel": "iid" if bl == 1.0 else "gilbert_elliott",
                        "loss_rate": lr,
                        "burst_length": bl,
                        "trial": trial,
                        "n_images": 1000,
                    }
                    row.update({m: float(rng.random()) for m in metrics})
                    row["packets_per_image"] = 224
                    row.update(split="add_1", codec="raw", bits=bits, rows_per_packet=rpp)
                    row.update(order="row-major", error_control="none")
                    rows.append(row)
    schema = ResultsSchema.for_rows(task, rows)
    t = time.perf_counter()
    summary = statistics.summarize(rows, schema, "zeros")
    print(f"summarize() of {len(rows)} rows: {time.perf_counter() - t:.1f} s", flush=True)
    d.mkdir(parents=True, exist_ok=True)
    write_table(summary, d / "summary.csv")
    scenario = {"task": {"name": "classification"}, "reference_method": "zeros"}
    write_json({"scenario": scenario, "rows": len(rows)}, d / "manifest.json")
    write_results_csv(rows, schema, d / "results.csv")
    write_results_parquet(d / "results.csv", d / "results.parquet")


def timed(mode: str, d: Path, repeats: int) -> list[tuple[float, float, float]]:
    """(load + .trials, .summary, registry import) seconds of each of ``repeats`` fresh
    processes."""
    out = []
    for _ in range(repeats):
        p = subprocess.run(
            [sys.executable, "-c", TIMER, mode, str(d)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        load_s, summary_s, registry_s, *_ = p.stdout.split()
        out.append((float(load_s), float(summary_s), float(registry_s)))
    return out


def main() -> None:
    from dfsim.tools.bench import cpu_name

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/load-results.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dfsim-load-bench-") as tmp:
        pq_dir, csv_dir = Path(tmp) / "parquet", Path(tmp) / "csv"
        synthesise(pq_dir, args.rows)
        shutil.copytree(pq_dir, csv_dir)
        (csv_dir / "results.parquet").unlink()
        sizes = {n: (pq_dir / n).stat().st_size / 2**20 for n in ("results.csv", "results.parquet")}
        runs = {
            "`dfsim.load`, results.parquet": timed("load", pq_dir, args.repeats),
            "`dfsim.load`, results.csv alone": timed("load", csv_dir, args.repeats),
            "before: rows of dicts, summary recomputed": timed("before", csv_dir, 1),
        }
        n_rows = sum(1 for _ in open(pq_dir / "results.csv")) - 1
    lines = [
        "# Loading a large results directory",
        "",
        f"`.venv/bin/python benchmarks/load_results.py --rows {args.rows} "
        f"--repeats {args.repeats}`, {cpu_name()}, "
        f"{datetime.date.today().isoformat()}: a synthesised classification results "
        f"directory of {n_rows:,} rows ({len(METHODS)} methods; results.csv "
        f"{sizes['results.csv']:.1f} MiB, results.parquet {sizes['results.parquet']:.1f} "
        "MiB). Each time is one fresh process's, after its imports and its first use of "
        "the component registry (which imports every built-in component, torch with "
        "them, once per process whatever reads the results: its time is the last "
        "column); the best of the repeats, and all of them in brackets.",
        "",
        "| how | `dfsim.load(d)` + `.trials` | `.summary` | total | registry, once |",
        "|---|---:|---:|---:|---:|",
    ]
    for how, times in runs.items():
        best = min(times, key=lambda t: t[0] + t[1])
        every = ", ".join(f"{a + b:.2f}" for a, b, _ in times)
        lines.append(
            f"| {how} | {best[0]:.3f} s | {best[1]:.3f} s | {best[0] + best[1]:.3f} s "
            f"({every}) | {best[2]:.1f} s |"
        )
    lines += [
        "",
        "`.summary` reads summary.csv (which the run wrote from the same trials) and checks "
        "that it counts them; the earlier way recomputed it from the rows.",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)
    print(json.dumps(runs), file=sys.stderr)


if __name__ == "__main__":
    main()
