"""Loss-free distortion-rate points of a scenario's encoding grid, measured per image and
held out (after the ICME 2022 tutorial on collaborative intelligence: the surface fitted on
20 % of the images, tested on the other 80 %).

No network: for each config, :func:`~dfsim.experiment.prepare.prepare` (cached on disk)
gives the loss-free coded model's predictions of every image and the coded bits of every
image per crossing tensor; the uncompressed model's predictions come from the (cached) edge
pass. The images are split, seeded, into a fit set (``fit_fraction`` of them) and a
held-out set; on each, a config's point is its mean coded rate(s) over those images and
the task distortion ``|A - Â| / A x 100`` of the task's metric over those images (the
task's own ``evaluate`` on the subset), ``A`` being the uncompressed model's metric on the
same images. The configs group into curves (by split and codec where they vary), each
fitted on its fit-set points and scored on its held-out points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfsim.errors import UserError
from dfsim.experiment.rate_distortion import DRFit, fit_dr, task_distortion
from dfsim.experiment.rd_points import CURVE_FIELDS


@dataclass(frozen=True)
class MeasuredCurve:
    """One curve's configs measured on the fit and the held-out images: ``rates_*`` (m x N,
    mean kbit per image of each stream, or of all, over the set), ``d_*`` (m, task
    distortion in %) and ``metric_*`` (m, the metric's value), the configs' labels and
    their indices in the scenario's grid, and each stream's tensor size (elements)."""

    label: str
    configs: tuple[str, ...]
    indices: tuple[int, ...]
    rates_fit: np.ndarray
    rates_held: np.ndarray
    d_fit: np.ndarray
    d_held: np.ndarray
    metric_fit: np.ndarray
    metric_held: np.ndarray
    sizes: np.ndarray


@dataclass(frozen=True)
class HeldOutFit:
    """A curve, the model fitted on its fit-set points and the model's scores on its
    held-out points (:meth:`DRFit.score`)."""

    curve: MeasuredCurve
    fit: DRFit
    held_out: dict


def split_images(n: int, fit_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random ``round(fit_fraction x n)`` of the ``n`` images for the fit and the
    rest held out (both sorted). Each set needs an image: a fraction that leaves one
    empty is a one-line error."""
    f = float(fit_fraction)
    if not 0 < f < 1:
        raise UserError(f"--fit-fraction: must be between 0 and 1 (exclusive), got {fit_fraction}")
    k = int(round(f * n))
    if not 0 < k < n:
        raise UserError(
            f"--fit-fraction: {f:g} of {n} images leaves "
            f"{'no image to fit on' if k == 0 else 'no image held out'}"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:k]), np.sort(order[k:])


def subset(values, idx: np.ndarray):
    """Images ``idx`` of a task's predictions or targets (an array, or a tuple per image)."""
    if isinstance(values, (tuple, list)):
        return tuple(values[i] for i in idx)
    return np.asarray(values)[idx]


def clean_predictions(prep) -> np.ndarray:
    """The uncompressed model's predictions of ``prep``'s images (a cache load: the edge
    pass that :func:`~dfsim.experiment.prepare.prepare` ran stored them)."""
    from dfsim.experiment.features import edge_pass, features_cache_key

    scn = prep.scenario
    key = features_cache_key(scn, prep.model, prep.split, prep.images, prep.task)
    return edge_pass(scn, prep.model, prep.split, prep.images, prep.task, key)[1]


def metric_pair(task, metric: str, coded, clean, targets) -> tuple[float, float]:
    """``(Â, A)``: ``metric`` of the coded predictions and of the uncompressed model's, on
    the same images. ``coding_agreement`` is the task's label-free metric of the coded
    predictions against the uncompressed model's (``A``: the uncompressed model's against
    itself)."""
    if metric == "coding_agreement":
        m = task.label_free
        return task.evaluate(coded, clean, targets)[m], task.evaluate(clean, clean, targets)[m]
    coded_value = task.evaluate(coded, coded, targets)[metric]
    return coded_value, task.evaluate(clean, clean, targets)[metric]


def default_metric(task, clean, targets) -> str:
    """The task's primary metric where the images are labelled, else coding_agreement."""
    value = task.evaluate(clean, clean, targets).get(task.primary)
    return task.primary if value == value and value is not None else "coding_agreement"


def stream_bits(prep) -> np.ndarray:
    """Coded bits of each image of each crossing tensor (n_images x N): payloads plus the
    tensor's side information, as the results' ``bits_per_image_s<i>`` average."""
    return np.column_stack([np.asarray(s.encoded.bits_per_image(), float) for s in prep.streams])


def subset_targets(task, targets, idx: np.ndarray):
    """Images ``idx`` of a task's targets; of each task's, for several tasks (a
    :class:`~dfsim.experiment.multi_task.MultiTask`'s targets are one per task)."""
    if getattr(task, "parts", None) is not None:
        return tuple(subset(t, idx) for t in targets)
    return subset(targets, idx)


