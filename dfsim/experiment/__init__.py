"""Sweeps and Monte Carlo trials: run a :class:`~dfsim.scenario.Scenario` end to end.

Explicit stages with typed hand-offs:

* :mod:`~dfsim.experiment.prepare`: the deterministic, cached pass of one config
  (:class:`Prepared`): model, images, edge features, encoded packets, loss-free
  predictions, completion methods (trained ones fitted);
* :mod:`~dfsim.experiment.trial`: one work unit (config, channel setting, trial) ->
  :class:`UnitResult`: transport, receiver, every method's completion, cloud and task;
* :mod:`~dfsim.experiment.executors`: units on this process, local worker processes or a
  Dask cluster, with crash-safe checkpoints;
* :mod:`~dfsim.experiment.outputs`: the run's files (results, manifest, summary, figures).
"""

from dfsim.experiment.executors import run
from dfsim.experiment.prepare import Prepared, build_model, load_images, prepare
from dfsim.experiment.trial import UnitResult, run_trial, transmit

__all__ = [
    "Prepared",
    "UnitResult",
    "build_model",
    "load_images",
    "prepare",
    "run",
    "run_trial",
    "transmit",
]
