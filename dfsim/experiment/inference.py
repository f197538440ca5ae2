"""Running a config's models on its images: batched passes, where the user's code that
fails (a model given by import path, a plug-in, a layer of the user's own) is a one-line
error naming it, and checks on what comes back (one row, one prediction per image; the
tensors the model declared to cross the cut).
"""

from __future__ import annotations

import numpy as np

from dfsim.errors import UserError
from dfsim.experiment.specs import Scenario
from dfsim.models.inference import run_batched


def predict(
    task,
    cloud,
    tensors: list[np.ndarray],
    batch_size: int,
    what: str = "the cloud",
    users: bool = False,
):
    """The cloud sub-model on the crossing tensors, then the task's predictions (one per
    image, from one output row per image: anything else is a one-line error)."""
    n = len(tensors[0])
    what = f"{what} sub-model"
    x = tensors if len(tensors) > 1 else tensors[0]
    outputs = run_model(cloud, x, batch_size, what, users)
    check_rows(outputs, n, what)
    return task_predict(task, outputs, n)


def users_model(scn: Scenario) -> bool:
    """Whether the scenario's model (or a plug-in) is the user's code: given by import path,
    or with plug-ins loaded. A failure there is the user's to fix, not a bug of dfsim's."""
    return bool(scn.model.import_path or scn.plugins)


def _users_layers(module) -> bool:
    """Whether ``module`` holds layers defined outside dfsim and torch."""
    return any(not type(m).__module__.startswith(("dfsim.", "torch.")) for m in module.modules())


def run_model(module, x, batch_size: int, what: str, users: bool = False):
    """:func:`run_batched`, where the user's module (``users``, or one with layers of the
    user's own) that fails or returns something other than tensors is a one-line error
    naming ``what``; dfsim's own models keep their traceback (a bug)."""
    try:
        return run_batched(module, x, batch_size)
    except (UserError, MemoryError):
        raise
    except Exception as exc:
        if not (users or _users_layers(module)):
            raise
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise UserError(f"{what} failed ({type(exc).__name__}: {text})") from None


def _shapes(arrays) -> str:
    return ", ".join("x".join(map(str, np.shape(a))) or "a scalar" for a in arrays)


def check_rows(outputs, n: int, what: str) -> None:
    """``outputs`` (an array, or a tuple of them) hold one row per image of ``n``."""
    parts = outputs if isinstance(outputs, tuple) else (outputs,)
    if any(np.ndim(p) == 0 or len(p) != n for p in parts):
        raise UserError(
            f"{what} returned {_shapes(parts)} for {n} images: expected one row per image"
        )


def check_crossing(feats: tuple, crossing, n: int, what: str) -> None:
    """The edge's outputs are the tensors crossing the cut, of the declared shapes."""
    want = [(n, *t.shape) for t in crossing]
    if [tuple(np.shape(f)) for f in feats] != want:
        expected = ", ".join("x".join(map(str, w)) for w in want)
        raise UserError(
            f"{what} returned {len(feats)} tensors ({_shapes(feats)}), expected "
            f"{len(want)} ({expected}) for {n} images"
        )


def task_predict(task, outputs, n: int):
    """The task's predictions of ``n`` images: exactly one per image."""
    pred = task.predict(outputs)
    if np.ndim(pred) == 0 or len(pred) != n:
        raise UserError(
            f"task {getattr(task, 'name', type(task).__name__)!r}: predict returned "
            f"{_shapes([pred])} for {n} images: expected one prediction per image"
        )
    return pred
