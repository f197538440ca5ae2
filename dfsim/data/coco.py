"""COCO-format detection data: a directory of images with an ``instances.json`` (the
``coco`` dataset of scenarios), and the writer the built-in scene generator uses.

Reading: ``images``, ``annotations`` and ``categories`` as in COCO 2017
(``bbox`` = [x, y, width, height] in the image's pixels). Images are taken in order of
their ids; categories in order of their ids become class indices 0..K-1. Crowd
annotations (``iscrowd: 1``) are left out. Each image is *letterboxed* to the model's
input size: scaled by the largest factor that fits, placed at the top-left corner, the
rest padded with 0; its boxes are scaled by the same factor, so detections and ground
truth are compared in the model input's pixels. Every mistake in a file is a one-line
error naming the file and the entry.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated

import numpy as np

from dfsim.data.datasets import UNLABELLED, ImageSet
from dfsim.errors import UserError
from dfsim.registry import DIR, register


def letterbox(img: np.ndarray, input_shape) -> tuple[np.ndarray, float]:
    """An H x W (x 3, RGB) uint8 image -> (C x H x W uint8 at ``input_shape``, scale)."""
    import cv2

    c, h, w = input_shape
    if img.ndim == 2:
        img = img[:, :, None]
    if c == 1 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
    elif c == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    scale = min(h / img.shape[0], w / img.shape[1])
    if scale != 1.0:
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, size, interpolation=interp).reshape(size[1], size[0], c)
    out = np.zeros((h, w, c), np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    return np.ascontiguousarray(out.transpose(2, 0, 1)), scale


def read_annotations(path: Path) -> dict:
    """The parsed COCO json, its top-level structure checked."""
    if not path.is_file():
        raise UserError(f"data.annotations: COCO file {str(path)!r} not found")
    try:
        with open(path) as f:
            coco = json.load(f)
    except (OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0]
        raise UserError(f"data.annotations: cannot parse {str(path)!r}: {msg}") from None
    if not isinstance(coco, dict):
        raise UserError(f"data.annotations: {str(path)!r} is not a COCO object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise UserError(f"data.annotations: {str(path)!r} has no {key!r} list")
    return coco


def _entry_error(path: Path, what: str, entry: dict, msg: str) -> UserError:
    return UserError(f"data.annotations: {str(path)!r} {what} id {entry.get('id')!r}: {msg}")


def _index(coco: dict, path: Path) -> tuple[list, dict, list]:
    """The categories in order of their ids, each id's class index, and the image entries
    in order of their ids, the entries checked (a one-line error for the first bad one)."""
    for key, what, needs in (("categories", "category", "name"), ("images", "image", "file_name")):
        for i, e in enumerate(coco[key]):
            if not isinstance(e, dict):
                raise UserError(
                    f"data.annotations: {str(path)!r} {what} #{i + 1}: {e!r} is not an object"
                )
            if not isinstance(e.get("id"), int) or not isinstance(e.get(needs), str):
                raise _entry_error(path, what, e, f"needs an integer 'id' and a '{needs}'")
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    cat_index = {}
    for c in categories:
        cat_index[c["id"]] = len(cat_index)
    entries = sorted(coco["images"], key=lambda e: e["id"])
    seen = set()
    for e in entries:
        if e["id"] in seen:
            raise _entry_error(path, "image", e, "listed twice")
        seen.add(e["id"])
    if not entries:
        raise UserError(f"data.annotations: {str(path)!r} lists no images")
    return categories, cat_index, entries


def _letterboxed_images(d: Path, path: Path, entries: list, input_shape):
    """Every entry's image from ``d``, letterboxed: the images, and per image id its size
    (height, width) and its scale."""
    from dfsim.data.datasets import read_image

    sizes, scales, images = {}, {}, []
    for e in entries:
        file = d / e["file_name"]
        if not file.is_file():
            raise _entry_error(path, "image", e, f"file {e['file_name']!r} not found in {str(d)!r}")
        img = read_image(file)
        sizes[e["id"]] = img.shape[:2]
        x, scales[e["id"]] = letterbox(img, input_shape)
        images.append(x)
    return images, sizes, scales


def _box(path: Path, i: int, a, cat_index: dict, sizes: dict, scales: dict):
    """Annotation ``a`` (the i-th, from 0) as a box (x1, y1, x2, y2, class) in the model
    input's pixels, None for a crowd annotation; a one-line error if it is malformed."""
    if not isinstance(a, dict):
        raise UserError(
            f"data.annotations: {str(path)!r} annotation #{i + 1}: {a!r} is not an object"
        )
    if a.get("iscrowd", 0):
        return None
    if not isinstance(a.get("image_id"), int) or a["image_id"] not in sizes:
        raise _entry_error(path, "annotation", a, f"unknown image_id {a.get('image_id')!r}")
    if not isinstance(a.get("category_id"), int) or a["category_id"] not in cat_index:
        raise _entry_error(path, "annotation", a, f"unknown category_id {a.get('category_id')!r}")
    bbox = a.get("bbox")
    h, w = sizes[a["image_id"]]
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
        or bbox[2] <= 0
        or bbox[3] <= 0
        or bbox[0] < 0
        or bbox[1] < 0
        or bbox[0] + bbox[2] > w + 0.5
        or bbox[1] + bbox[3] > h + 0.5
    ):
        raise _entry_error(
            path,
            "annotation",
            a,
            f"bad bbox {bbox!r} (expected [x, y, width, height] with positive size "
            f"inside the {w}x{h} image)",
        )
    s = scales[a["image_id"]]
    x, y, bw, bh = (float(v) * s for v in bbox)
    return (x, y, x + bw, y + bh, cat_index[a["category_id"]])


