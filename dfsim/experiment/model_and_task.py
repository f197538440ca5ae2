"""A config's split model and task: the model built and cut at the config's split point
(its crossing tensors checked against the packets and the MTU), the cloud-only baseline
at ``input``, and the task bound to the model, with the task's optional hooks
(``targets``, ``cloud_model``, ``cache_id``) and their defaults.
"""

from __future__ import annotations

import torch

from dfsim.data.datasets import ImageSet
from dfsim.errors import UserError
from dfsim.experiment.specs import Config, Scenario
from dfsim.models.cloud_only import INPUT, CloudOnly, cloud_only
from dfsim.registry import entry, names


def task_targets(task, images: ImageSet):
    """What the task scores against: its ``targets(images)`` (detection: boxes;
    reconstruction: the images), else the labels."""
    get = getattr(task, "targets", None)
    return get(images) if get is not None else images.labels


def task_cloud(task, model, split: str) -> torch.nn.Module:
    """The cloud sub-model: the task's own (``cloud_model(model, split)``: e.g. a decoder
    that reconstructs the input) where it has one, else the model's."""
    own = getattr(task, "cloud_model", None)
    return own(model, split) if own is not None else model.cloud(split)


def task_cache_id(task) -> str:
    """What else determines the task's predictions (its ``cache_id()``: e.g. the digest of
    a reconstruction decoder's weights), for cache keys."""
    get = getattr(task, "cache_id", None)
    return get() if get is not None else ""


def build_task(scn: Scenario, model, split: str):
    """The scenario's task, bound to the model and split where it needs them (a
    detector's post-processing, a reconstruction decoder); a ``task`` list as one
    :class:`~dfsim.experiment.multi_task.MultiTask`."""
    task = scn.task.build()
    bind = getattr(task, "bind", None)
    if bind is not None:
        bind(model, split)
    return task


def build_model(scn: Scenario, cfg: Config, model=None):
    """The split model (``model``: one already built for ``cfg.split``) and the resolved
    split point, its crossing tensors checked: each is C x H x W, and its packets fit the
    height and the MTU (every tensor's side information rides in the image's first packet)."""
    model = scn.model.build(cfg.split) if model is None else model
    split = cfg.split or model.default_split
    if split == INPUT:
        model = check_cloud_only(scn, cfg, model)
    crossing = model.crossing(split)
    for t in crossing:
        if len(t.shape) != 3:
            raise UserError(
                f"model.split: tensor {t.name!r} crossing the cut after {split!r} is "
                f"{'x'.join(map(str, t.shape))}, not channels x height x width: "
                "choose another split"
            )
    codecs, nw = [cfg.codec_of(i).build() for i in range(len(crossing))], scn.network
    # Before encoding, only what is fixed: a codec whose side information varies (a coded
    # histogram) is checked on its encoded packets (check_encoded_sizes). Each tensor with
    # its own codec; the first packet carries every tensor's side information.
    first = nw.side_info.placement == "first-packet"
    side = sum(c.side_info_bits for c in codecs) if first else 0
    for t, codec in zip(crossing, codecs, strict=True):
        if cfg.packets.fill or getattr(codec, "model_side_info_bits", 0):
            continue
        cfg.packets.layout(t.shape).check(codec, nw.header_bytes, nw.mtu_bytes, side, split)
    return model, split


def check_cloud_only(scn: Scenario, cfg: Config, model):
    """The model cut at ``input`` (the cloud-only baseline), after checking that the codec
    codes images and the task runs the model's own cloud."""
    if isinstance(model, CloudOnly):
        return model
    codec = cfg.codec.build()
    if not hasattr(codec, "for_camera"):
        pictures = ", ".join(
            n for n in names("codec") if hasattr(entry("codec", n).factory, "for_camera")
        )
        raise UserError(
            f"encoding.codec: {cfg.codec.name} codes features; split input sends the camera's "
            f"image: use a picture codec ({pictures})"
        )
    try:
        codec.for_camera()
    except ValueError as exc:
        raise UserError(f"encoding.{exc}") from None
    task = build_task(scn, model, model.default_split)
    if task.own_cloud() if hasattr(task, "own_cloud") else hasattr(task, "cloud_model"):
        raise UserError(
            f"model.split: input has no features for task {scn.task.name!r} to reconstruct"
        )
    return cloud_only(model)
