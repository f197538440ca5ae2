"""Every committed figure, redrawn from the committed results (no simulation):
``python -m dfsim.tools.figures [--format png,svg,pdf] [--only DIR]``.

:data:`FIGURES` lists each result directory's figures: ``standard`` is the figure a run
draws itself (:func:`dfsim.experiment.outputs.standard_figure`, its loss-free references
read back from ``manifest.json``), and each other entry is the argument list of a
``dfsim plot`` command. The example images (``dfsim example``) run the model and are not
redrawn here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

STANDARD = "standard"
P = "results/paper"
_UNDER_LOSS = "--x kbpi --by channel,split,mode --panels loss_rate --methods linear"

# (result directories, arguments of `dfsim plot` or STANDARD); the first directory is where
# the figures go unless the arguments name --out
FIGURES: list[tuple[tuple[str, ...], str]] = [
    (("results/default",), STANDARD),
    (("results/default",), "--y agreement"),
    (("results/burst-grid",), STANDARD),
    (("results/burst-grid",), "--x burst_length --by channel --panels loss_rate"),
    *(
        entry
        for d in ("results/codecs", "results/codecs-narrow")
        for entry in (
            ((d,), STANDARD),
            ((d,), "--x kbpi --y latency_p95 --by codec"),
            ((d,), "--x kbpi --y deadline_loss_rate --by codec"),
            ((d,), "--x kbpi --by codec --panels loss_rate"),
        )
    ),
    (("results/deadline",), STANDARD),
    (("results/deadline",), "--y latency_p95 --by error_control,channel"),
    (("results/deadline",), "--y wire_bits_per_image --by error_control,channel"),
    (("results/deadline",), "--y top1 --by error_control,channel"),
    (("results/detection",), STANDARD),
    (("results/imagenet-efficientnet",), STANDARD),
    (("results/rate-accuracy",), STANDARD),
    (("results/rate-accuracy",), "--x kbpi --by codec --panels loss_rate"),
    (("results/reconstruction",), STANDARD),
    (("results/rd-allocation",), STANDARD),
    (("results/rd-allocation",), "--x kbpi --by bits_s1 --panels loss_rate --methods altec"),
    (("results/rd-two-tasks",), STANDARD),
    (("results/rd-two-tasks",), "--x kbpi --y ssim --by codec"),
    *(
        ((f"{P}/{s}",), STANDARD)
        for s in (
            "classifier",
            "classifier-retrained",
            "classifier-under-loss",
            "detection-cloud-only",
            "detection-lossless",
            "detection-lossy",
            "detection-lossy-retrained-add_1",
            "detection-lossy-retrained-add_2",
            "detection-under-loss",
            "efficientnet",
        )
    ),
    # Fig. 4: lossless feature coding at 8/10/12 bits, four split points, and cloud-only
    (
        (f"{P}/detection-lossless", f"{P}/detection-cloud-only"),
        f"--x kbpi --y map --by split,bits,codec --out {P}/fig4-detection",
    ),
    # Fig. 5: lossy HEVC at two split points, default and retrained weights, and cloud-only
    (
        (
            f"{P}/detection-cloud-only",
            f"{P}/detection-lossy",
            f"{P}/detection-lossy-retrained-add_1",
            f"{P}/detection-lossy-retrained-add_2",
        ),
        f"--x kbpi --y map --by split,codec --out {P}/fig5-detection",
    ),
    (
        (f"{P}/classifier", f"{P}/classifier-retrained"),
        f"--x kbpi --y top1 --by split,codec --out {P}/fig5-classifier",
    ),
    ((f"{P}/efficientnet",), "--x kbpi --y coding_agreement --by split,codec"),
    ((f"{P}/detection-under-loss",), f"--y map {_UNDER_LOSS}"),
    ((f"{P}/classifier-under-loss",), f"--y top1 {_UNDER_LOSS}"),
]


def manifest_references(directory: Path) -> dict[str, float]:
    """The loss-free references of a run's standard figure, from its ``manifest.json``
    (the same labels and values as :func:`dfsim.experiment.outputs.references`)."""
    from dfsim.experiment.outputs import references

    m = json.loads((Path(directory) / "manifest.json").read_text())
    primary = next(k[len("quantized_") :] for k in m["configs"][0] if k.startswith("quantized_"))
    clean = {k[len("clean_") :]: v for k, v in m["reference"].items() if k.startswith("clean_")}
    preps = []
    for c in m["configs"]:
        keys = list(c)
        coding = keys[keys.index("codec") + 1 : keys.index("rows_per_packet")]
        params = tuple((k, c[k]) for k in coding)
        preps.append(
            SimpleNamespace(
                task=SimpleNamespace(primary=primary),
                clean=clean,
                quantized={primary: c[f"quantized_{primary}"]},
                split=c["split"],
                config=SimpleNamespace(codec=SimpleNamespace(name=c["codec"], params=params)),
            )
        )
    return references(preps)


def draw(dirs: tuple[str, ...], spec: str, formats: tuple[str, ...], root: Path = Path(".")):
    """Draw one entry of :data:`FIGURES` (its files in ``formats``; none: drawn only);
    returns the matplotlib figures."""
    from dfsim.experiment import outputs
    from dfsim.tools.cli import plot as cli_plot
    from dfsim.tools.cli.common import read_result_dirs

    if spec != STANDARD:
        args = cli_plot.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
            [*(str(root / d) for d in dirs), *spec.split()]
        )
        if args.out:
            args.out = str(root / args.out)
        return cli_plot.draw(args, formats)[0]
    d = root / dirs[0]
    rows, schema = read_result_dirs([str(d)], each_has_rows=True)
    return [outputs.standard_figure(d, schema, rows, manifest_references(d), formats)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dfsim.tools.figures",
        description="redraw every committed figure from the committed results",
    )
    ap.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf")
    ap.add_argument("--only", help="only the figures of directories under this path")
    args = ap.parse_args(argv)
    formats = tuple(args.format.split(","))
    for dirs, spec in FIGURES:
        if args.only and not any(d.startswith(args.only.rstrip("/")) for d in dirs):
            continue
        draw(dirs, spec, formats)
        print(f"{' '.join(dirs)}: {spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
