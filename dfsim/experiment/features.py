"""A config's images and edge features: the scenario's test images (loaded once per
process), the edge sub-model's features of every crossing tensor with the loss-free
predictions without coding (cached on disk), and training images and their features for
what learns from them (fitted codecs, trained completion methods).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch

from dfsim import cache
from dfsim.data.datasets import ImageSet, load_image_folder
from dfsim.errors import UserError
from dfsim.experiment.inference import (
    check_crossing,
    check_rows,
    run_model,
    task_predict,
    users_model,
)
from dfsim.experiment.model_and_task import task_cache_id
from dfsim.experiment.specs import Scenario
from dfsim.models.inference import prepare_for_inference, run_batched


@functools.lru_cache(maxsize=2)
def _dataset_images(dataset, input_shape: tuple) -> ImageSet:
    """A dataset's images at ``input_shape``, loaded once per process (every config of a
    run reads the same images; a detection dataset draws its scenes each time). Shared by
    the configs: nothing writes into them."""
    return dataset.build().load(input_shape)


def load_images(scn: Scenario, input_shape) -> ImageSet:
    """The scenario's images, at the model's input size (``input_shape``: C, H, W)."""
    images = _dataset_images(scn.data.dataset, tuple(int(d) for d in input_shape))
    if images.images.shape[1:] != tuple(input_shape):
        raise UserError(
            f"data.dataset: {images.name} images are "
            f"{'x'.join(map(str, images.images.shape[1:]))}, the model takes "
            f"{'x'.join(map(str, input_shape))}"
        )
    if scn.data.n_images > len(images):
        raise UserError(
            f"data.n_images: {scn.data.n_images} exceeds the {len(images)} images of {images.name}"
        )
    return images.head(scn.data.n_images)


def features_cache_key(scn: Scenario, model, split: str, images: ImageSet, task) -> str:
    """The cache key of the edge features and the uncoded predictions: everything they
    depend on (model, weights, split, batch, image content, torch, task, device)."""
    return cache.key_of(
        model=scn.model.import_path or model.name,
        model_params=scn.model.params,
        weights=model.weights_id,
        split=split,
        batch=scn.batch_size,
        images=hashlib.sha256(images.images.tobytes()).hexdigest(),
        torch=torch.__version__,
        arrays="features_i",
        task=scn.task.name,  # the full model's predictions are the task's
        task_params=scn.task.params,
        task_id=task_cache_id(task),
        **device_key(scn),
    )


def device_key(scn: Scenario) -> dict:
    """Cache-key entry for artefacts computed on a GPU (CPU keys are left as they were)."""
    return {} if scn.device == "cpu" else {"device": scn.device}


def edge_pass(scn: Scenario, model, split: str, images: ImageSet, task, key: str):
    """Edge features of every crossing tensor and the loss-free predictions without coding
    (the full model's, or the task's own cloud sub-model's on the uncoded features), cached
    under ``key`` (:func:`features_cache_key`)."""
    stored = cache.load_arrays("features", key)
    if stored is None:
        x = model.normalise(images.images)
        name, n = scn.model.import_path or model.name, len(images)
        edge = f"model {name!r}: its edge sub-model at split {split!r}"
        users = users_model(scn)
        feats = run_model(prepare_for_inference(model.edge(split)), x, scn.batch_size, edge, users)
        feats = feats if isinstance(feats, tuple) else (feats,)
        check_crossing(feats, model.crossing(split), n, edge)
        stored = {f"features_{i}": f.astype(np.float32) for i, f in enumerate(feats)}
        if getattr(task, "cloud_model", None) is not None:  # the task's own cloud sub-model
            own = prepare_for_inference(task.cloud_model(model, split))
            what = f"task {scn.task.name!r}: its cloud sub-model"
            outputs = run_model(
                own, list(feats) if len(feats) > 1 else feats[0], scn.batch_size, what, users
            )
        else:
            what = f"model {name!r}: the full model"
            full = prepare_for_inference(model.full())
            outputs = run_model(full, x, scn.batch_size, what, users)
        check_rows(outputs, n, what)
        stored["clean_pred"] = task_predict(task, outputs, n)
        cache.save_arrays("features", key, stored)
    n = len(model.crossing(split))
    return [stored[f"features_{i}"] for i in range(n)], stored["clean_pred"]


def training_images(scn: Scenario, shape, n_images: int, what: str):
    """``n_images`` training images at the model's input ``shape`` (``what`` needs them)."""
    if scn.data.fit_dir:
        train = load_image_folder(scn.data.fit_dir, shape, "none").head(n_images)
    else:
        train = scn.data.dataset.build().training_images(shape, n_images)
    if train is None:
        raise UserError(
            f"{what} need training images: set data.fit_dir (a folder of images unlike the "
            f"{scn.data.dataset.name} test images)"
        )
    return train


def training_edge_features(scn: Scenario, model, split: str, n_images: int, stream: int):
    """Edge features (not coded) of ``n_images`` training images: what a codec learns from."""
    train = training_images(scn, model.input_shape, n_images, "encoding: fitted codecs")
    feats = run_batched(
        prepare_for_inference(model.edge(split)), model.normalise(train.images), scn.batch_size
    )
    return feats[stream] if isinstance(feats, tuple) else feats
