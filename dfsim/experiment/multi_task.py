"""Several tasks served by the same received features (``task: [classification,
reconstruction]``).

A scenario's ``task`` may be a list: the run then transmits, receives and completes each
(config, setting, method, trial) once, and every task scores the same completed features
with its own cloud sub-model (the model's, or the task's own: reconstruction's mirror).
To the run machinery the list is one task, :class:`MultiTask`: its cloud sub-model runs
every task's, its predictions are one structured array with a field per task, and its
metrics are every task's, as columns of the same rows.

Column names (:func:`metric_columns`): a task's metric keeps its name unless a task
listed before it already has a column of that name; then it is ``<task>_<metric>``
(``classification`` then ``detection``: ``top1, agreement, map, map50,
detection_agreement``). The first task's primary and label-free metrics are the run's
(its figure, the paired test of summary.csv, ``coding_agreement``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from dfsim.errors import UserError
from dfsim.registry import build


@dataclass(frozen=True)
class TaskList:
    """``task`` given as a list of two or more tasks: their components, in order."""

    parts: tuple  # tuple[Component, ...]
    kind: str = "task"

    @property
    def name(self) -> str:
        return "+".join(c.name for c in self.parts)

    @property
    def params(self) -> tuple:
        return tuple((c.name, c.params) for c in self.parts)

    @property
    def kwargs(self) -> dict:
        return {}

    def build(self) -> MultiTask:
        return MultiTask([(c.name, c.build()) for c in self.parts])

    def section(self) -> list[dict]:
        """The resolved ``task`` section (manifest): one mapping per task."""
        return [{"name": c.name, **c.kwargs} for c in self.parts]


def metric_columns(tasks: list[tuple[str, object]]) -> list[dict[str, str]]:
    """Per task, its metrics' column names: the metric's own name, or ``<task>_<metric>``
    where an earlier task already has that column."""
    taken: set[str] = set()
    out = []
    for name, task in tasks:
        cols = {}
        for m in task.metrics:
            cols[m.name] = m.name if m.name not in taken else f"{name}_{m.name}"
        taken |= set(cols.values())
        out.append(cols)
    return out


def _where(i: int, name: str, exc: UserError) -> UserError:
    """``exc`` said of task ``i`` of the list: ``task[i]...`` for ``task...``."""
    text = str(exc)
    if text.startswith("task"):
        text = f"task[{i}]" + text[4:]
    else:
        text = f"task[{i}] ({name}): {text}"
    return UserError(text)


class MultiCloud(torch.nn.Module):
    """Every task's cloud sub-model on the same tensors: their outputs, one after another
    (how many each gave is kept in ``counts`` for :meth:`MultiTask.predict`)."""

    def __init__(self, clouds: list[torch.nn.Module], counts: list[int]):
        super().__init__()
        self.clouds = torch.nn.ModuleList(clouds)
        self.counts = counts

    def forward(self, *x):
        outs = []
        for i, cloud in enumerate(self.clouds):
            y = cloud(*x)
            ys = y if isinstance(y, tuple) else (y,)
            self.counts[i] = len(ys)
            outs.extend(ys)
        return tuple(outs)


class MultiTask:
    """The tasks of a ``task`` list as one task (see the module docstring)."""

    def __init__(self, parts: list[tuple[str, object]]):
        self.parts = list(parts)
        self.name = "+".join(n for n, _ in parts)
        self.columns = metric_columns(self.parts)
        self.metrics = tuple(
            replace(m, name=cols[m.name])
            if cols[m.name] == m.name
            else replace(m, name=cols[m.name], label=f"{name}: {m.label}", alias=None)
            for (name, t), cols in zip(self.parts, self.columns, strict=True)
            for m in t.metrics
        )
        first, cols = self.parts[0][1], self.columns[0]
        self.primary, self.label_free = cols[first.primary], cols[first.label_free]
        self._counts = [1] * len(self.parts)

    def shown(self) -> list[tuple[str, str, str]]:
        """Per task: its name, and its primary and label-free metrics' columns."""
        return [
            (name, cols[t.primary], cols[t.label_free])
            for (name, t), cols in zip(self.parts, self.columns, strict=True)
        ]

    def bind(self, model, split: str) -> None:
        for i, (name, t) in enumerate(self.parts):
            bind = getattr(t, "bind", None)
            try:
                if bind is not None:
                    bind(model, split)
            except UserError as exc:
                raise _where(i, name, exc) from None

    def own_cloud(self) -> bool:
        """Whether a task of the list brings its own cloud sub-model."""
        return any(getattr(t, "cloud_model", None) is not None for _, t in self.parts)

    def cache_id(self) -> str:
        ids = [(n, getattr(t, "cache_id", lambda: "")()) for n, t in self.parts]
        return hashlib.sha256(repr(ids).encode()).hexdigest()[:16]

    def cloud_model(self, model, split: str) -> torch.nn.Module:
        clouds = []
        for i, (name, t) in enumerate(self.parts):
            own = getattr(t, "cloud_model", None)
            try:
                clouds.append(own(model, split) if own is not None else model.cloud(split))
            except UserError as exc:
                raise _where(i, name, exc) from None
        return MultiCloud(clouds, self._counts)

    def targets(self, images) -> tuple:
        return tuple(
            t.targets(images) if hasattr(t, "targets") else images.labels for _, t in self.parts
        )

    def predict(self, outputs) -> np.ndarray:
        """Each task's predictions from its cloud's outputs, as one structured array (a
        field per task, one record per image)."""
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        preds, at = [], 0
        for i, ((name, t), k) in enumerate(zip(self.parts, self._counts, strict=True)):
            part = outs[at] if k == 1 else tuple(outs[at : at + k])
            at += k
            try:
                preds.append(np.asarray(t.predict(part)))
            except UserError as exc:
                raise _where(i, name, exc) from None
        names = [name for name, _ in self.parts]
        dtype = [(n, p.dtype, p.shape[1:]) for n, p in zip(names, preds, strict=True)]
        out = np.empty(len(preds[0]), dtype)
        for (name, _), p in zip(self.parts, preds, strict=True):
            out[name] = p
        return out

    def evaluate(self, predictions, reference, targets) -> dict[str, float]:
        """Every task's metrics of its field of the predictions, under its columns."""
        scores = {}
        for (name, t), cols, tg in zip(self.parts, self.columns, targets, strict=True):
            own = t.evaluate(predictions[name], reference[name], tg)
            scores |= {cols[k]: v for k, v in own.items()}
        return scores

    def __repr__(self) -> str:
        return f"MultiTask({', '.join(repr(t) for _, t in self.parts)})"


def task_of_section(raw, where: str):
    """The task a manifest's resolved ``task`` section names (a mapping, or a list of
    them), built unbound (for its metric declarations); classification when none."""
    try:
        if isinstance(raw, list):
            parts = []
            for i, r in enumerate(raw):
                r = dict(r)
                parts.append((r["name"], build("task", r.pop("name"), f"{where}[{i}]", **r)))
            return MultiTask(parts)
        task = dict(raw or {"name": "classification"})
        return build("task", task.pop("name"), where, **task)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: not a task section ({type(exc).__name__}: {exc})") from None


def check_distinct(names: list[str]) -> None:
    """A task listed twice is a one-line error naming both places."""
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise UserError(
                f"task[{i}]: {n} is listed twice (also task[{seen[n]}]); list each task once"
            )
        seen[n] = i
