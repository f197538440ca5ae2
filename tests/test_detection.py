"""Object detection: COCO mAP (hand-computed cases and pycocotools as the reference), NMS,
the detections array, the fmnist-scenes generator and dataset, the COCO-format loader
and its errors, the built-in detector's split and decoding, the task's one-line errors,
and a detector of the user's own (tests/byo_detector.py) run end to end on a COCO folder."""

import contextlib
import io
import json
import math
import re

import byo_detector  # noqa: E402  (tests/ is on sys.path)
import cv2
import numpy as np
import pytest
import torch
from conftest import run_scenario

from dfsim import testing
from dfsim.data.coco import load_coco
from dfsim.data.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from dfsim.data.scenes import (
    INK,
    MAX_OVERLAP,
    MAX_SIDE,
    MIN_SIDE,
    FashionScenes,
    box_overlap,
    generate_scenes,
    make_scenes,
)
from dfsim.errors import UserError
from dfsim.models.fmnist_detector import FashionDetector, fmnist_detector, postprocess
from dfsim.tasks.detection import Detection, coco_map, detections_array, nms
from dfsim.tools.cli import main


def dets_of(*images):
    """Per image a list of (x1, y1, x2, y2, score, class) -> the N x D x 6 detections array."""
    return detections_array(
        [
            (
                np.asarray([d[:4] for d in img], np.float32).reshape(-1, 4),
                np.asarray([d[4] for d in img], np.float32),
                np.asarray([d[5] for d in img], np.int64),
            )
            for img in images
        ]
    )


def truth_of(*images):
    """Per image a list of (x1, y1, x2, y2, class) -> M x 5 arrays."""
    return [np.asarray(img, np.float32).reshape(-1, 5) for img in images]


# --------------------------------------------------------------------------- mAP by hand
def test_map_is_one_when_every_box_is_found_first():
    truth = truth_of([(0, 0, 10, 10, 0)], [(20, 20, 40, 40, 0), (50, 50, 60, 70, 1)])
    dets = dets_of(
        [(0, 0, 10, 10, 0.6, 0)],
        [(20, 20, 40, 40, 0.9, 0), (50, 50, 60, 70, 0.3, 1)],
    )
    assert coco_map(dets, truth) == {"map": 1.0, "map50": 1.0}


def test_map_with_a_false_positive_ranked_first_by_hand():
    # One class, two images. Ground truth: g1 = [0,0,10,10] (image 1), g2 = [0,0,20,20]
    # (image 2). Detections by score: a false positive (0.9, image 1, IoU 0), g1 exactly
    # (0.8), and d2 = [0,0,20,14.4] in image 2 (0.7): IoU(d2, g2) = 288/400 = 0.72.
    #
    # IoU thresholds 0.50 .. 0.70 (5 of 10): FP, TP, TP. Recall 0, 1/2, 1; precision 0,
    # 1/2, 2/3; the precision envelope (max to the right) is 2/3 everywhere, so all 101
    # recall points read 2/3: AP = 2/3.
    # Thresholds 0.75 .. 0.95 (5 of 10): FP, TP, FP. Recall 0, 1/2, 1/2; precision 0, 1/2,
    # 1/3; envelope 1/2, 1/2, 1/3. Recall points 0, 0.01, ..., 0.50 (51 of them) read 1/2,
    # the 50 above 1/2 are never reached and read 0: AP = 51 * 0.5 / 101 = 25.5 / 101.
    # mAP@[.5:.95] = (5 * 2/3 + 5 * 25.5/101) / 10; mAP@0.5 = 2/3.
    truth = truth_of([(0, 0, 10, 10, 0)], [(0, 0, 20, 20, 0)])
    dets = dets_of(
        [(50, 50, 60, 60, 0.9, 0), (0, 0, 10, 10, 0.8, 0)],
        [(0, 0, 20, 14.4, 0.7, 0)],
    )
    got = coco_map(dets, truth)
    assert got["map50"] == pytest.approx(2 / 3, abs=1e-12)
    assert got["map"] == pytest.approx((2 / 3 + 25.5 / 101) / 2, abs=1e-12)


