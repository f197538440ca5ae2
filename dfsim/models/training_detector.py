"""Training of the built-in fmnist-scenes detector (``dfsim train --model fmnist-detector``).

CenterNet's recipe at stride 8: a Gaussian heatmap target per class (an elliptical
Gaussian at each box centre, standard deviations box width/height x 0.54 / 6 in cells,
peak exactly 1 at the centre cell), penalty-reduced focal loss (alpha 2, beta 4)
normalised by the number of objects, and L1 losses at the centre cells on the centre's
offset in its cell (weight 1) and on the box size in cells (weight 0.1). Every epoch
draws fresh training scenes (training-split articles, a seed per epoch), so the
detector never sees the same scene twice and never an article of the test split.
AdamW with a one-cycle schedule. Deterministic: the same seed on the same torch build
gives the same weights.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dfsim.data.datasets import load_fashion_mnist
from dfsim.data.scenes import generate_scenes
from dfsim.models.fmnist_detector import (
    INPUT_SHAPE,
    NUM_CLASSES,
    STRIDE,
    FashionDetector,
    normalise,
    postprocess,
)


def targets(boxes: list[np.ndarray], h: int, w: int) -> tuple[np.ndarray, ...]:
    """Heatmaps (N x classes x h x w), regression targets (N x 4 x h x w: dx, dy, bw, bh
    in cells) and the mask of centre cells (N x h x w)."""
    n = len(boxes)
    heat = np.zeros((n, NUM_CLASSES, h, w), np.float32)
    reg = np.zeros((n, 4, h, w), np.float32)
    mask = np.zeros((n, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i, b in enumerate(boxes):
        for x1, y1, x2, y2, c in b:
            cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
            bw, bh = (x2 - x1) / STRIDE, (y2 - y1) / STRIDE
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sx, sy = max(bw * 0.54 / 6, 0.3), max(bh * 0.54 / 6, 0.3)
            g = np.exp(-((xx - ix) ** 2) / (2 * sx**2) - ((yy - iy) ** 2) / (2 * sy**2))
            np.maximum(heat[i, int(c)], g, out=heat[i, int(c)])
            reg[i, :, iy, ix] = (cx - ix, cy - iy, bw, bh)
            mask[i, iy, ix] = 1.0
    return heat, reg, mask


def loss_fn(out: torch.Tensor, heat, reg, mask) -> torch.Tensor:
    """Focal loss on the heatmaps plus L1 on offsets and sizes at the centres."""
    p = torch.sigmoid(out[:, :NUM_CLASSES]).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    n_pos = pos.sum().clamp(min=1)
    focal = -(
        pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * (1 - heat) ** 4 * p**2 * torch.log(1 - p)
    ).sum()
    r = out[:, NUM_CLASSES:]
    m = mask[:, None]
    l1 = (torch.abs(r - reg) * m).sum(dim=(0, 2, 3)) / n_pos
    return focal / n_pos + l1[:2].sum() + 0.1 * l1[2:].sum()


def train_epoch(forward, xs, targets_, perm, batch_size: int, opt, sched) -> float:
    """One pass over ``xs`` in the order ``perm``, whole batches only: ``forward`` (the
    network, or a wrapper that codes its split features) on each batch, the CenterNet loss
    against ``targets_`` (heat, reg, mask), one optimiser and scheduler step per batch.
    Returns the sum of the batch losses."""
    heat, reg, mask = targets_
    total = 0.0
    for i in range(0, len(perm) - batch_size + 1, batch_size):
        idx = perm[i : i + batch_size]
        loss = loss_fn(forward(xs[idx]), heat[idx], reg[idx], mask[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach())
    return total


def train(
    out: Path,
    epochs: int = 8,
    scenes_per_epoch: int = 8000,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    data_dir: str | None = None,
    log=print,
) -> dict:
    """Train and save the weights; returns the final held-out mAP and the time taken."""
    from dfsim.errors import UserError

    if epochs < 1 or scenes_per_epoch < batch_size:
        raise UserError(f"--epochs: at least 1 epoch of {batch_size} scenes, got {epochs}")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(seed)
    articles = load_fashion_mnist("train", data_dir)
    test_articles = load_fashion_mnist("test", data_dir)
    size = INPUT_SHAPE[1]
    h = w = size // STRIDE
    val_x, val_boxes = generate_scenes(
        test_articles.images[:, 0], test_articles.labels, 1000, size, seed=seed + 10_000
    )
    net = FashionDetector()
    steps = epochs * (scenes_per_epoch // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        ep_seed = int(np.random.SeedSequence([seed, 1, epoch]).generate_state(1)[0])
        x, boxes = generate_scenes(
            articles.images[:, 0], articles.labels, scenes_per_epoch, size, seed=ep_seed
        )
        heat, reg, mask = (torch.from_numpy(a) for a in targets(boxes, h, w))
        xs = normalise(x[:, None])
        perm = torch.randperm(len(xs), generator=gen)
        total = train_epoch(net, xs, (heat, reg, mask), perm, batch_size, opt, sched)
        stats = evaluate(net, val_x, val_boxes)
        log(
            f"epoch {epoch + 1}/{epochs}: loss {total / (len(perm) // batch_size):.4f}, "
            f"held-out mAP@0.5 {stats['map50']:.4f}, mAP {stats['map']:.4f}, "
            f"{time.perf_counter() - t0:.0f} s"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    return {**stats, "seconds": time.perf_counter() - t0, "epochs": epochs, "seed": seed}


@torch.no_grad()
def evaluate(net: torch.nn.Module, images: np.ndarray, boxes, batch_size: int = 250) -> dict:
    """COCO mAP@0.5 and mAP@[.5:.95] of ``net`` on scenes (N x H x W uint8)."""
    from dfsim.tasks.detection import coco_map, detections_array

    net.eval()
    outs = [
        net(normalise(images[i : i + batch_size, None])) for i in range(0, len(images), batch_size)
    ]
    dets = detections_array(postprocess(torch.cat(outs).numpy()))
    return coco_map(dets, boxes)
