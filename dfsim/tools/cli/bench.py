"""``dfsim bench completion|model|network|codecs|lossy``: the benchmarks
(:mod:`dfsim.tools.bench`), with the device and torch threads they run on."""

from __future__ import annotations

import json
from pathlib import Path

from dfsim.errors import UserError


def add_parser(sub):
    """The ``bench`` subcommand and its options (each says which benchmarks read it)."""
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
    return b


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
