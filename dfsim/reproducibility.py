"""The same numbers on any x86 machine: every library whose CPU kernels change the result
by instruction set runs at one fixed level, x86-64-v3 (AVX2 + FMA).

torch's convolutions (oneDNN), its BLAS and LAPACK (MKL) and its own vectorised loops, and
numpy's BLAS (OpenBLAS) and dispatched loops each pick kernels by what the CPU offers; an
AVX-512 machine sums in another order than an AVX2 one and the last digits differ, then
quantized values, packet sizes and accuracies follow. Each library has its own setting for
this, read from the environment when it loads, so :func:`apply` sets them when dfsim is
imported, before numpy or torch is (worker processes inherit them):

==========================  =====================  =========================================
variable                    value                  what it fixes
==========================  =====================  =========================================
``ONEDNN_MAX_CPU_ISA``      ``AVX2``               torch's convolutions (oneDNN)
``MKL_CBWR``                ``AVX2``               torch's BLAS/LAPACK (MKL's conditional
                                                   numerical reproducibility)
``ATEN_CPU_CAPABILITY``     ``avx2``               torch's own vectorised kernels
``NPY_DISABLE_CPU_FEATURES`` AVX-512 targets       numpy's dispatched loops
``OPENBLAS_CORETYPE``       ``Haswell``            numpy's and scipy's BLAS kernels
``OPENBLAS_NUM_THREADS``    ``1``                  BLAS sums split by thread count
==========================  =====================  =========================================

A value already in the environment is replaced (and said so in the manifest): the point
is that every machine runs the same kernels. numba's kernels need no setting: they are
compiled without floating-point reassociation, so the vector width does not change a
result (the tests run them for a baseline target and for this CPU and compare).

``DFSIM_KERNELS=native`` leaves every library to choose (results then agree with other
machines only to a tolerance). A CPU below x86-64-v3 (AVX2, FMA, BMI2, MOVBE) cannot run
the pinned kernels: the libraries then choose, the manifest says ``exact: false`` and
``dfsim run`` says so in one line. What the pins cost and what they change is measured
in ``benchmarks/reproducibility.md``.
"""

from __future__ import annotations

import os
import platform
import sys

LEVEL = "x86-64-v3"
PINS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy >= 2.4's names
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "1",
}
# the libraries that read a pin when they load: a pin set after them may come too late
READ_AT_LOAD = ("numpy", "scipy", "torch")
_REQUIRED_FLAGS = ("avx", "avx2", "fma", "bmi2", "movbe")

_state: dict | None = None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module says."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def _cpuinfo() -> dict[str, str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if out:  # the first processor's block is enough
                break
            continue
        out.setdefault(key.strip(), value.strip())
    return out


def isa_level(flags: set[str] | None = None) -> str:
    """The CPU's x86-64 micro-architecture level (``x86-64-v1`` .. ``v4``), or the machine
    name on other architectures."""
    if flags is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return platform.machine()
        flags = set(_cpuinfo().get("flags", "").split())
    if not flags:
        return "unknown"
    if not {"sse4_2", "popcnt", "ssse3", "cx16"} <= flags:
        return "x86-64-v1"
    if not set(_REQUIRED_FLAGS) <= flags:
        return "x86-64-v2"
    if not {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags:
        return "x86-64-v3"
    return "x86-64-v4"


def apply() -> dict:
    """Set the pins (once per process, at ``import dfsim``); returns :func:`state`."""
    global _state
    if _state is not None:
        return _state
    level = isa_level()
    requested = os.environ.get("DFSIM_KERNELS", "portable").strip().lower() or "portable"
    state = {
        "cpu": cpu_model(),
        "isa_level": level,
        "kernels": "native",
        "exact": False,
        "settings": {},
        "replaced": {},
        "reason": "",
    }
    if requested == "native":
        state["reason"] = "DFSIM_KERNELS=native: every library chooses its kernels"
    elif requested != "portable":
        state["reason"] = (
            f"DFSIM_KERNELS={requested!r} is not portable or native: ignored, kernels pinned"
        )
        requested = "portable"
    if requested == "portable":
        if level == "unknown":
            state["reason"] = (
                f"this CPU's instruction sets are unknown (no /proc/cpuinfo), so the {LEVEL} "
                "kernels that make results identical across machines are not pinned"
            )
        elif level not in ("x86-64-v3", "x86-64-v4"):
            state["reason"] = (
                f"this CPU ({level}) cannot run the {LEVEL} kernels that make results "
                "identical across machines"
            )
        else:
            late = [m for m in READ_AT_LOAD if m in sys.modules]
            for key, value in _pins().items():
                old = os.environ.get(key)
                if old is not None and old != value:
                    state["replaced"][key] = old
                os.environ[key] = value
            state.update(kernels=LEVEL, exact=not late, settings=_pins())
            if late:
                state["reason"] = (
                    f"{', '.join(late)} was imported before dfsim: import dfsim first for "
                    "results identical across machines"
                )
    for key in PINS:  # what the libraries actually read, pinned or not
        state["settings"].setdefault(key, os.environ.get(key))
    _state = state
    return state


def _pins() -> dict[str, str]:
    """:data:`PINS`, less numpy's dispatch setting where the installed numpy predates the
    target names it uses (an older numpy refuses names it does not know)."""
    from importlib import metadata

    try:
        major, minor = (int(x) for x in metadata.version("numpy").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        major, minor = 0, 0
    if (major, minor) >= (2, 4):
        return dict(PINS)
    return {k: v for k, v in PINS.items() if k != "NPY_DISABLE_CPU_FEATURES"}


def state() -> dict:
    """This process's kernel settings: CPU model and level, pinned or native, and why not
    exact where results may differ from other machines (for the manifest)."""
    return apply()


def note() -> str | None:
    """One line for ``dfsim run`` when results may differ from other machines', or when a
    ``DFSIM_KERNELS`` value was not understood (the kernels are then pinned); else None."""
    s = state()
    if s["exact"]:
        return s["reason"] or None
    return f"results may differ in the last digits from other machines': {s['reason']}"


def differences(previous: dict, current: dict) -> list[str]:
    """What differs between two manifests' library versions and kernel settings, as short
    phrases (``numpy 2.4.6 -> 2.5.0``, ``kernels native -> x86-64-v3``)."""
    out = []
    old_v, new_v = previous.get("versions", {}), current.get("versions", {})
    for pkg in sorted(set(old_v) | set(new_v)):
        if pkg != "dfsim" and old_v.get(pkg) != new_v.get(pkg):
            out.append(f"{pkg} {old_v.get(pkg, 'absent')} -> {new_v.get(pkg, 'absent')}")
    old_m, new_m = previous.get("machine") or {}, current.get("machine") or {}
    if not old_m:
        out.append("machine not recorded before")
    else:
        for key in ("kernels", "exact"):
            if old_m.get(key) != new_m.get(key):
                out.append(f"{key} {old_m.get(key)} -> {new_m.get(key)}")
        if old_m.get("cpu") != new_m.get("cpu"):
            out.append(f"CPU {old_m.get('cpu')!r} -> {new_m.get('cpu')!r}")
    return out


def consequence(diff: list[str]) -> str:
    """What :func:`differences` mean for the numbers: nothing where only the CPU changed
    and both runs pinned their kernels (the point of the pins), else the last digits."""
    if all(d.startswith("CPU ") for d in diff) and state()["exact"]:
        return f"both pinned their kernels to {LEVEL}, so the numbers should agree"
    return "numbers may differ in the last digits"