def test_map_with_a_missed_box_and_a_second_class_by_hand():
    # Class 0: two ground-truth boxes, one found (score 0.5): recall reaches 1/2 at
    # precision 1, so 51 of the 101 recall points read 1: AP = 51/101 at every threshold.
    # Class 1: its one box found exactly: AP = 1. The mean over the classes:
    # (51/101 + 1) / 2. A detection of class 1 on the missed class-0 box is a false
    # positive of class 1 ranked below its true positive: it does not lower class 1's AP.
    truth = truth_of([(0, 0, 10, 10, 0), (30, 30, 50, 50, 0)], [(5, 5, 25, 25, 1)])
    dets = dets_of([(0, 0, 10, 10, 0.5, 0), (30, 30, 50, 50, 0.2, 1)], [(5, 5, 25, 25, 0.9, 1)])
    got = coco_map(dets, truth)
    assert got["map"] == pytest.approx((51 / 101 + 1) / 2, abs=1e-12)
    assert got["map50"] == pytest.approx((51 / 101 + 1) / 2, abs=1e-12)


def test_map_without_ground_truth_is_nan_and_without_detections_zero():
    dets = dets_of([(0, 0, 10, 10, 0.9, 0)], [])
    nan = coco_map(dets, truth_of([], []))
    assert math.isnan(nan["map"]) and math.isnan(nan["map50"])
    empty = dets_of([], [])
    assert coco_map(empty, truth_of([(0, 0, 10, 10, 0)], [])) == {"map": 0.0, "map50": 0.0}
    padded = np.zeros((2, 5, 6), np.float32)
    padded[:, :, 5] = -1  # padding rows only
    assert coco_map(padded, truth_of([(0, 0, 10, 10, 0)], [])) == {"map": 0.0, "map50": 0.0}


def _random_case(seed: int, n_images: int = 7, n_classes: int = 4):
    """Ground truth and detections (jittered true boxes, missed boxes, wrong classes,
    background false positives) with distinct scores."""
    rng = np.random.default_rng(seed)
    truth, dets = [], []
    for i in range(n_images):
        m = 0 if i == 2 else int(rng.integers(1, 6))
        xy = rng.uniform(0, 70, (m, 2))
        wh = rng.uniform(4, 30, (m, 2))
        cls = rng.integers(0, n_classes, m)
        truth.append(np.column_stack([xy, xy + wh, cls]).astype(np.float32))
        boxes, scores, labels = [], [], []
        for b, c in zip(np.column_stack([xy, xy + wh]), cls, strict=True):
            if i == 4 or rng.random() < 0.2:  # image 4 and some boxes: missed
                continue
            size = np.concatenate([b[2:] - b[:2]] * 2)
            boxes.append(b + rng.normal(0, 0.12, 4) * size)
            labels.append(c if rng.random() < 0.85 else (c + 1) % n_classes)
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, 80, 2)
            boxes.append([x, y, x + rng.uniform(3, 20), y + rng.uniform(3, 20)])
            labels.append(rng.integers(0, n_classes))
        scores = rng.uniform(0.05, 1.0, len(boxes))
        dets.append((np.asarray(boxes).reshape(-1, 4), scores, np.asarray(labels, np.int64)))
    return truth, detections_array(dets)


