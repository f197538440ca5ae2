"""The conformance check of a task (:class:`dfsim.stages.Task`): :func:`check_task` and its
properties (metric declarations, predictions, evaluation, the label-free metric)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from dfsim.testing._common import _describe, _expect, _run, _selected

TASK_PROPERTIES = ("metrics", "predict", "evaluate", "label-free-best")
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _t_metrics(task, outputs, targets, cfg) -> None:
    from dfsim.experiment.results import IDENTITY_COLUMNS, pipeline_metrics
    from dfsim.stages import Metric

    metrics = task.metrics
    _expect(
        isinstance(metrics, (tuple, list)) and metrics,
        "metrics must be a non-empty tuple of dfsim.stages.Metric",
    )
    names = [m.name for m in metrics]
    dup = sorted({x for x in names if names.count(x) > 1})
    _expect(not dup, f"metric names must be unique, {', '.join(dup)} repeated")
    taken = set(IDENTITY_COLUMNS) | {m.name for m in pipeline_metrics()}
    for m in metrics:
        _expect(isinstance(m, Metric), f"{m!r} is not a dfsim.stages.Metric")
        _expect(
            isinstance(m.name, str) and _COLUMN_NAME.fullmatch(m.name),
            f"metric name {m.name!r} must be an identifier (it is a CSV column)",
        )
        _expect(
            m.name not in taken,
            f"metric {m.name!r} clashes with a column the pipeline writes itself",
        )
        _expect(isinstance(m.label, str) and m.label, f"metric {m.name!r}: empty label")
        _expect(isinstance(m.unit, str), f"metric {m.name!r}: unit must be a string")
        _expect(
            m.dtype in (int, float),
            f"metric {m.name!r}: dtype must be int or float, got {m.dtype!r}",
        )
        _expect(
            isinstance(m.scale, (int, float)) and math.isfinite(m.scale) and m.scale > 0,
            f"metric {m.name!r}: scale must be a finite number > 0, got {m.scale!r}",
        )
        _expect(
            m.higher_is_better in (True, False, None),
            f"metric {m.name!r}: higher_is_better must be True, False or None",
        )
        _expect(
            m.per == "method",
            f"metric {m.name!r}: a task's metrics differ between "
            f"completion methods (per='method'), got per={m.per!r}",
        )
    for role in ("primary", "label_free"):
        name = getattr(task, role, None)
        _expect(
            name in names,
            f"{role} {name!r} is not one of the declared metrics ({', '.join(names)})",
        )
        m = metrics[names.index(name)]
        _expect(
            m.higher_is_better is not None,
            f"{role} metric {name!r} must say which way is better (higher_is_better)",
        )


def _t_predict(task, outputs, targets, cfg) -> None:
    before = np.array(outputs, copy=True)
    a = task.predict(outputs)
    _expect(np.array_equal(np.asarray(outputs), before), "predict modified its input")
    b = task.predict(np.array(outputs, copy=True))
    _expect(np.array_equal(np.asarray(a), np.asarray(b)), "predict is not deterministic")
    if hasattr(a, "__len__"):
        _expect(
            len(a) == len(outputs), f"predict gave {len(a)} predictions for {len(outputs)} outputs"
        )


def _t_evaluate(task, outputs, targets, cfg) -> None:
    pred = task.predict(outputs)
    result = task.evaluate(pred, pred, targets)
    _expect(isinstance(result, dict), f"evaluate must return a dict, got {type(result).__name__}")
    declared = {m.name: m for m in task.metrics}
    missing = [k for k in declared if k not in result]
    _expect(not missing, f"evaluate did not return the declared metric(s) {', '.join(missing)}")
    extra = [k for k in result if k not in declared]
    _expect(
        not extra,
        f"evaluate returned undeclared metric(s) {', '.join(map(str, extra))} "
        "(declare them in metrics)",
    )
    for name, m in declared.items():
        v = result[name]
        _expect(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool),
            f"metric {name!r} is {type(v).__name__} {v!r}, not a number",
        )
        if m.dtype is int and math.isfinite(float(v)):
            _expect(float(v).is_integer(), f"metric {name!r} is declared int but is {v!r}")
    v = result[task.label_free]
    _expect(
        math.isfinite(float(v)),
        f"label_free metric {task.label_free!r} is {v!r} (it needs "
        "no labels, so it always has a value)",
    )


def _t_label_free_best(task, outputs, targets, cfg) -> None:
    name = task.label_free
    better = next(m for m in task.metrics if m.name == name).higher_is_better
    pred = task.predict(outputs)
    best = float(task.evaluate(pred, pred, targets)[name])
    rng = np.random.default_rng(cfg["seed"])
    out = np.asarray(outputs)
    altered = {
        "outputs of other images": out[rng.permutation(len(out))],
        "negated outputs": -out,
        "noisy outputs": out + rng.standard_normal(out.shape).astype(out.dtype) * out.std(),
    }
    worse = False
    for what, o in altered.items():
        v = float(task.evaluate(task.predict(o), pred, targets)[name])
        ok = v <= best if better else v >= best
        _expect(
            ok,
            f"{name} is {v:.6g} for predictions from {what} but {best:.6g} for "
            "predictions equal to the reference: the reference must score best",
        )
        worse = worse or v != best
    _expect(
        worse,
        f"{name} is {best:.6g} whatever the predictions: it does not measure "
        "agreement with the reference",
    )


_TASK_CHECKS = {
    "metrics": _t_metrics,
    "predict": _t_predict,
    "evaluate": _t_evaluate,
    "label-free-best": _t_label_free_best,
}


def check_task(
    task,
    outputs: np.ndarray,
    targets: Any,
    *,
    params: dict | None = None,
    seed: int = 0,
    properties: Iterable[str] | None = None,
    model=None,
    split: str | None = None,
) -> None:
    """Check a task (:class:`dfsim.stages.Task`): an instance, or a registered name (built
    with ``params``), on cloud ``outputs`` (e.g. logits N x classes, varied enough that
    other predictions score differently) and the dataset's ``targets``. A task with a
    ``bind`` method (a detector's post-processing, a reconstruction decoder) is first bound
    to the split model ``model`` at ``split`` (default: its ``default_split``), as a run
    binds it. The properties (:data:`TASK_PROPERTIES`):

    * ``metrics``: :class:`~dfsim.stages.Metric` declarations with unique identifier names
      that no pipeline column uses, a label, a string unit, dtype int or float, a finite
      positive scale and ``per='method'``; ``primary`` and ``label_free`` are declared and
      say which way is better;
    * ``predict``: deterministic, one prediction per output, input not modified;
    * ``evaluate``: returns exactly the declared metrics, as numbers (an int metric
      integral); the label-free one is finite;
    * ``label-free-best``: predictions equal to the reference score best on ``label_free``,
      and altered ones (other images', negated, noisy outputs) score differently.
    """
    if isinstance(task, str):
        from dfsim.registry import build

        label = f"task {task!r}"
        task = build("task", task, "task", **(params or {}))
    else:
        label = f"task {getattr(task, 'name', None) or _describe(task)!r}"
    chosen = _selected(properties, TASK_PROPERTIES, "task")
    bind = getattr(task, "bind", None)
    if bind is not None:
        if model is None:
            raise ValueError(
                f"{label} must be bound to a split model (it has a bind method): "
                "pass model= (and split=, default the model's default_split)"
            )
        split = split if split is not None else getattr(model, "default_split", None)
        _run(label, "bind", bind, model, split)
    cfg = {"seed": seed}
    for prop in chosen:
        _run(label, prop, _TASK_CHECKS[prop], task, outputs, targets, cfg)