def measure(scn, fit_idx, held_idx, metric=None, per_stream=None, by=None, log=None):
    """The configs of ``scn`` measured on the images ``fit_idx`` and ``held_idx``, as
    curves (:class:`MeasuredCurve`), and the metric used. ``per_stream``: one rate per
    crossing tensor (default: when several cross the cut), else their total; ``by``: the
    config columns telling curves apart (default: split and codec where they vary)."""
    found = measure_metrics(scn, fit_idx, held_idx, [metric], per_stream, by, log)
    ((name, curves),) = found.items()
    return curves, name


def measure_metrics(scn, fit_idx, held_idx, metrics, per_stream=None, by=None, log=None):
    """:func:`measure` for several metrics (of one task or of several tasks' columns) from
    one pass over the configs: ``{metric: curves}`` in the order given (a None metric is
    the task's default)."""
    from dfsim.experiment.prepare import prepare

    points: dict = {}
    names = list(metrics)
    for i in range(len(scn.configs)):
        if log:
            log(f"config {i + 1}/{len(scn.configs)}: {scn.configs[i].describe()}")
        prep = prepare(scn, i)
        clean, coded, targets = clean_predictions(prep), prep.reference_pred, prep.targets
        names = [default_metric(prep.task, clean, targets) if m is None else m for m in names]
        names = list(dict.fromkeys(names))  # each metric's points once
        bits = stream_bits(prep)
        split_stream = len(prep.streams) > 1 if per_stream is None else per_stream
        bits = bits if split_stream else bits.sum(axis=1, keepdims=True)
        sizes = np.array([int(np.prod(s.crossing.shape)) for s in prep.streams])
        for metric in names:
            row = {"index": i, "columns": prep.columns(), "sizes": sizes}
            for name, idx in (("fit", fit_idx), ("held", held_idx)):
                try:
                    value, ref = metric_pair(
                        prep.task,
                        metric,
                        subset(coded, idx),
                        subset(clean, idx),
                        subset_targets(prep.task, targets, idx),
                    )
                except KeyError:
                    raise UserError(
                        f"--metric: {metric!r} is not a metric of task {scn.task.name!r}"
                    ) from None
                row[f"metric_{name}"] = value
                row[f"d_{name}"] = float(task_distortion([value], ref)[0])
                row[f"rates_{name}"] = bits[idx].mean(axis=0) / 1e3
            points.setdefault(metric, []).append(row)
        del prep
    return {m: _curves(points[m], by) for m in names}


def rate_names(curves: list[MeasuredCurve]) -> list[str]:
    """The rate columns' names: ``kbpi`` for one rate, ``kbpi_s<i>`` for one per stream."""
    n = curves[0].rates_fit.shape[1]
    return ["kbpi"] if n == 1 else [f"kbpi_s{i}" for i in range(n)]


def _curves(points: list[dict], by) -> list[MeasuredCurve]:
    cols = [p["columns"] for p in points]
    if by is None:
        by = [f for f in CURVE_FIELDS if len({c.get(f) for c in cols}) > 1]
    for f in by:
        if not any(f in c for c in cols):
            raise UserError(f"--by: {f!r} is not a config column of this scenario")
    varying = [k for k in cols[0] if k not in by and len({repr(c.get(k)) for c in cols}) > 1]
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault(tuple(p["columns"].get(f) for f in by), []).append(p)
    out = []
    for key, pts in groups.items():
        if len({p["rates_fit"].shape for p in pts}) > 1:
            raise UserError(f"{key}: its configs cut different numbers of tensors; use --by split")
        label = ", ".join(f"{f} {v}" for f, v in zip(by, key, strict=True)) or "all configs"

        def stack(name, pts=pts):
            return np.array([p[name] for p in pts], dtype=float)

        out.append(
            MeasuredCurve(
                label=label,
                configs=tuple(_config_label(p, varying) for p in pts),
                indices=tuple(p["index"] for p in pts),
                rates_fit=stack("rates_fit"),
                rates_held=stack("rates_held"),
                d_fit=stack("d_fit"),
                d_held=stack("d_held"),
                metric_fit=stack("metric_fit"),
                metric_held=stack("metric_held"),
                sizes=pts[0]["sizes"],
            )
        )
    return out


def _config_label(point: dict, varying: list[str]) -> str:
    text = ", ".join(f"{k} {point['columns'].get(k)}" for k in varying)
    return text or f"config {point['index']}"


def fit_held_out(curves: list[MeasuredCurve], names: list[str]) -> list[HeldOutFit]:
    """Each curve's model fitted on its fit-set points, scored on its held-out points."""
    out = []
    for c in curves:
        try:
            fit = fit_dr(c.rates_fit, c.d_fit, names=names)
        except UserError as exc:
            raise UserError(f"{c.label}: {exc}") from None
        out.append(HeldOutFit(c, fit, fit.score(c.rates_held, c.d_held)))
    return out