def _pycocotools_map(dets: np.ndarray, truth, n_classes: int) -> tuple[float, float]:
    """pycocotools' mAP@[.5:.95] and mAP@0.5, built directly from the same numbers."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = []
    for i, t in enumerate(truth):
        for x1, y1, x2, y2, c in t.astype(np.float64).tolist():
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": 100 + i,
                    "category_id": int(c) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    results = [
        {
            "image_id": 100 + i,
            "category_id": int(d[5]) + 1,
            "bbox": [d[0], d[1], d[2] - d[0], d[3] - d[1]],
            "score": d[4],
        }
        for i, image in enumerate(dets.astype(np.float64).tolist())
        for d in image
        if d[5] >= 0
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": 100 + i} for i in range(len(truth))],
            "annotations": anns,
            "categories": [{"id": c + 1, "name": str(c)} for c in range(n_classes)],
        }
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_map_equals_pycocotools(seed):
    truth, dets = _random_case(seed)
    want_map, want_map50 = _pycocotools_map(dets, truth, 4)
    got = coco_map(dets, truth)
    assert 0.05 < want_map < want_map50 < 0.99  # a case where every part of the AP matters
    assert got["map"] == pytest.approx(want_map, abs=1e-9)
    assert got["map50"] == pytest.approx(want_map50, abs=1e-9)


def test_agreement_takes_the_confident_reference_boxes_as_truth():
    _, ref = _random_case(5)
    confident = (ref[:, :, 4] >= 0.3) & (ref[:, :, 5] >= 0)
    assert confident.any() and ((ref[:, :, 4] < 0.3) & (ref[:, :, 5] >= 0)).any()
    assert coco_map(ref, ref, min_score=0.3)["map50"] == 1.0
    # the reference's confident boxes, none of the others: agreement is still 1
    only = ref.copy()
    only[~confident] = 0
    only[~confident, 5] = -1
    assert coco_map(only, ref, min_score=0.3)["map50"] == 1.0
    # one confident box missing from the predictions: below 1
    i, j = np.argwhere(confident)[0]
    fewer = ref.copy()
    fewer[i, j, 5] = -1
    assert coco_map(fewer, ref, min_score=0.3)["map50"] < 1.0
    # no reference box as confident as min_score: nothing to agree with
    assert math.isnan(coco_map(ref, ref, min_score=1.1)["map50"])


def test_task_agreement_when_the_reference_found_nothing():
    from dfsim.tasks.detection import Detection

    _, ref = _random_case(5)
    task = Detection(agreement_score=0.3)
    silent = ref.copy()
    silent[:, :, 4] = np.minimum(silent[:, :, 4], 0.2)  # nothing as confident as 0.3
    # neither finds anything confident: they agree; one does: they do not
    assert task.evaluate(silent, silent, [np.zeros((0, 5))] * len(ref))["agreement"] == 1.0
    assert task.evaluate(ref, silent, [np.zeros((0, 5))] * len(ref))["agreement"] == 0.0


# --------------------------------------------------------------------------- nms, array
def test_nms_by_hand():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: best
            [1, 0, 11, 10],  # 1: IoU 90/110 = 0.82 with 0: suppressed
            [1, 0, 11, 10],  # 2: same box, other class: kept
            [20, 20, 30, 30],  # 3: far away: kept
            [0, 0, 10, 5],  # 4: IoU 50/100 = 0.5 with 0: kept at 0.5, not at 0.4
        ],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.85, 0.5, 0.7], np.float32)
    labels = np.array([0, 0, 1, 0, 0])
    assert nms(boxes, scores, labels, 0.5).tolist() == [0, 2, 4, 3]
    assert nms(boxes, scores, labels, 0.4).tolist() == [0, 2, 3]
    # a suppressed box suppresses nothing: C overlaps only B, which A suppressed
    chain = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], np.float32)
    keep = nms(chain, np.array([0.9, 0.8, 0.7], np.float32), np.zeros(3, int), 0.3)
    assert keep.tolist() == [0, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0), 0.5).size == 0


def test_detections_array_orders_pads_and_truncates():
    a = (
        np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], np.float32),
        np.array([0.2, 0.9, 0.5]),
        np.array([7, 8, 9]),
    )
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
    out = detections_array([a, empty])
    assert out.shape == (2, 3, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 4], [0.9, 0.5, 0.2])
    assert out[0, :, 5].tolist() == [8, 9, 7]
    assert out[0, 0, :4].tolist() == [2, 2, 3, 3]
    assert out[1, :, 5].tolist() == [-1, -1, -1] and not out[1, :, :5].any()
    top = detections_array([a, empty], max_detections=2)
    assert top.shape == (2, 2, 6) and top[0, :, 5].tolist() == [8, 9]
    wide = detections_array([a], max_detections=5)
    assert wide[0, 3:, 5].tolist() == [-1, -1] and wide[0, :3, 5].tolist() == [8, 9, 7]


# --------------------------------------------------------------------------- scenes
@pytest.fixture(scope="module")
def articles():
    src = load_fashion_mnist("test")
    return src.images[:400, 0], src.labels[:400]


def _own_overlap(a, b) -> float:
    """Intersection over the smaller box's area (computed here, not with box_overlap)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def test_scenes_are_deterministic(articles):
    a1, b1 = generate_scenes(*articles, n=6, size=96, max_objects=4, seed=7)
    a2, b2 = generate_scenes(*articles, n=6, size=96, max_objects=4, seed=7)
    assert a1.tobytes() == a2.tobytes()
    assert all(x.tobytes() == y.tobytes() for x, y in zip(b1, b2, strict=True))
    a3, b3 = generate_scenes(*articles, n=6, size=96, max_objects=4, seed=8)
    assert a1.tobytes() != a3.tobytes()
    assert a1.dtype == np.uint8 and a1.shape == (6, 96, 96)


