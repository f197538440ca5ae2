"""Where torch work runs: ``device: cpu | cuda`` (scenario key, ``dfsim run --device``).

Model passes (edge, cloud, full model) and torch-backed completion (batched singular-value
thresholding in SiLRTC and HaLRTC) run on the chosen device; everything else (network
simulation, codecs, numba and OpenCV methods) stays on the CPU. ``cuda`` and ``cuda:N``
need a CUDA build of torch and a visible GPU, else they are a one-line error.
"""

from __future__ import annotations

import re

from dfsim.errors import UserError

_current = "cpu"


def check(name, where: str = "device") -> str:
    """``name`` validated (``cpu``, ``cuda`` or ``cuda:N`` with a GPU present), or a
    one-line :class:`UserError` naming ``where``."""
    if not isinstance(name, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise UserError(f"{where}: expected cpu, cuda or cuda:N, got {name!r}")
    if name == "cpu":
        return name
    import torch  # only here: a CPU scenario is checked without importing torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise UserError(
            f"{where}: {name!r} needs a CUDA GPU, and torch {torch.__version__} ({build}) "
            "finds none; use cpu"
        )
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise UserError(
            f"{where}: {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
        )
    return name


def use(name: str) -> None:
    """Make ``name`` (already checked) this process's device for model passes."""
    global _current
    _current = name


def current():
    """This process's device (a ``torch.device``)."""
    import torch

    return torch.device(_current)


def gpu_available() -> bool:
    """Whether a CUDA GPU is visible (GPU tests and benchmarks skip without one)."""
    import torch

    return torch.cuda.is_available()
