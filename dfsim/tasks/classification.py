"""``classification``: top-1 accuracy, and top-1 agreement with the loss-free split model."""

from __future__ import annotations

import math

import numpy as np

from dfsim.data.datasets import UNLABELLED
from dfsim.errors import UserError
from dfsim.registry import register
from dfsim.stages import Metric


@register("task", "classification")
class Classification:
    """Predictions are the arg-max class; ``top1`` needs labels, ``agreement`` does not."""

    metrics = (
        Metric("top1", "top-1 accuracy", "%", higher_is_better=True, scale=100.0, core=True),
        Metric(
            "agreement",
            "top-1 agreement with the loss-free model",
            "%",
            higher_is_better=True,
            scale=100.0,
            core=True,
        ),
    )
    primary = "top1"
    label_free = "agreement"

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Logits N x classes -> class indices N."""
        if np.ndim(outputs) != 2:
            raise UserError(
                f"task: classification needs logits N x classes, the cloud sub-model gives "
                f"N x {' x '.join(map(str, np.shape(outputs)[1:]))} (a detector? set task: "
                "detection)"
            )
        return outputs.argmax(axis=1)

    def evaluate(self, predictions, reference, targets) -> dict[str, float]:
        """``top1`` over the labelled images (NaN when none is); ``agreement`` with the
        ``reference`` predictions."""
        return {
            "top1": accuracy(predictions, targets),
            "agreement": float((predictions == reference).mean()),
        }

    def __repr__(self) -> str:
        return "Classification()"


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 over the labelled images; NaN when none is labelled (agreement only)."""
    known = labels != UNLABELLED
    return float((predictions[known] == labels[known]).mean()) if known.any() else math.nan