def test_scene_boxes_are_valid(articles):
    labels = set(articles[1].tolist())
    scenes, boxes = generate_scenes(*articles, n=40, size=96, max_objects=5, seed=1)
    counts = [len(b) for b in boxes]
    assert min(counts) >= 1 and max(counts) <= 5 and len(set(counts)) > 1
    for img, b in zip(scenes, boxes, strict=True):
        assert b.dtype == np.float32 and b.shape[1] == 5
        assert set(b[:, 4].tolist()) <= labels and (b[:, 4] == np.round(b[:, 4])).all()
        assert (b[:, :2] >= 0).all() and (b[:, 2:4] <= 96).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert (b[:, 2:4] - b[:, :2] <= MAX_SIDE).all()
        for i in range(len(b)):
            for j in range(i):
                assert _own_overlap(b[i], b[j]) <= MAX_OVERLAP + 1e-9
        # outside every box only background, noise and faint (< INK) article pixels:
        # nowhere near an article's body
        outside = np.ones(img.shape, bool)
        for x1, y1, x2, y2, _ in b.astype(int).tolist():
            outside[y1:y2, x1:x2] = False
        bg = np.median(img[outside])
        assert img[outside].max() <= bg + 40


def test_white_articles_fill_exactly_their_boxes():
    # A uniformly white article makes its whole square saturate (level + 255 *
    # (255 - level) / 255 = 255) and its box is the whole square; the background never
    # reaches 255. So the saturated pixels are exactly the union of the boxes.
    white = np.full((2, 28, 28), 255, np.uint8)
    scenes, boxes = generate_scenes(white, np.array([3, 7]), n=25, size=96, max_objects=5, seed=2)
    for img, b in zip(scenes, boxes, strict=True):
        union = np.zeros(img.shape, bool)
        for x1, y1, x2, y2, c in b.tolist():
            assert x1 == int(x1) and c in (3, 7)
            assert MIN_SIDE <= x2 - x1 <= MAX_SIDE and x2 - x1 == y2 - y1
            union[int(y1) : int(y2), int(x1) : int(x2)] = True
        assert np.array_equal(img == 255, union)


def test_boxes_are_tight_around_the_ink():
    # An article with two saturated blocks, a ring of ink (40 >= INK) around them and a
    # faint halo (10 < INK) beyond. For each scene (one article) reconstruct the placement
    # from the documented rendering: the sizes whose bilinear scaling puts the saturated
    # blocks where the scene has them, of which the right one leaves, inverting
    # img = canvas + art * (255 - canvas) / 255, a canvas of the documented noise
    # (standard deviation 3). The box must be that scaled article's ink bounding box
    # (pixels >= INK, the halo left out) at that place.
    art = np.zeros((28, 28), np.uint8)
    art[3:25, 3:25] = 10
    art[6:22, 7:21] = 40
    art[7:10, 8:11] = 255
    art[18:21, 16:20] = 255
    scenes, boxes = generate_scenes(art[None], np.array([4]), n=12, size=96, max_objects=1, seed=3)
    for img, b in zip(scenes, boxes, strict=True):
        assert len(b) == 1 and b[0, 4] == 4
        sat = img == 255
        ys, xs = np.nonzero(sat)
        candidates = []  # (std of the implied canvas, ink box)
        for side in range(MIN_SIDE, MAX_SIDE + 1):
            scaled = cv2.resize(art, (side, side), interpolation=cv2.INTER_LINEAR)
            sy, sx = np.nonzero(scaled == 255)
            oy, ox = ys.min() - sy.min(), xs.min() - sx.min()
            if not (0 <= oy <= 96 - side and 0 <= ox <= 96 - side):
                continue
            placed = np.zeros(img.shape)
            placed[oy : oy + side, ox : ox + side] = scaled
            if not np.array_equal(placed == 255, sat):
                continue
            keep = placed < 255
            canvas = (img[keep] - placed[keep]) / (1 - placed[keep] / 255)
            iy, ix = np.nonzero(scaled >= INK)
            assert (scaled[scaled < INK] > 0).any()  # the faint halo exists but is left out
            box = [ox + ix.min(), oy + iy.min(), ox + ix.max() + 1, oy + iy.max() + 1]
            candidates.append((canvas.std(), box))
        candidates.sort(key=lambda c: c[0])
        assert candidates and candidates[0][0] < 3.6, candidates
        assert all(std > 5 for std, _ in candidates[1:]), candidates  # one placement fits
        assert b[0, :4].tolist() == candidates[0][1]


def test_box_overlap_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4]], np.float64)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 2, 2]], np.float64)
    np.testing.assert_allclose(box_overlap(a, b), [[0.5, 0, 1], [0, 0, 1]])


