"""Where a run's time goes (``dfsim run --profile``).

Phases are timed with :func:`phase` (wall clock, ``time.perf_counter``) in the process that
runs them; numba's compilation is timed by a numba event listener (it happens inside other
phases, on first use of each compiled function, and is reported on its own line as part of
them). Each worker sends its phases back with every finished work unit; the table gives
them per process and in total. Profiling is off unless ``DFSIM_PROFILE=1`` (set by
``--profile``, inherited by worker processes); off, a phase costs one dictionary lookup.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict

ENV = "DFSIM_PROFILE"
NUMBA = "numba compilation (within the phases above)"
_totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
_numba = None
last_run: dict | None = None  # the last run's phases per process (set by the executor)


process_age_at_start = 0.0  # the main process's age when profiling was enabled


def process_age() -> float:
    """Seconds since this process started (Linux: /proc; elsewhere 0): interpreter start-up
    and imports before the run."""
    global process_age_at_start
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        age = max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        age = 0.0
    process_age_at_start = age
    return age


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def enable() -> None:
    """Profile this process and the workers it starts."""
    os.environ[ENV] = "1"
    _listen_numba()


def _listen_numba() -> None:
    global _numba
    if _numba is None:
        from numba.core import event

        _numba = event.TimingListener()
        event.register("numba:compile", _numba)


@contextlib.contextmanager
def phase(name: str):
    """Add the time spent in the block to phase ``name`` (when profiling)."""
    if not enabled():
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - t0)


def add(name: str, seconds: float, calls: int = 1) -> None:
    if enabled():
        tot = _totals[name]
        tot[0] += seconds
        tot[1] += calls


def take() -> dict[str, tuple[float, int]]:
    """This process's phases since the last call (and its numba compilation), then reset."""
    if not enabled():
        return {}
    _listen_numba()
    out = {k: (v[0], int(v[1])) for k, v in _totals.items()}
    if _numba is not None and _numba.done and _numba.duration:
        out[NUMBA] = (_numba.duration, 0)
        _numba._duration = 0.0
    _totals.clear()
    return out


def merge(into: dict, phases: dict) -> None:
    for k, (s, n) in phases.items():
        a = into.setdefault(k, [0.0, 0])
        a[0] += s
        a[1] += n


def table(per_process: dict[str, dict], wall_s: float) -> str:
    """Markdown: one column per process and the total, one row per phase (seconds)."""
    total: dict = {}
    for phases in per_process.values():
        merge(total, {k: tuple(v) for k, v in phases.items()})
    names = sorted((k for k in total if k != NUMBA), key=lambda k: -total[k][0])
    if NUMBA in total:
        names.append(NUMBA)
    procs = list(per_process)
    head = "| phase | " + " | ".join(procs) + " | total (s) | share | calls |"
    lines = [head, "|---|" + "---:|" * (len(procs) + 3)]
    busy = sum(v[0] for k, v in total.items() if k != NUMBA)
    for k in names:
        cells = [f"{per_process[p][k][0]:.2f}" if k in per_process[p] else "" for p in procs]
        share = f"{100 * total[k][0] / busy:.1f} %" if busy and k != NUMBA else ""
        calls = str(int(total[k][1])) if total[k][1] else ""
        lines.append(
            f"| {k} | " + " | ".join(cells) + f" | {total[k][0]:.2f} | {share} | {calls} |"
        )
    lines += [
        "",
        f"Wall time {wall_s:.1f} s; process time in the phases {busy:.1f} s "
        "(processes run in parallel; the shares are of the phases' sum).",
    ]
    return "\n".join(lines)
