"""``detection``: COCO mean average precision of a detector's boxes, and its agreement
with the loss-free split model's detections.

Post-processing contract. The cloud sub-model's outputs for a batch (an array, or a
tuple of arrays when it returns several) go to a *post-processing callable*
``fn(outputs, score_threshold=..., max_detections=...)`` that returns, for every image,
a tuple ``(boxes, scores, labels)``: boxes K x 4 as x1, y1, x2, y2 in the model input's
pixels, scores K, class indices K (0-based, the dataset's class order). The callable is
the task's ``postprocess`` (``"package.module:function"``), else the one the model
declares (the built-in ``fmnist-detector`` declares its CenterNet decoding). When
``nms_iou`` is set, the task then applies greedy per-class non-maximum suppression at
that IoU (for detectors whose post-processing does not suppress duplicates itself).
Each image keeps its ``max_detections`` best boxes.

Metrics (computed by ``faster-coco-eval``, a maintained C++ implementation of the COCO
evaluation that reproduces pycocotools' numbers, chosen for its speed, which matters
when every trial and method is scored: benchmarks/models-notes.md): ``map`` =
mAP@[.5:.95] and ``map50`` = mAP@0.5 against the dataset's boxes, over all images of the
trial; ``agreement`` = mAP@0.5 of the detections against the loss-free split model's
detections of score at least ``agreement_score`` taken as ground truth (no labels
needed; when the loss-free model found nothing that confident, 1 if the detections have
nothing that confident either, else 0). A trial whose images have no ground-truth box
has NaN for ``map``/``map50``. Predictions are kept as one array N x ``max_detections``
x 6 (x1, y1, x2, y2, score, class; unused rows have class -1).
"""

from __future__ import annotations

import importlib
import math
from typing import Annotated

import numpy as np

from dfsim.errors import UserError
from dfsim.registry import Range, import_object, register
from dfsim.stages import Metric


def detections_array(dets, max_detections: int | None = None) -> np.ndarray:
    """Per-image (boxes, scores, labels) -> N x D x 6 (best first; unused rows: class -1)."""
    d = max_detections or max((len(s) for _, s, _ in dets), default=0)
    out = np.zeros((len(dets), d, 6), np.float32)
    out[:, :, 5] = -1
    for i, (boxes, scores, labels) in enumerate(dets):
        order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:d]
        k = len(order)
        out[i, :k, :4] = np.asarray(boxes, np.float32).reshape(-1, 4)[order]
        out[i, :k, 4] = np.asarray(scores)[order]
        out[i, :k, 5] = np.asarray(labels)[order]
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy per-class non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    suppressed = np.zeros(len(scores), bool)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for a, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[a + 1 :]
        rest = rest[(labels[rest] == labels[i]) & ~suppressed[rest]]
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.clip(rb - lt, 0, None).prod(axis=1)
        suppressed[rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-12) > iou]] = True
    return np.asarray(keep, np.int64)


def coco_map(dets: np.ndarray, truth, min_score: float | None = None) -> dict[str, float]:
    """COCO ``map`` (mAP@[.5:.95]) and ``map50`` of detections ``dets`` (N x D x 6)
    against ground truth ``truth``: per image an M x 5 array (x1, y1, x2, y2, class), or
    another N x D x 6 detections array whose boxes of score >= ``min_score`` are taken as
    the ground truth. NaN when there is no ground-truth box at all."""
    from faster_coco_eval import COCO, COCOeval_faster

    if isinstance(truth, np.ndarray) and truth.ndim == 3:
        keep = (truth[:, :, 5] >= 0) & (truth[:, :, 4] >= (min_score or 0.0))
        truth = [t[k][:, [0, 1, 2, 3, 5]] for t, k in zip(truth, keep, strict=True)]
    images, anns, classes = [], [], set()
    for i, t in enumerate(truth):
        images.append({"id": i + 1})
        for x1, y1, x2, y2, c in np.asarray(t, np.float64).reshape(-1, 5).tolist():
            w, h = x2 - x1, y2 - y1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            classes.add(int(c))
    if not anns:
        return {"map": math.nan, "map50": math.nan}
    valid = dets[:, :, 5] >= 0
    n_det = int(valid.sum())
    if n_det == 0:
        return {"map": 0.0, "map50": 0.0}
    img, slot = np.nonzero(valid)
    d = dets[img, slot].astype(np.float64)
    classes |= set(d[:, 5].astype(int).tolist())
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c + 1, "name": str(c)} for c in sorted(classes)],
    }
    gt.createIndex()
    res = np.column_stack(
        [img + 1, d[:, 0], d[:, 1], d[:, 2] - d[:, 0], d[:, 3] - d[:, 1], d[:, 4], d[:, 5] + 1]
    )
    dt = gt.loadRes(res)
    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {"map": float(ev.stats[0]), "map50": float(ev.stats[1])}


def import_callable(spec: str, key: str):
    """``package.module:function`` -> the function (one-line errors naming ``key``)."""
    obj = import_object(spec, key)
    if not callable(obj):
        raise UserError(f"{key}: {spec} is not callable")
    return obj