def test_fmnist_scenes_dataset_round_trips_through_coco(tmp_path, monkeypatch):
    monkeypatch.setenv("DFSIM_CACHE", str(tmp_path))
    ds = FashionScenes(scenes=10, max_objects=3, seed=4)
    got = ds.load((1, 96, 96))
    written = list((tmp_path / "scenes").glob("*/instances.json"))
    assert len(written) == 1 and len(list(written[0].parent.glob("*.png"))) == 10
    images, boxes = make_scenes("test", 10, 96, 3, 4)
    assert got.images.shape == (10, 1, 96, 96) and np.array_equal(got.images[:, 0], images)
    assert len(got.boxes) == 10
    for g, b in zip(got.boxes, boxes, strict=True):
        np.testing.assert_array_equal(g, b)
    assert got.classes == FASHION_MNIST_CLASSES
    # read again from the cache, and at another input size: letterboxed, boxes scaled
    again = ds.load((1, 96, 96))
    assert np.array_equal(again.images, got.images)
    small = ds.load((1, 64, 64))
    assert small.images.shape == (10, 1, 64, 64)
    for s, b in zip(small.boxes, boxes, strict=True):
        np.testing.assert_allclose(s[:, :4], b[:, :4] * 64 / 96, rtol=1e-6)
        np.testing.assert_array_equal(s[:, 4], b[:, 4])
    # training scenes come from the other split: different images
    train = ds.training_images((1, 96, 96), 4)
    assert not np.array_equal(train.images, got.images[:4])


