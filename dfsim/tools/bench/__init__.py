"""Benchmarks (``dfsim bench ...``): the figures quoted in the docs come from here.

One module per benchmark measures and returns its numbers; :mod:`.tables` turns numbers
into the lines, tables and JSON they print and write:

* :mod:`.model`: ``dfsim bench model``, the cloud sub-model's images per second;
* :mod:`.network`: ``dfsim bench network``, the SimPy network model's packets per second;
* :mod:`.completion`: ``dfsim bench completion``, each completion method's time and error;
* :mod:`.codecs`: ``dfsim bench codecs``, the lossless codecs and their anchors, on the
  split points of :mod:`.cases`, with the papers' tables of :mod:`.reproductions`;
* :mod:`.lossy`: ``dfsim bench lossy``, the lossy picture codecs at each effort setting;
* :mod:`.features` (the tensors measured on) and :mod:`.timing` (how things are timed)
  serve them all.
"""

from __future__ import annotations

from dfsim.reproducibility import cpu_model as cpu_name  # benchmarks name the CPU
from dfsim.tools.bench.codecs import command as bench_codecs
from dfsim.tools.bench.completion import bench_completion
from dfsim.tools.bench.features import synthetic_features
from dfsim.tools.bench.lossy import bench_lossy
from dfsim.tools.bench.model import bench_model
from dfsim.tools.bench.network import bench_network

__all__ = [
    "BENCHES",
    "bench_codecs",
    "bench_completion",
    "bench_lossy",
    "bench_model",
    "bench_network",
    "cpu_name",
    "run",
    "synthetic_features",
]

# ``dfsim bench WHAT``: each takes the parsed arguments, prints, and returns the result
BENCHES = {
    "model": bench_model,
    "network": bench_network,
    "completion": bench_completion,
    "codecs": bench_codecs,
    "lossy": bench_lossy,
}


def run(what: str, args) -> dict:
    """Run the benchmark ``what`` (a key of :data:`BENCHES`) with the command's arguments."""
    return BENCHES[what](args)