@register("task", "detection")
class Detection:
    """Object detection scored by COCO mAP (see the module docstring)."""

    metrics = (
        Metric("map", "mAP@[.5:.95]", "%", higher_is_better=True, scale=100.0, core=True),
        Metric("map50", "mAP@0.5", "%", higher_is_better=True, scale=100.0, core=True),
        Metric(
            "agreement",
            "mAP@0.5 against the loss-free detections",
            "%",
            higher_is_better=True,
            scale=100.0,
            core=True,
        ),
    )
    primary = "map50"
    label_free = "agreement"

    def __init__(
        self,
        postprocess: str | None = None,
        score_threshold: Annotated[float, Range(0, 1)] = 0.05,
        max_detections: Annotated[int, Range(1, 100)] = 50,  # COCO scores at most 100
        nms_iou: Annotated[float, Range(0, 1, lo_open=True)] | None = None,
        agreement_score: Annotated[float, Range(0, 1)] = 0.3,
    ):
        if postprocess is not None and ":" not in postprocess:
            raise ValueError(
                f"postprocess: {postprocess!r} must look like 'package.module:function'"
            )
        self.postprocess_path = postprocess
        self.score_threshold, self.max_detections = score_threshold, max_detections
        self.nms_iou, self.agreement_score = nms_iou, agreement_score
        self._post = None

    def bind(self, model, split: str) -> None:
        """Take the post-processing from ``postprocess``, else from the model."""
        if self.postprocess_path:
            self._post = import_callable(self.postprocess_path, "task.postprocess")
        else:
            self._post = getattr(model, "postprocess", None)
            if self._post is None:
                raise UserError(
                    f"task.postprocess: model {model.name!r} declares no post-processing; "
                    "give one as task: {name: detection, postprocess: 'package.module:function'}"
                )

    def cache_id(self) -> str:
        """The post-processing module's source (digest), which determines the predictions."""
        if not self.postprocess_path:
            return ""
        import hashlib
        import inspect

        try:
            mod = importlib.import_module(self.postprocess_path.split(":", 1)[0])
            return hashlib.sha256(inspect.getsource(mod).encode()).hexdigest()[:16]
        except Exception:  # noqa: BLE001 - bind reports an import failure in one line
            return ""

    def targets(self, images):
        """Each image's ground-truth boxes."""
        if images.boxes is None:
            n = len(images)
            return tuple(np.zeros((0, 5), np.float32) for _ in range(n))
        return images.boxes

    def predict(self, outputs) -> np.ndarray:
        """Cloud outputs -> detections N x max_detections x 6."""
        if self._post is None:
            raise RuntimeError("Detection.bind(model) must be called before predict")
        parts = outputs if isinstance(outputs, tuple) else (outputs,)
        n = len(parts[0])
        try:
            dets = self._post(
                outputs, score_threshold=self.score_threshold, max_detections=self.max_detections
            )
            dets = [tuple(np.asarray(a) for a in d) for d in dets]
            if len(dets) != n:
                raise UserError(
                    f"task.postprocess: {self._describe()} returned detections for "
                    f"{len(dets)} images, given {n}: it must return one (boxes, scores, "
                    "labels) per image"
                )
            for d in dets:
                if len(d) != 3:
                    raise ValueError(f"an image's detections are {len(d)} arrays, not 3")
            for boxes, scores, labels in dets:
                if boxes.reshape(-1, 4).shape[0] != len(scores) or len(scores) != len(labels):
                    raise ValueError("boxes, scores and labels differ in length")
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's callable broke its contract
            raise UserError(
                f"task.postprocess: {self._describe()} failed ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); it must return per image "
                "(boxes K x 4 xyxy, scores K, labels K)"
            ) from None
        kept = []
        for boxes, scores, labels in dets:
            boxes = boxes.reshape(-1, 4).astype(np.float32)
            scores, labels = scores.astype(np.float32), labels.astype(np.int64)
            keep = scores >= self.score_threshold
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            if self.nms_iou is not None and len(scores):
                k = nms(boxes, scores, labels, self.nms_iou)
                boxes, scores, labels = boxes[k], scores[k], labels[k]
            kept.append((boxes, scores, labels))
        return detections_array(kept, self.max_detections)

    def _describe(self) -> str:
        return self.postprocess_path or "the model's post-processing"

    def evaluate(self, predictions, reference, targets) -> dict[str, float]:
        """mAP against the ground truth, and mAP@0.5 against the loss-free detections."""
        truth = coco_map(predictions, targets)
        agree = coco_map(predictions, reference, min_score=self.agreement_score)["map50"]
        if math.isnan(agree):  # the reference found nothing: agree when neither does
            confident = (predictions[:, :, 5] >= 0) & (predictions[:, :, 4] >= self.agreement_score)
            agree = 0.0 if confident.any() else 1.0
        return {"map": truth["map"], "map50": truth["map50"], "agreement": agree}

    def show(self, ax, image: np.ndarray, prediction: np.ndarray, classes) -> None:
        """Draw one image's detections of score >= ``agreement_score`` on it (for display
        only, a box overlapping a better one of another class by IoU > 0.5 is left out)."""
        from matplotlib.patches import Rectangle

        ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray")
        p = prediction[(prediction[:, 5] >= 0) & (prediction[:, 4] >= self.agreement_score)]
        p = p[nms(p[:, :4], p[:, 4], np.zeros(len(p), np.int64), 0.5)] if len(p) else p
        for x1, y1, x2, y2, score, c in p.tolist():
            name = classes[int(c)] if classes is not None else str(int(c))
            rect = Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color="#ff4040")
            ax.add_patch(rect)
            ax.text(x1, y1 - 1, f"{name} {score:.2f}", fontsize=5, color="#ffd040", va="bottom")

    def __repr__(self) -> str:
        return f"Detection(postprocess={self.postprocess_path!r})"