# --------------------------------------------------------------------------- COCO loader
def _coco_folder(d, images=None, annotations=None, categories=None):
    """Three images (grey 40x80, grey 120x60, RGB 48x96) with a box each and a COCO file."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    grey1 = rng.integers(0, 256, (40, 80), dtype=np.uint8)
    grey2 = rng.integers(0, 256, (120, 60), dtype=np.uint8)
    rgb = np.zeros((48, 96, 3), np.uint8)
    rgb[:, :, 0] = 255  # pure red
    cv2.imwrite(str(d / "a.png"), grey1)
    cv2.imwrite(str(d / "b.png"), grey2)
    cv2.imwrite(str(d / "c.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    coco = {
        "images": images
        or [
            {"id": 3, "file_name": "c.png"},  # listed out of order: read in id order
            {"id": 1, "file_name": "a.png"},
            {"id": 2, "file_name": "b.png"},
        ],
        "annotations": annotations
        or [
            {"id": 11, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 10]},
            {"id": 12, "image_id": 2, "category_id": 3, "bbox": [6, 10, 24, 40]},
            {"id": 13, "image_id": 3, "category_id": 7, "bbox": [0, 0, 96, 48]},
            {"id": 14, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1},
        ],
        "categories": categories or [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}],
    }
    (d / "instances.json").write_text(json.dumps(coco))
    return coco, (grey1, grey2, rgb)


def test_coco_letterboxes_images_and_boxes(tmp_path):
    _, (grey1, grey2, rgb) = _coco_folder(tmp_path)
    s = load_coco(tmp_path, (1, 96, 96))
    assert s.images.shape == (3, 1, 96, 96) and s.classes == ("a", "b")
    # 40x80 -> scale min(96/40, 96/80) = 1.2: 48x96 at the top, 48 rows of padding
    np.testing.assert_array_equal(
        s.images[0, 0, :48], cv2.resize(grey1, (96, 48), interpolation=cv2.INTER_LINEAR)
    )
    assert not s.images[0, 0, 48:].any()
    # box [10, 5, 20, 10] (xywh) -> xyxy [10, 5, 30, 15] * 1.2; category 7 = class 1
    np.testing.assert_allclose(s.boxes[0], [[12, 6, 36, 18, 1]], rtol=1e-6)
    # 120x60 -> scale 0.8: 96x48 at the left, 48 columns of padding
    np.testing.assert_array_equal(
        s.images[1, 0, :, :48], cv2.resize(grey2, (48, 96), interpolation=cv2.INTER_AREA)
    )
    assert not s.images[1, 0, :, 48:].any()
    np.testing.assert_allclose(s.boxes[1], [[4.8, 8, 24, 40, 0]], rtol=1e-6)
    # 48x96 -> scale 1: unchanged at the top; red as grey: 0.299 * 255 ~ 76
    assert abs(int(s.images[2, 0, 0, 0]) - 76) <= 1 and not s.images[2, 0, 48:].any()
    assert (s.images[2, 0, :48] == s.images[2, 0, 0, 0]).all()
    np.testing.assert_allclose(s.boxes[2], [[0, 0, 96, 48, 1]])
    # the crowd annotation (id 14) is left out
    assert [len(b) for b in s.boxes] == [1, 1, 1]
    # an RGB model: grey images repeated on 3 channels, colour kept in RGB order
    c = load_coco(tmp_path, (3, 96, 96))
    assert np.array_equal(c.images[0, 0], c.images[0, 1]) and np.array_equal(
        c.images[0, 0], c.images[0, 2]
    )
    assert np.array_equal(c.images[0, 0], s.images[0, 0])
    assert c.images[2, :, 0, 0].tolist() == [255, 0, 0]


def _missing_json(d, coco):
    (d / "instances.json").unlink()


def _bad_json(d, coco):
    (d / "instances.json").write_text('{"images": [')


def _rewrite(change):
    def apply(d, coco):
        change(coco)
        (d / "instances.json").write_text(json.dumps(coco))

    return apply


def _set_ann(**kv):
    return _rewrite(lambda coco: coco["annotations"][1].update(kv))


@pytest.mark.parametrize(
    "damage,message",
    [
        (_missing_json, r"COCO file '{json}' not found"),
        (_bad_json, r"cannot parse '{json}': "),
        (
            _rewrite(lambda c: c["images"].append({"id": 9, "file_name": "gone.png"})),
            r"'{json}' image id 9: file 'gone.png' not found",
        ),
        (
            _set_ann(bbox=[6, 10, -24, 40]),
            r"'{json}' annotation id 12: bad bbox \[6, 10, -24, 40\]",
        ),
        (
            _set_ann(bbox=[50, 10, 24, 40]),
            r"'{json}' annotation id 12: bad bbox \[50, 10, 24, 40\]",
        ),
        (_set_ann(bbox=[6, 10, 24]), r"'{json}' annotation id 12: bad bbox \[6, 10, 24\]"),
        (_set_ann(bbox=[-2, 10, 4, 4]), r"'{json}' annotation id 12: bad bbox"),
        (_set_ann(category_id=42), r"'{json}' annotation id 12: unknown category_id 42"),
        (_set_ann(image_id=77), r"'{json}' annotation id 12: unknown image_id 77"),
        (_set_ann(image_id=[1]), r"'{json}' annotation id 12: unknown image_id \[1\]"),
        (_set_ann(bbox=[6, 10, float("nan"), 40]), r"'{json}' annotation id 12: bad bbox"),
        (
            _rewrite(lambda c: c["images"].append("d.png")),
            r"'{json}' image #4: 'd.png' is not an object",
        ),
        (
            _rewrite(lambda c: c["images"].append({"id": "4", "file_name": "d.png"})),
            r"'{json}' image id '4': needs an integer 'id' and a 'file_name'",
        ),
        (
            _rewrite(lambda c: c["annotations"].append(7)),
            r"'{json}' annotation #5: 7 is not an object",
        ),
    ],
)
def test_coco_mistakes_are_one_line_errors_naming_file_and_entry(tmp_path, damage, message):
    coco, _ = _coco_folder(tmp_path)
    damage(tmp_path, coco)
    path = str(tmp_path / "instances.json")
    with pytest.raises(
        UserError, match="^data.annotations: " + message.format(json=re.escape(path))
    ):
        load_coco(tmp_path, (1, 96, 96))
    try:
        load_coco(tmp_path, (1, 96, 96))
    except UserError as exc:
        assert "\n" not in str(exc)


# --------------------------------------------------------------------------- the detector
@pytest.fixture(scope="module")
def random_detector_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("detector") / "random.pt"
    torch.save(FashionDetector().state_dict(), path)
    return str(path)


def test_detector_splits_compose_to_the_full_model(random_detector_weights):
    model = fmnist_detector(weights=random_detector_weights)
    assert model.input_shape == (1, 96, 96) and model.default_split == "add_2"
    assert model.postprocess is postprocess
    # every split point; every property but describe (it times the model: slow here)
    testing.check_split_model(
        model, properties=[p for p in testing.SPLIT_MODEL_PROPERTIES if p != "describe"]
    )
    assert model.split_points == [
        *("stem", "add_1", "relu_1", "add_2", "relu_2", "add_3", "relu_3", "add_4", "relu_4")
    ]
    x = model.normalise(np.zeros((1, 1, 96, 96), np.uint8))
    with torch.no_grad():
        assert tuple(model.full()(x).shape) == (1, 14, 12, 12)


def test_detector_without_weights_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match=r"^model.weights: weights file '.*nope.pt' not found$"):
        fmnist_detector(weights=str(tmp_path / "nope.pt"))


def test_postprocess_decodes_a_known_peak():
    out = np.full((2, 14, 12, 12), -10.0, np.float32)
    out[:, 10:] = 0.0
    # image 0: class 3 peaks at cell (y 4, x 7), logit 2; centre offset (0.5, 0.25), size 3 x 2
    # cells: centre (7.5 * 8, 4.25 * 8) = (60, 34), 24 x 16 pixels -> [48, 26, 72, 42]
    out[0, 3, 4, 7] = 2.0
    out[0, 10:, 4, 7] = [0.5, 0.25, 3.0, 2.0]
    out[0, 3, 4, 8] = 1.0  # its weaker neighbour is no peak (3x3 max suppression)
    # class 7 at the corner cell, logit 0 (score 0.5), 4 x 4 cells centred on (0, 0):
    # [-16, -16, 16, 16] clipped to the image
    out[0, 7, 0, 0] = 0.0
    out[0, 10:, 0, 0] = [0.0, 0.0, 4.0, 4.0]
    dets = postprocess(out, score_threshold=0.05, max_detections=50)
    assert len(dets) == 2
    boxes, scores, labels = dets[0]
    np.testing.assert_allclose(boxes, [[48, 26, 72, 42], [0, 0, 16, 16]], atol=1e-5)
    np.testing.assert_allclose(scores, [1 / (1 + math.exp(-2)), 0.5], rtol=1e-6)
    assert labels.tolist() == [3, 7]
    assert dets[1][0].shape == (0, 4) and len(dets[1][1]) == 0 and len(dets[1][2]) == 0
    (b1, s1, l1), _ = postprocess(out, score_threshold=0.05, max_detections=1)
    assert l1.tolist() == [3] and len(b1) == 1
    (b2, s2, l2), _ = postprocess(out, score_threshold=0.6, max_detections=50)
    assert l2.tolist() == [3]
    # the task bound to the model decodes the same way, into the detections array
    task = Detection(max_detections=4)
    task.bind(type("M", (), {"postprocess": staticmethod(postprocess), "name": "m"})(), "add_2")
    pred = task.predict(out)
    assert pred.shape == (2, 4, 6)
    np.testing.assert_allclose(pred[0, :2, :4], [[48, 26, 72, 42], [0, 0, 16, 16]], atol=1e-5)
    assert pred[0, :, 5].tolist() == [3, 7, -1, -1] and pred[1, :, 5].tolist() == [-1] * 4


def test_task_nms_removes_duplicates_of_a_postprocess():
    def twice(outputs, score_threshold, max_detections):
        box = np.array([[10, 10, 30, 30], [11, 10, 31, 30], [60, 60, 70, 70]], np.float32)
        return [(box, np.array([0.9, 0.8, 0.7]), np.array([1, 1, 1]))] * len(outputs)

    model = type("M", (), {"postprocess": staticmethod(twice), "name": "m"})()
    plain, suppressed = Detection(), Detection(nms_iou=0.5)
    plain.bind(model, "s")
    suppressed.bind(model, "s")
    x = np.zeros((1, 3))
    assert (plain.predict(x)[0, :, 5] >= 0).sum() == 3
    kept = suppressed.predict(x)[0]
    assert kept[kept[:, 5] >= 0, 4].tolist() == pytest.approx([0.9, 0.7])


# --------------------------------------------------------------------------- a user's detector
def _write_user_coco(d, n=8):
    """``n`` RGB 40x80 images (letterboxed into the 64x64 input at scale 0.8) with 1 to 3
    coloured rectangles each, of 3 categories."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    images, anns = [], []
    for i in range(n):
        img = np.full((40, 80, 3), 30, np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            w, h = (int(v) for v in rng.integers(8, 24, 2))
            x, y = int(rng.integers(0, 80 - w)), int(rng.integers(0, 40 - h))
            c = int(rng.integers(0, 3))
            img[y : y + h, x : x + w, c] = 220
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": [x, y, w, h]}
            )
        cv2.imwrite(str(d / f"{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": f"{i:03d}.png", "width": 80, "height": 40})
    cats = [{"id": c + 1, "name": n} for c, n in enumerate(("red", "green", "blue"))]
    (d / "instances.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return d


@pytest.fixture(scope="module")
def user_coco(tmp_path_factory):
    return _write_user_coco(tmp_path_factory.mktemp("user-coco"))


def _user_scenario(coco_dir, task: str, model: str = "byo_detector:make") -> str:
    size = "[3, 64, 64]" if "detector" in model else "[3, 16, 16]"
    return f"""
name: byo-det
seed: 3
model: {{import: "{model}", input_size: {size}, mean: [0.5], std: [0.25]}}
data: {{dataset: coco, dir: {str(coco_dir)!r}, n_images: 8}}
task: {task}
encoding: {{bits: 8}}
packets: {{rows_per_packet: 4}}
channels: [{{kind: iid, loss_rates: [0.0, 0.3]}}]
methods: [zeros, linear]
trials: 2
"""


def test_users_detector_runs_end_to_end_on_a_coco_folder(user_coco, tmp_path):
    # the user's module works on its own: boxes in the 64x64 input, 3 classes
    net = byo_detector.make()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 64)).numpy()
    assert out.shape == (2, 7, 16, 16)
    (b, s, lab), _ = byo_detector.decode(out, score_threshold=0.05, max_detections=10)
    assert len(b) == len(s) == len(lab) == 10 and set(lab.tolist()) <= {0, 1, 2}

    task = '{name: detection, postprocess: "byo_detector:decode", nms_iou: 0.5}'
    rows = run_scenario(tmp_path, _user_scenario(user_coco, task))
    assert len(rows) == 2 * 2 * 2  # methods x loss rates x trials
    assert {r["method"] for r in rows} == {"zeros", "linear"}
    for r in rows:
        for m in ("map", "map50", "agreement"):
            assert 0.0 <= r[m] <= 1.0, (m, r)
        assert r["map"] <= r["map50"]
        if r["loss_rate"] == 0.0:
            assert r["agreement"] == 1.0
    assert any(r["agreement"] < 1.0 for r in rows if r["loss_rate"] > 0)


