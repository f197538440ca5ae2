"""Tools around the simulator: the command line, benchmarks, examples, precompilation.

* :mod:`~dfsim.tools.cli`: the ``dfsim`` command;
* :mod:`~dfsim.tools.bench` and :mod:`~dfsim.tools.bench_codecs`: ``dfsim bench``;
* :mod:`~dfsim.tools.examples`: ``dfsim example``, one image through the pipeline, drawn;
* :mod:`~dfsim.tools.precompile`: compiling the numba kernels ahead of a run.
"""
