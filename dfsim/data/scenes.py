"""``fmnist-scenes``: synthetic detection scenes made of Fashion-MNIST articles, the
built-in offline detection data of dfsim.

Each scene is a ``size`` x ``size`` grey canvas (a uniform level in [20, 80] plus
Gaussian noise of standard deviation 3) holding 1 to ``max_objects`` articles. An
article is a Fashion-MNIST image scaled to a square of 24 to 48 pixels (bilinear) and
placed at a uniformly random position where its box covers at most ``MAX_OVERLAP`` of
the smaller box's area with every box already placed (up to 50 tries; an article that
finds no place is left out), so every article stays mostly visible. Pixels combine as
``level + value * (255 - level) / 255`` where ``value`` is the brightest article pixel
there (0 outside articles). An article's box is the tight bounding box of its pixels of
value at least ``INK`` after scaling; its class is the article's label. Test scenes take
articles from the test split, training scenes from the training split, so no article
is in both. Everything follows from ``seed`` (a ``numpy.random.Generator``), so the
same parameters give the same scenes, byte for byte, on every machine.

The dataset writes the scenes once as PNGs with a COCO ``instances.json`` in the cache
(``$DFSIM_CACHE/scenes/...``), with the sha256 of each file in a sealed
``sha256sums.json``, and reads them back, checked, with the COCO loader, like any
COCO-format set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from dfsim import cache
from dfsim.data.coco import load_coco, write_coco
from dfsim.data.datasets import FASHION_MNIST_CLASSES, ImageSet, load_fashion_mnist
from dfsim.registry import DIR, Range, register

MAX_OVERLAP = 0.2
INK = 16  # a scaled article's pixel counts towards its box from this value (of 255)
MIN_SIDE, MAX_SIDE = 24, 48


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of boxes ``a`` (M x 4) and ``b`` (K x 4), xyxy, over the smaller
    one's area: M x K."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-12)


def generate_scenes(
    articles: np.ndarray,
    labels: np.ndarray,
    n: int,
    size: int = 96,
    max_objects: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``n`` scenes (N x size x size uint8) and each one's boxes (M x 5 float32: x1, y1,
    x2, y2, class) from ``articles`` (K x 28 x 28 uint8) with ``labels``."""
    import cv2

    rng = np.random.default_rng(seed)
    scenes = np.empty((n, size, size), np.uint8)
    all_boxes = []
    for i in range(n):
        level = rng.uniform(20, 80)
        canvas = np.full((size, size), level) + rng.normal(0, 3, (size, size))
        top = np.zeros((size, size))  # brightest article value at each pixel
        boxes: list[tuple] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            k = int(rng.integers(len(articles)))
            side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
            art = cv2.resize(articles[k], (side, side), interpolation=cv2.INTER_LINEAR)
            ys, xs = np.nonzero(art >= INK)
            if len(ys) == 0:
                continue
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            for _try in range(50):
                oy, ox = (int(v) for v in rng.integers(0, size - side + 1, 2))
                box = np.array([[ox + x0, oy + y0, ox + x1, oy + y1]], np.float64)
                if not boxes or box_overlap(box, np.asarray(boxes)[:, :4]).max() <= MAX_OVERLAP:
                    region = top[oy : oy + side, ox : ox + side]
                    np.maximum(region, art, out=region)
                    boxes.append((*box[0], int(labels[k])))
                    break
        img = canvas + top * (255 - canvas) / 255
        scenes[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 5))
    return scenes, all_boxes


def scene_seed(subset: str, seed: int) -> list[int]:
    """Training and test scenes draw from different streams of the same seed."""
    return [seed, 0 if subset == "test" else 1]


def make_scenes(
    subset: str, n: int, size: int, max_objects: int, seed: int, fmnist_dir=None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The scenes of ``subset`` (articles from that Fashion-MNIST split)."""
    src = load_fashion_mnist(subset, fmnist_dir)
    rng_seed = np.random.SeedSequence(scene_seed(subset, seed)).generate_state(1)[0]
    return generate_scenes(src.images[:, 0], src.labels, n, size, max_objects, int(rng_seed))


SUMS = "sha256sums.json"  # the sha256 of every other file of a scene set, sealed JSON


def _sums(d: Path, sync: bool = False) -> dict[str, str]:
    """The sha256 of every file in ``d`` but :data:`SUMS` (each fsync'd first if ``sync``)."""
    out = {}
    for p in sorted(d.iterdir()):
        if p.name != SUMS:
            with open(p, "rb") as f:
                if sync:
                    os.fsync(f.fileno())
                out[p.name] = cache.checksum(f.read()).decode()
    return out


def scenes_dir(subset: str, n: int, size: int, max_objects: int, seed: int, fmnist_dir) -> Path:
    """The scenes in COCO format in the cache, written on first use; a set whose files do
    not match their recorded checksums is discarded with a note and written again."""
    key = cache.key_of(version=2, subset=subset, n=n, size=size, max_objects=max_objects, seed=seed)
    d = cache.cache_dir() / "scenes" / f"fmnist-scenes-{subset}-{n}-{size}-{key}"
    if d.is_dir():
        try:
            intact = (d / SUMS).is_file() and cache.read_sealed_json(d / SUMS) == _sums(d)
        except OSError:  # a directory or an unreadable file among the scenes
            intact = False
        if intact:
            return d
        cache.discard(d, "scene set", "checksum mismatch", "generating it again")
    images, boxes = make_scenes(subset, n, size, max_objects, seed, fmnist_dir)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=d.parent, prefix=f".{d.name}."))
    try:
        write_coco(tmp, images, boxes, FASHION_MNIST_CLASSES)
        cache.write_sealed_json(tmp / SUMS, _sums(tmp, sync=True))
        os.replace(tmp, d)
    except OSError:
        if not (d / SUMS).is_file():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return d


@register("dataset", "fmnist-scenes")
class FashionScenes:
    """Synthetic detection scenes of Fashion-MNIST articles (see the module docstring):
    ``scenes`` test scenes of ``size`` x ``size`` pixels with up to ``max_objects``
    articles each; training scenes (for trained completion methods) come from the
    training split."""

    def __init__(
        self,
        subset: Literal["train", "test"] = "test",
        scenes: Annotated[int, Range(1, 100_000)] = 1000,
        size: Annotated[int, Range(48, 512)] = 96,
        max_objects: Annotated[int, Range(1, 20)] = 5,
        seed: Annotated[int, Range(0)] = 0,
        dir: Annotated[str, DIR] | None = None,  # noqa: A002 - the scenario key
    ):
        self.subset, self.scenes, self.size = subset, scenes, size
        self.max_objects, self.seed, self.dir = max_objects, seed, dir

    def _load(self, subset: str, n: int, input_shape) -> ImageSet:
        d = scenes_dir(subset, n, self.size, self.max_objects, self.seed, self.dir)
        return load_coco(d, input_shape, name=f"fmnist-scenes/{subset}")

    def load(self, input_shape) -> ImageSet:
        """The scenes at the model's input size, with their boxes."""
        return self._load(self.subset, self.scenes, input_shape)

    def training_images(self, input_shape, n: int) -> ImageSet:
        """Training-split scenes, to fit trained methods on."""
        return self._load("train", n, input_shape)

    def training_id(self) -> str:
        """Names the training images in cache keys."""
        return f"fmnist-scenes/train/{self.size}/{self.max_objects}/{self.seed}"