def load_coco(
    directory, input_shape, annotations: str = "instances.json", name: str | None = None
) -> ImageSet:
    """The COCO-format set in ``directory`` (annotation file ``annotations``, relative to
    it unless absolute) at the model's input size."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"data.dir: directory {str(d)!r} not found")
    path = Path(annotations) if os.path.isabs(annotations) else d / annotations
    coco = read_annotations(path)
    categories, cat_index, entries = _index(coco, path)
    images, sizes, scales = _letterboxed_images(d, path, entries, input_shape)
    boxes: dict[int, list] = {e["id"]: [] for e in entries}
    for i, a in enumerate(coco["annotations"]):
        box = _box(path, i, a, cat_index, sizes, scales)
        if box is not None:
            boxes[a["image_id"]].append(box)
    per_image = tuple(np.asarray(boxes[e["id"]], np.float32).reshape(-1, 5) for e in entries)
    return ImageSet(
        np.stack(images),
        np.full(len(images), UNLABELLED, np.int64),
        name or f"coco:{d.name}",
        boxes=per_image,
        classes=tuple(c["name"] for c in categories),
    )


def write_coco(directory: Path, images: np.ndarray, boxes, classes) -> None:
    """Write uint8 images (N x H x W, grey) as PNGs and their boxes (per image M x 5:
    x1, y1, x2, y2, class) as ``instances.json`` in ``directory``: the format
    :func:`load_coco` reads."""
    import cv2

    directory.mkdir(parents=True, exist_ok=True)
    entries, anns = [], []
    for i, (img, b) in enumerate(zip(images, boxes, strict=True)):
        name = f"{i:06d}.png"
        if not cv2.imwrite(str(directory / name), img):
            raise UserError(f"data: cannot write {str(directory / name)!r}")
        entries.append(
            {"id": i + 1, "file_name": name, "height": img.shape[0], "width": img.shape[1]}
        )
        for x1, y1, x2, y2, c in b.tolist():
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(classes)]
    with open(directory / "instances.json", "w") as f:
        json.dump({"images": entries, "annotations": anns, "categories": cats}, f)


@register("dataset", "coco")
class CocoFolder:
    """A COCO-format detection set: images under ``dir`` and their ``annotations``
    (default ``instances.json`` in ``dir``); see the module docstring."""

    def __init__(
        self,
        dir: Annotated[str, DIR],  # noqa: A002 - the scenario key
        annotations: str = "instances.json",
        training_dir: Annotated[str, DIR] | None = None,
    ):
        self.dir, self.annotations, self.training_dir = dir, annotations, training_dir

    def load(self, input_shape) -> ImageSet:
        """The images at the model's input size, with their boxes."""
        return load_coco(self.dir, input_shape, self.annotations)

    def training_images(self, input_shape, n: int) -> ImageSet | None:
        """``training_dir`` (a COCO-format set too), to fit trained methods on."""
        if self.training_dir is None:
            return None
        return load_coco(self.training_dir, input_shape, self.annotations).head(n)

    def training_id(self) -> str:
        """Names the training images in cache keys."""
        return str(Path(self.training_dir).resolve()) if self.training_dir else ""
