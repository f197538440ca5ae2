"""dfsim: a deep-feature transmission simulator for collaborative intelligence.

A CNN split between an edge device and the cloud: the edge quantizes and encodes the feature
tensor and sends it in row packets over a lossy network; the cloud decodes what arrived,
repairs the lost rows with tensor completion and finishes inference. The package reads as the
pipeline:

* the contracts every part shares: :mod:`dfsim.stages` (the stage interfaces),
  :mod:`dfsim.registry` (components by name, their declared parameters),
  :mod:`dfsim.errors`, :mod:`dfsim.cache`, :mod:`dfsim.reproducibility`;
* the stages in data-flow order: :mod:`dfsim.data`, :mod:`dfsim.models`,
  :mod:`dfsim.codecs`, :mod:`dfsim.transport`, :mod:`dfsim.completion`, :mod:`dfsim.tasks`;
* the run machinery, :mod:`dfsim.experiment` (scenario files to results directories), and
  the tools, :mod:`dfsim.tools` (the ``dfsim`` command, benchmarks);
* :mod:`dfsim.testing`, the conformance checks for your own components.
"""

# First, before numpy or torch loads: every library's CPU kernels at one instruction-set
# level, so the same scenario gives the same numbers on any x86 machine.
from dfsim import reproducibility as _reproducibility

_reproducibility.apply()

from dfsim import _moved  # noqa: E402  (after the kernels are pinned)

_moved.install()

# The notebook API (dfsim.api), loaded on first use: `import dfsim` stays quick.
_API = ("run", "load", "example", "Results")


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module("dfsim.api"), name)
    raise AttributeError(f"module 'dfsim' has no attribute {name!r}")
