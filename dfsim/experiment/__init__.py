"""The run machinery: a scenario file in, a results directory out.

* :mod:`~dfsim.experiment.scenario`: scenario files read and validated against the registry,
  into the spec classes of :mod:`~dfsim.experiment.specs`, with the lists a scenario sweeps
  expanded by :mod:`~dfsim.experiment.grids`;
* :mod:`~dfsim.experiment.prepare`: the deterministic, cached pass of one config
  (:class:`Prepared`), in steps: the split model and task
  (:mod:`~dfsim.experiment.model_and_task`), images and edge features
  (:mod:`~dfsim.experiment.features`), the encoded tensors
  (:mod:`~dfsim.experiment.encoding`), batched model passes
  (:mod:`~dfsim.experiment.inference`), completion methods (trained ones fitted);
* :mod:`~dfsim.experiment.trial`: one work unit (config, channel setting, trial) ->
  :class:`UnitResult`: transport, receiver, every method's completion, cloud and task;
* :mod:`~dfsim.experiment.executors`: units on this process, local worker processes or a
  Dask cluster, with crash-safe checkpoints (:mod:`~dfsim.experiment.checkpoint`);
* :mod:`~dfsim.experiment.outputs`: the run's files (results, manifest, summary, figures),
  through :mod:`~dfsim.experiment.results`, :mod:`~dfsim.experiment.statistics` and
  :mod:`~dfsim.experiment.plots`;
* :mod:`~dfsim.experiment.profiling`: where a run's time goes (``--profile``).

The names below load on first use, so a module of this package can be imported without
the whole run machinery.
"""

import importlib

_EXPORTS = {
    "run": "dfsim.experiment.executors",
    "Prepared": "dfsim.experiment.prepare",
    "build_model": "dfsim.experiment.prepare",
    "load_images": "dfsim.experiment.prepare",
    "prepare": "dfsim.experiment.prepare",
    "UnitResult": "dfsim.experiment.trial",
    "run_trial": "dfsim.experiment.trial",
    "transmit": "dfsim.experiment.trial",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dfsim.experiment' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
