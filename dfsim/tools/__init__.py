"""Tools around the simulator: the command line, benchmarks, examples, precompilation.

* :mod:`~dfsim.tools.cli`: the ``dfsim`` command, one module per subcommand;
* :mod:`~dfsim.tools.bench`: ``dfsim bench``, one module per benchmark measuring and
  :mod:`~dfsim.tools.bench.tables` formatting (:mod:`~dfsim.tools.bench_codecs` keeps the
  names of the former codec-benchmark module);
* :mod:`~dfsim.tools.examples`: ``dfsim example``, one image through the pipeline, drawn;
* :mod:`~dfsim.tools.precompile`: compiling the numba kernels ahead of a run;
* :mod:`~dfsim.tools.reference`: the scenario reference page, generated from the registry.
"""
