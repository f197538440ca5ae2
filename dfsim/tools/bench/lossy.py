"""``dfsim bench lossy``: the lossy picture codecs (whole-tensor mode, 8 bits) on the
default model's features at its default split, at each effort setting and a few rates
(:data:`LOSSY_SETTINGS`): bits per tensor, PSNR, encode and decode time per tensor, and
what each effort setting costs in rate against dfsim's (the first) at the same knob. The
text it prints and writes is made by :mod:`.tables`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dfsim.tools.bench.cases import packet_rows
from dfsim.tools.bench.features import edge_features
from dfsim.tools.bench.tables import json_safe, lossy_setting_line, print_lossy

LOSSY_IMAGES = 6  # test images (tensors) per setting
# codec -> its knob and the values tried (finest first), the picture coder's effort
# attribute and its settings (dfsim's first; a label for each)
LOSSY_SETTINGS = {
    "hevc": {
        "knob": "qp",
        "values": (22, 32, 42),
        "attr": "preset",
        "efforts": (("ultrafast", "dfsim's"), ("medium", "x265's default")),
    },
    "avif": {
        "knob": "quality",
        "values": (80, 50, 20),
        "attr": "speed",
        "efforts": (
            (8, "dfsim's"),
            (6, "avifenc's default"),
            (None, "libavif's default: libaom's own"),
        ),
    },
    "jpeg-xl": {
        "knob": "quality",
        "values": (90, 60, 30),
        "attr": "effort",
        "efforts": ((3, "dfsim's"), (7, "libjxl's default")),
    },
    "jpeg": {
        "knob": "quality",
        "values": (90, 60, 20),
        "attr": None,
        "efforts": ((None, "libjpeg-turbo, baseline"),),
    },
}


def bench_lossy(args) -> dict:
    """Every setting of :data:`LOSSY_SETTINGS` (see the module docstring); prints the table
    and returns everything as a dict. ``args``: ``out`` (a directory: also write
    lossy-codecs.txt and lossy-codecs.json there), and for tests ``lossy_images`` (default
    :data:`LOSSY_IMAGES`) and ``lossy_settings`` (a subset of :data:`LOSSY_SETTINGS` in
    its form)."""
    import io
    from contextlib import redirect_stdout

    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import load_model
    from dfsim.transport.packets import PacketLayout

    t_start = time.perf_counter()
    n = int(getattr(args, "lossy_images", None) or LOSSY_IMAGES)
    settings = getattr(args, "lossy_settings", None) or LOSSY_SETTINGS
    model = load_model("fmnist-resnet")
    split = model.default_split
    feats = edge_features(model, split, load_fashion_mnist("test").head(n).images)
    c, h, w = feats.shape[1:]
    layout = PacketLayout.for_shape((c, h, w), packet_rows(h))
    result = _run_facts(model.name, split, [c, h, w], n)
    for name, spec in settings.items():
        for value in spec["values"]:
            for row in bench_lossy_knob(name, spec, value, feats, layout):
                result["rows"].append(row)
                print(lossy_setting_line(row), flush=True)
    result["summary"] = lossy_summary(result["rows"])
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    text = io.StringIO()
    with redirect_stdout(text):
        print_lossy(result)
    print()
    print(text.getvalue(), end="")
    out = getattr(args, "out", None)
    if out:
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        (d / "lossy-codecs.txt").write_text(text.getvalue())
        (d / "lossy-codecs.json").write_text(json.dumps(json_safe(result), indent=1) + "\n")
    return json_safe(result)


def _run_facts(model: str, split: str, shape: list[int], n: int) -> dict:
    """The result's head: the command, the machine and its load, what is coded; its
    ``rows`` still empty."""
    import datetime
    import os

    return {
        "command": command_line(),
        "cpu": lscpu_model(),
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "model": model,
        "split": split,
        "shape": shape,
        "images": n,
        "bits": 8,
        "mode": "tensor",
        "rows": [],
    }


def bench_lossy_knob(name: str, spec: dict, value, feats: np.ndarray, layout):
    """One codec at one knob value, at each of its effort settings: yields a row for each
    as it is measured, the first (dfsim's setting) the reference of the others."""
    from dfsim.registry import build

    rows = []
    for effort, note in spec["efforts"]:
        codec = build("codec", name, "encoding", **{spec["knob"]: value})
        if spec["attr"] is not None:
            setattr(codec.coder, spec["attr"], effort)  # this instance only
        r = bench_lossy_setting(codec, feats, layout)
        row = {
            "codec": name,
            "effort": effort_label(spec["attr"], effort, note),
            "knob": spec["knob"],
            "value": value,
            **r,
        }
        row["reference"] = not rows  # dfsim's setting: the others against it
        first = rows[0] if rows else row
        ratio = r["bits_per_tensor"] / first["bits_per_tensor"]
        row["rate_vs_first_pct"] = 100.0 * (ratio - 1)
        row["psnr_vs_first_db"] = r["psnr_db"] - first["psnr_db"]
        row["encode_vs_first"] = r["encode_ms"] / first["encode_ms"]
        rows.append(row)
        yield row


def effort_label(attr: str | None, value, note: str) -> str:
    """How an effort setting is named in the table: ``preset medium (x265's default)``."""
    if attr is None:
        return note
    return f"{attr} {'default' if value is None else value} ({note})"


def lscpu_model() -> str:
    """The CPU's model name as lscpu gives it (else /proc/cpuinfo's)."""
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            return value.strip()
    from dfsim.reproducibility import cpu_model

    return cpu_model()


def command_line() -> str:
    """The command that runs the benchmark, for the report's first line."""
    import shlex
    import sys

    if sys.argv[1:3] == ["bench", "lossy"]:  # dfsim's command line
        return shlex.join(["dfsim", *sys.argv[1:]])
    return "dfsim bench lossy (called from Python)"


def bench_lossy_setting(codec, features: np.ndarray, layout) -> dict:
    """One codec instance (its knob and effort set) on ``features`` (N x C x H x W), one
    tensor at a time as the simulator codes them: bits per tensor (the counted codestream
    plus the quantizer's min/max), fragments at the default MTU, PSNR against the
    unquantized features (as ``feature_psnr_db``), median encode and decode time per
    tensor (after a warm-up; fast settings repeated three times)."""
    from dfsim.codecs.accounting import distortion

    n = len(features)
    one = features[:1]
    # the coding itself: not an on-disk cache of codings in front of it, if there is one
    encode = getattr(codec, "_encode", codec.encode)
    encode(one, layout)  # warm-up: libraries load
    t0 = time.perf_counter()
    encode(one, layout)
    repeats = 1 if time.perf_counter() - t0 > 0.05 else 3
    enc_s, dec_s, bits, stream_bits, packets, decoded = [], [], [], [], [], []
    for i in range(n):
        x = features[i : i + 1]
        for _ in range(repeats):
            t0 = time.perf_counter()
            e = encode(x, layout)
            enc_s.append(time.perf_counter() - t0)
        received = np.ones((1, e.packets_per_image), bool)
        for _ in range(repeats):
            t0 = time.perf_counter()
            values, lost = codec.decode(e, received, e.side_info)
            dec_s.append(time.perf_counter() - t0)
        if lost.any():
            raise RuntimeError(f"{codec!r}: tensor {i} did not decode")
        bits.append(int(e.bits_per_image()[0]))
        stream_bits.append(int(e.packet_bits().sum()))
        packets.append(e.packets_per_image)
        decoded.append(values[0])
    dist = distortion([features], [np.stack(decoded)], camera=False)
    return {
        "images": n,
        "bits_per_tensor": float(np.mean(bits)),
        "stream_bits_per_tensor": float(np.mean(stream_bits)),
        "bits_per_element": float(np.mean(bits)) / features[0].size,
        "fragments": float(np.mean(packets)),
        "psnr_db": dist["feature_psnr_db"],
        "encode_ms": 1e3 * float(np.median(enc_s)),
        "decode_ms": 1e3 * float(np.median(dec_s)),
    }


def bd_rate(ref: list[dict], test: list[dict]) -> float | None:
    """Bjøntegaard delta rate (%) of ``test`` against ``ref`` on their (bits, PSNR)
    points: the rate change at the same PSNR; None when it cannot be had."""
    from dfsim.experiment.statistics import bd_rate as bd

    pts = [sorted((r["bits_per_tensor"], r["psnr_db"]) for r in rows) for rows in (ref, test)]
    if any(len(p) < 2 for p in pts):
        return None
    try:
        v = bd(*pts)
    except (ValueError, ZeroDivisionError):
        return None
    return float(v) if np.isfinite(v) else None


def lossy_summary(rows: list[dict]) -> list[dict]:
    """Per codec and effort setting other than dfsim's: mean rate change, PSNR change and
    encode-time factor against dfsim's setting at the same knob, over the knob values, and
    the rate change at the same PSNR (Bjøntegaard, over the same points)."""
    out = []
    for name in dict.fromkeys(r["codec"] for r in rows):
        mine = [r for r in rows if r["codec"] == name]
        efforts = list(dict.fromkeys(r["effort"] for r in mine))
        ref = [r for r in mine if r["effort"] == efforts[0]]
        for effort in efforts[1:]:
            sel = [r for r in mine if r["effort"] == effort]
            out.append(
                {
                    "codec": name,
                    "effort": effort,
                    "against": efforts[0],
                    "knob": sel[0]["knob"],
                    "values": [r["value"] for r in sel],
                    "rate_pct": float(np.mean([r["rate_vs_first_pct"] for r in sel])),
                    "psnr_db": float(np.mean([r["psnr_vs_first_db"] for r in sel])),
                    "encode_x": float(np.mean([r["encode_vs_first"] for r in sel])),
                    "bd_rate_pct": bd_rate(ref, sel),
                }
            )
    return out
