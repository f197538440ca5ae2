"""A small detector of 'a user's own', loaded by import path in tests (tests/ is on
sys.path): a dense one-stage head at stride 4 on 3 x 64 x 64 RGB inputs, and its
post-processing callable following the contract of :mod:`dfsim.tasks.detection`."""

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 3
STRIDE = 4


class TinyDetector(nn.Module):
    """conv/2 -> conv/2 -> 1x1 head: NUM_CLASSES class logits, then dx, dy, log w, log h
    per cell (16 x 16 cells for a 64 x 64 input)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Conv2d(16, NUM_CLASSES + 4, 1)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a))
        return self.head(b)


def make():
    torch.manual_seed(0)
    return TinyDetector()


def decode(outputs, score_threshold=0.05, max_detections=50):
    """Head outputs (N x (NUM_CLASSES + 4) x h x w) -> per image (boxes K x 4 xyxy in
    input pixels, scores K, labels K): every cell's best class, no suppression (the
    scenario asks the task for NMS)."""
    out = np.asarray(outputs, np.float64)
    n, _, h, w = out.shape
    scores_all = 1.0 / (1.0 + np.exp(-out[:, :NUM_CLASSES]))
    labels = scores_all.argmax(axis=1).reshape(n, -1)
    scores = scores_all.max(axis=1).reshape(n, -1)
    ys, xs = np.divmod(np.arange(h * w), w)
    reg = out[:, NUM_CLASSES:].reshape(n, 4, -1)
    cx = (xs + 1.0 / (1.0 + np.exp(-reg[:, 0]))) * STRIDE
    cy = (ys + 1.0 / (1.0 + np.exp(-reg[:, 1]))) * STRIDE
    bw = np.exp(np.clip(reg[:, 2], -2, 2)) * STRIDE * 2
    bh = np.exp(np.clip(reg[:, 3], -2, 2)) * STRIDE * 2
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=2)
    result = []
    for i in range(n):
        order = np.argsort(-scores[i], kind="stable")[:max_detections]
        order = order[scores[i][order] >= score_threshold]
        result.append((boxes[i][order], scores[i][order], labels[i][order]))
    return result


def decode_mismatched(outputs, score_threshold=0.05, max_detections=50):
    """Broken on purpose (for the error tests): one score fewer than boxes."""
    return [(b, s[:-1], c) for b, s, c in decode(outputs, score_threshold, max_detections)]


def decode_nothing(outputs, score_threshold=0.05, max_detections=50):
    """Broken on purpose (for the error tests): returns None."""
    return None


def decode_fewer(outputs, score_threshold=0.05, max_detections=50):
    """Broken on purpose (for the error tests): drops the last image's detections."""
    return decode(outputs, score_threshold, max_detections)[:-1]
