"""Example figures (``dfsim example``): one image through the whole pipeline at one loss
rate, repaired by a few completion methods, next to the same image without loss.

Top row: the task's view of each outcome (detection: boxes drawn on the scene;
reconstruction: the reconstructed image; classification: the image titled with the
predicted class), from left to right no recovery (``zeros``), the chosen methods, and no
loss. Bottom row: a few channels of the tensor the cloud received (lost rows black in the
``zeros`` column), repaired by each method, and the loss-free tensor. The loss pattern
is the scenario's own trial (same seed, setting and trial number as in ``dfsim run``).
"""

from __future__ import annotations

import numpy as np

from dfsim.errors import UserError


def _show_task(ax, task, image: np.ndarray, pred, classes) -> None:
    """Draw one prediction: the task's ``show(ax, image, prediction, classes)`` if it
    has one, else the image titled with the prediction."""
    show = getattr(task, "show", None)
    if show is not None:
        show(ax, image, pred, classes)
        return
    ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray")
    name = classes[int(pred)] if classes is not None and 0 <= int(pred) < len(classes) else pred
    ax.set_xlabel(f"class: {name}", fontsize=8)


def _tile(t: np.ndarray, channels: list[int], lo, hi) -> np.ndarray:
    """Channels of one C x H x W tensor side by side, scaled to [0, 1] by (lo, hi)."""
    parts = []
    for c in channels:
        parts += [np.clip((t[c] - lo) / (hi - lo + 1e-12), 0, 1), np.ones((t.shape[1], 1))]
    return np.concatenate(parts[:-1], axis=1)


def _telling_image(prep, zeros, tensors, lost, stream, candidates: int = 200) -> int:
    """Among the first ``candidates`` images that lost between a quarter and a half of
    their values, the one whose zero-filled prediction agrees least with the loss-free
    one (the task's label-free metric; the first such image on ties)."""
    from dfsim.experiment.prepare import predict

    share = lost.reshape(len(lost), -1).mean(axis=1)
    hits = np.nonzero((share >= 0.25) & (share <= 0.5))[0][:candidates]
    if not len(hits):
        return int(np.argmax(share))
    task, metric = prep.task, prep.task.label_free
    better = next(m for m in task.metrics if m.name == metric).higher_is_better
    repaired = zeros.complete_batch(tensors[hits], lost[hits], stream.layout)
    pred = predict(task, prep.cloud, [repaired], prep.scenario.batch_size)
    target = prep.targets
    scores = []
    for k, i in enumerate(hits):
        t = target[i : i + 1]
        v = task.evaluate(pred[k : k + 1], prep.reference_pred[i : i + 1], t)[metric]
        scores.append(v if better else -v)
    return int(hits[int(np.argmin(scores))])


def example_figure(
    scn,
    out,
    loss_rate: float = 0.3,
    methods: list[str] | None = None,
    image: int | None = None,
    trial: int = 0,
    channels: int = 3,
) -> dict:
    """Write the example figure for config 0 of ``scn`` to ``out`` (PNG); returns what it
    shows (image index, loss, each column's task metrics on that image). By default the
    image is one that lost a quarter to a half of its values and on which zero-fill does
    worst (:func:`_telling_image`)."""
    import matplotlib.pyplot as plt

    fig, summary = example(scn, loss_rate, methods, image, trial, channels)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return summary


def example(
    scn,
    loss_rate: float = 0.3,
    methods: list[str] | None = None,
    image: int | None = None,
    trial: int = 0,
    channels: int = 3,
):
    """The example figure of :func:`example_figure`, not saved (closed, still drawable),
    and what it shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dfsim.experiment.prepare import prepare
    from dfsim.experiment.trial import transmit

    cell = _cell(scn, loss_rate)
    prep = prepare(scn, 0)
    if len(getattr(prep.task, "parts", ())) > 1:
        raise UserError(
            f"dfsim example draws one task's outcome; this scenario has several "
            f"({prep.task.name}): give it one task"
        )
    if len(prep.streams) != 1:
        raise UserError("dfsim example: the cut must pass one tensor")
    chosen, built = _methods(scn, prep, methods)
    tx = transmit(prep, cell, trial)
    delivery = prep.receiver.receive(tx, prep.streams)
    tensors, lost = delivery.tensors[0], delivery.lost[0]
    stream = prep.streams[0]
    if image is None:
        image = _telling_image(prep, built["zeros"], tensors, lost, stream)
    if not 0 <= image < prep.n_images:
        raise UserError(f"--image: {image} is not an image index (0..{prep.n_images - 1})")
    columns = _columns(prep, built, chosen, tensors, lost, image)
    summary = {
        "image": image,
        "channel": cell.kind,
        "loss_rate": loss_rate,
        "burst_length": cell.burst_length,
        "lost_share": float(lost[image].mean()),
    }
    outcomes = _outcomes(prep, columns, image, scn.batch_size)
    summary.update({title: scores for title, (_, scores) in outcomes.items()})
    fig = _figure(prep, columns, outcomes, lost[image], image, channels)
    where = f", config {prep.config.describe()}" if len(scn.configs) > 1 else ""
    fig.suptitle(
        f"{scn.name}{where}: image {image}, {cell.kind} loss {loss_rate:.0%} "
        f"({summary['lost_share']:.0%} of this tensor lost), trial {trial}",
        fontsize=9,
    )
    fig.tight_layout()
    plt.close(fig)
    return fig, summary


def _cell(scn, loss_rate: float):
    """The scenario's first channel setting at ``loss_rate``."""
    cells = [c for c in scn.cells if abs(c.loss_rate - loss_rate) < 1e-9]
    if not cells:
        rates = sorted({c.loss_rate for c in scn.cells})
        raise UserError(f"--loss: {loss_rate} is not a loss rate of the scenario ({rates})")
    return cells[0]


