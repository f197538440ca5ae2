"""The built-in detector: a small one-stage CenterNet-style detector for ``fmnist-scenes``
(96x96 grey scenes, 10 classes), with committed weights.

Architecture (split points in brackets; ``add_k`` is a residual addition's output before
its activation, as in the default classifier)::

    stem    conv3x3/2(1->32) BN ReLU                    [stem   32x48x48]
    add_1   residual, conv3x3/2(32->64), 1x1/2 shortcut [add_1  64x24x24]
            ReLU                                        [relu_1 64x24x24]
    add_2   residual (64->64)                           [add_2  64x24x24]  default split
            ReLU                                        [relu_2 64x24x24]
    add_3   residual, conv3x3/2(64->128)                [add_3 128x12x12]
            ReLU                                        [relu_3 128x12x12]
    add_4   residual (128->128)                         [add_4 128x12x12]
            ReLU                                        [relu_4 128x12x12]
    head    conv3x3(128->128) ReLU, conv1x1 -> 14 channels at stride 8:
            10 class heatmaps (logits), x/y offset of the centre in its cell,
            width/height in cells

Post-processing (:func:`postprocess`, the model's declared ``postprocess``): sigmoid
heatmaps, a peak is a cell equal to the maximum of its 3x3 neighbourhood (CenterNet's
max-pool suppression: no IoU-based NMS), the ``max_detections`` highest peaks with a score
of at least ``score_threshold`` become boxes ``(x + dx) * 8 +- w * 8 / 2`` clipped to the
image. Training (``dfsim train --model fmnist-detector``) is in
:mod:`dfsim.models.training_detector`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfsim.models.fmnist_resnet import (
    ResidualAdd,
    conv_bn,
    fold_batchnorm,
    load_weights,
    weights_digest,
)
from dfsim.models.sequential import SequentialSplitModel
from dfsim.registry import FILE, register

WEIGHTS_FILE = Path(__file__).parent / "weights" / "fmnist_detector.pt"
NUM_CLASSES = 10
STRIDE = 8
INPUT_SHAPE = (1, 96, 96)
MEAN, STD = 0.25, 0.25  # scene pixel statistics, roughly: inputs centred and scaled


class CenterHead(nn.Module):
    """Heatmap logits, centre offsets and box sizes at stride 8."""

    def __init__(self, cin: int, width: int = 128, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, width), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(width, num_classes + 4, 1)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[:num_classes] = -2.19  # prior 0.1, as CenterNet initialises

    def forward(self, x):
        return self.out(self.body(x))


class FashionDetector(nn.Module):
    """Trainable form: named stages in order (see the module docstring)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, 32, 3, 2), nn.ReLU(inplace=True))
        self.add_1 = ResidualAdd(32, 64, stride=2)
        self.relu_1 = nn.ReLU()
        self.add_2 = ResidualAdd(64, 64)
        self.relu_2 = nn.ReLU()
        self.add_3 = ResidualAdd(64, 128, stride=2)
        self.relu_3 = nn.ReLU()
        self.add_4 = ResidualAdd(128, 128)
        self.relu_4 = nn.ReLU()
        self.head = CenterHead(128, num_classes=num_classes)

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        names = ("stem", "add_1", "relu_1", "add_2", "relu_2", "add_3", "relu_3", "add_4")
        return [(n, getattr(self, n)) for n in (*names, "relu_4", "head")]

    def forward(self, x):
        for _, m in self.named_stages():
            x = m(x)
        return x


def normalise(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 scenes -> the network's input: ``(x/255 - MEAN) / STD``."""
    return (torch.from_numpy(images_u8).float() / 255.0 - MEAN) / STD


def postprocess(
    outputs: np.ndarray, score_threshold: float = 0.05, max_detections: int = 50
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Head outputs (N x 14 x h x w) -> per image (boxes K x 4 xyxy in input pixels,
    scores K, class indices K), highest score first."""
    out = torch.as_tensor(outputs)
    n, _, h, w = out.shape
    heat = torch.sigmoid(out[:, :NUM_CLASSES])
    peaks = heat * (heat == F.max_pool2d(heat, 3, stride=1, padding=1))
    k = min(max_detections, NUM_CLASSES * h * w)
    scores, idx = peaks.reshape(n, -1).topk(k, dim=1)
    cls, cell = idx // (h * w), idx % (h * w)
    ys, xs = (cell // w).float(), (cell % w).float()
    reg = out[:, NUM_CLASSES:].reshape(n, 4, h * w)
    pick = reg.gather(2, cell[:, None, :].expand(n, 4, k))  # N x 4 x k
    cx, cy = (xs + pick[:, 0]) * STRIDE, (ys + pick[:, 1]) * STRIDE
    bw, bh = pick[:, 2].clamp(min=0) * STRIDE, pick[:, 3].clamp(min=0) * STRIDE
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=2)
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, w * STRIDE)
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, h * STRIDE)
    result = []
    for i in range(n):
        keep = scores[i] >= score_threshold
        result.append(
            (boxes[i][keep].numpy(), scores[i][keep].numpy(), cls[i][keep].numpy().astype(np.int64))
        )
    return result


@register("model", "fmnist-detector")
def fmnist_detector(weights: Annotated[str, FILE] | None = None) -> SequentialSplitModel:
    """The built-in fmnist-scenes detector with its committed weights (or ``weights``)."""
    net = FashionDetector()
    train = "dfsim train --model fmnist-detector"
    path = load_weights(net, weights, WEIGHTS_FILE, "model.weights", train)
    fold_batchnorm(net)
    return SequentialSplitModel(
        name="fmnist-detector",
        stages=net.named_stages(),
        input_shape=INPUT_SHAPE,
        default_split="add_2",
        num_classes=NUM_CLASSES,
        weights_id=weights_digest(path),
        normaliser=normalise,
        postprocess=postprocess,
    )