# --------------------------------------------------------------------------- task errors
@pytest.mark.parametrize(
    "task,model,message",
    [
        (
            '{name: detection, postprocess: "nosuchmodule:fn"}',
            "byo_detector:make",
            r"task\.postprocess: cannot import 'nosuchmodule' \(ModuleNotFoundError",
        ),
        (
            '{name: detection, postprocess: "byo_detector:nothing"}',
            "byo_detector:make",
            r"task\.postprocess: 'byo_detector' has no attribute 'nothing'",
        ),
        (
            "detection",
            "byo_model:make",
            r"task\.postprocess: model 'byo_model:make' declares no post-processing",
        ),
        (
            '{name: detection, postprocess: "byo_detector:decode_mismatched"}',
            "byo_detector:make",
            r"task\.postprocess: byo_detector:decode_mismatched failed \(ValueError: "
            r"boxes, scores and labels differ in length\)",
        ),
        (
            '{name: detection, postprocess: "byo_detector:decode_nothing"}',
            "byo_detector:make",
            r"task\.postprocess: byo_detector:decode_nothing failed \(TypeError",
        ),
        (
            '{name: detection, postprocess: "byo_detector:decode_fewer"}',
            "byo_detector:make",
            r"task\.postprocess: byo_detector:decode_fewer returned detections for 7 images, "
            r"given 8: it must return one \(boxes, scores, labels\) per image",
        ),
    ],
)
def test_detection_task_mistakes_are_one_line_errors(
    user_coco, tmp_path, capsys, task, model, message
):
    (tmp_path / "s.yaml").write_text(_user_scenario(user_coco, task, model))
    rc = main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    # one line, naming the key (after the scenario file, where the run names it)
    assert re.fullmatch(r"dfsim: error: (?:\S*s\.yaml: )?" + message + r"[^\n]*\n", err), err


