"""Figures."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dfsim.results import mean_ci95  # noqa: E402

CHANNEL_LABELS = {"iid": "i.i.d.", "gilbert-elliott": "Gilbert-Elliott"}
LINESTYLES = {"iid": "-", "gilbert-elliott": "--"}


def accuracy_vs_loss(rows: list[dict], path: Path, reference: dict | None = None, metric: str = "top1") -> None:
    """Mean ``metric`` vs packet loss rate with a 95 % interval over trials.

    One line per (method, channel setting); Gilbert-Elliott lines are split by mean
    burst length. ``reference`` may hold horizontal lines (label -> accuracy).
    """
    groups: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        burst = "" if r["channel"] == "iid" else f", burst {r['burst_length']:g}"
        groups[(r["method"], r["channel"], burst)][r["loss_rate"]].append(r[metric])
    methods = sorted({k[0] for k in groups})
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for (method, channel, burst), by_loss in sorted(groups.items()):
        xs = sorted(by_loss)
        stats = [mean_ci95(by_loss[x]) for x in xs]
        mean = [100 * s[0] for s in stats]
        half = [100 * s[2] for s in stats]
        label = f"{method} — {CHANNEL_LABELS.get(channel, channel)}{burst}"
        c = colours[method]
        ax.plot([100 * x for x in xs], mean, LINESTYLES.get(channel, ":"), marker="o", ms=3.5, color=c, label=label)
        ax.fill_between([100 * x for x in xs], [m - h for m, h in zip(mean, half)],
                        [m + h for m, h in zip(mean, half)], color=c, alpha=0.18, lw=0)
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(100 * value, color="0.35", lw=0.9, ls=(0, (1, 2 + i)), label=f"{label} ({100 * value:.2f} %)")
    ax.set_xlabel("packet loss rate (%)")
    ax.set_ylabel("top-1 accuracy (%)" if metric == "top1" else "top-1 agreement with loss-free model (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title("Accuracy vs packet loss (mean and 95 % CI over trials)", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
