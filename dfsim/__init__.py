"""dfsim."""

# First, before numpy or torch loads: every library's CPU kernels at one instruction-set
# level, so the same scenario gives the same numbers on any x86 machine.
from dfsim import reproducibility as _reproducibility

_reproducibility.apply()

from dfsim import _moved  # noqa: E402  (after the kernels are pinned)

_moved.install()