def _load_with_postprocess(tmp_path, user_coco, spec: str):
    from dfsim.experiment.scenario import load_scenario

    task = f'{{name: detection, postprocess: "{spec}"}}'
    (tmp_path / "s.yaml").write_text(_user_scenario(user_coco, task))
    return load_scenario(tmp_path / "s.yaml")


def test_a_postprocess_that_is_no_import_path_is_refused_when_loading(tmp_path, user_coco):
    with pytest.raises(UserError, match=r"'no_colon' must look like 'package\.module:function'"):
        _load_with_postprocess(tmp_path, user_coco, "no_colon")
    _load_with_postprocess(tmp_path, user_coco, "byo_detector:decode")  # a good one loads


def test_a_postprocess_that_is_no_import_path_names_the_key(tmp_path, user_coco):
    # (after the scenario file's name: the test's tmp_path holds the word itself)
    with pytest.raises(UserError, match=r"\.yaml: [^']*postprocess[^']*'no_colon' must look like"):
        _load_with_postprocess(tmp_path, user_coco, "no_colon")


def test_classification_refuses_detector_outputs(tmp_path, random_detector_weights):
    from dfsim.tasks.classification import Classification

    with pytest.raises(UserError, match=r"N x 14 x 12 x 12 \(a detector\? set task: detection\)"):
        Classification().predict(np.zeros((2, 14, 12, 12), np.float32))