def _methods(scn, prep, methods: list[str] | None) -> tuple[list[str], dict]:
    """The labels of the methods shown besides ``zeros`` (default: the scenario's first
    two others), checked, and every method of the scenario built for the one stream."""
    from dfsim.experiment.prepare import build_methods

    labels = [m.label for m in scn.methods]
    chosen = methods or [x for x in labels if x != "zeros"][:2]
    unknown = [x for x in chosen if x not in labels]
    if unknown:
        raise UserError(f"--methods: {unknown[0]!r} is not a method of the scenario ({labels})")
    if "zeros" not in labels:
        raise UserError("dfsim example: the scenario needs the 'zeros' method (no recovery)")
    built = {spec.label: per_stream[0] for spec, per_stream in build_methods(prep)}
    return chosen, built


def _columns(prep, built: dict, chosen: list[str], tensors, lost, image: int) -> list[tuple]:
    """The figure's columns, (title, the tensor the cloud gets): no recovery, each chosen
    method's repair, no loss; first the original image (no tensor) when the task's
    predictions are images."""
    stream = prep.streams[0]
    sl = slice(image, image + 1)
    columns = [("no recovery", built["zeros"].complete_batch(tensors[sl], lost[sl], stream.layout))]
    for label in chosen:
        columns.append((label, built[label].complete_batch(tensors[sl], lost[sl], stream.layout)))
    columns.append(("no loss", stream.reference[sl]))
    if getattr(prep.task, "show_original", False):  # the task's predictions are images
        columns.insert(0, ("original", None))
    return columns


def _outcomes(prep, columns: list[tuple], image: int, batch_size: int) -> dict:
    """Per column with a tensor: the cloud's prediction and the task's metrics on the
    image (against the loss-free prediction and the image's target)."""
    from dfsim.experiment.prepare import predict

    task, target = prep.task, prep.targets
    one_target = target[image : image + 1] if hasattr(target, "__getitem__") else target
    ref = prep.reference_pred[image : image + 1]
    outcomes = {}
    for title, t in columns:
        if t is None:
            continue
        pred = predict(task, prep.cloud, [t], batch_size)
        scores = task.evaluate(pred, ref, one_target)
        outcomes[title] = (pred, {m: float(v) for m, v in scores.items()})
    return outcomes


def _figure(prep, columns: list[tuple], outcomes: dict, lost, image: int, channels: int):
    """Two rows, a column each: the task's view of the outcome (titled with its agreement
    with the loss-free outcome), and the ``channels`` most varied channels of the tensor
    (lost rows black under no recovery)."""
    import matplotlib.pyplot as plt  # its backend chosen by example_figure

    task, stream = prep.task, prep.streams[0]
    fig, axes = plt.subplots(2, len(columns), figsize=(2.6 * len(columns), 4.6), squeeze=False)
    c, h, w = stream.reference.shape[1:]
    ch = np.argsort(-stream.reference[image].reshape(c, -1).var(axis=1))[:channels].tolist()
    lo, hi = np.percentile(stream.reference[image][ch], [1, 99])
    # the titles show agreement with the loss-free outcome (one image's mAP or top-1 against
    # its labels says little); the JSON has every metric
    primary = next(m for m in task.metrics if m.name == task.label_free)
    for k, (title, t) in enumerate(columns):
        top, bottom = axes[0, k], axes[1, k]
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        if t is None:  # the original image, and no tensor
            top.imshow(prep.images.images[image][0], cmap="gray", vmin=0, vmax=255)
            top.set_title(title, fontsize=9)
            bottom.axis("off")
            continue
        pred, scores = outcomes[title]
        _show_task(top, task, prep.images.images[image], pred[0], prep.images.classes)
        value = primary.scale * scores[primary.name]
        top.set_title(
            f"{title}\n{primary.name} {value:.{primary.decimals}f}{primary.unit}", fontsize=9
        )
        view = _tile(t[0], ch, lo, hi)
        if title == "no recovery":
            view = _black_lost_rows(view, lost, ch)
        bottom.imshow(view, cmap="gray", vmin=0, vmax=1)
    first = next(k for k, (_, t) in enumerate(columns) if t is not None)
    axes[1, first].set_ylabel(f"{len(ch)} of {c} channels", fontsize=8)
    _labels_inside(fig, axes[0])
    return fig


def _labels_inside(fig, axes) -> None:
    """Move each data label (a box's class and score) that reaches outside its image
    back inside it: below the top edge, left of the right one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    for ax in axes:
        box = ax.get_window_extent(renderer)
        for t in ax.texts:
            e = t.get_window_extent(renderer)
            (x, y), to_data = t.get_position(), ax.transData.inverted()
            if e.y1 > box.y1:  # above the image: hang it from the top edge instead
                t.set_verticalalignment("top")
                y = to_data.transform((0, box.y1 - 1))[1]
            if e.y0 < box.y0:
                t.set_verticalalignment("bottom")
                y = to_data.transform((0, box.y0 + 1))[1]
            if e.x1 > box.x1:
                t.set_horizontalalignment("right")
                x = to_data.transform((box.x1 - 1, 0))[0]
            if e.x0 < box.x0:
                t.set_horizontalalignment("left")
                x = to_data.transform((box.x0 + 1, 0))[0]
            t.set_position((x, y))


def _black_lost_rows(view: np.ndarray, lost: np.ndarray, channels: list[int]) -> np.ndarray:
    """``view`` (the channels tiled by :func:`_tile`) with the lost values black."""
    mask = np.concatenate([np.pad(lost[i], ((0, 0), (0, 1))) for i in channels], axis=1)
    return np.where(mask[:, : view.shape[1]], 0.0, view)
