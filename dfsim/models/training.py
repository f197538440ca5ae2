"""Training of the default Fashion-MNIST model (``dfsim train``).

Deterministic: a fixed seed drives weight init, shuffling and augmentation (random
2-pixel shifts and horizontal flips), and torch runs with deterministic algorithms, so the
same seed on the same torch build and thread count gives the same weights run after run.
The committed weights are older than this code and are not among them: a retraining gives
other weights (benchmarks/training.md, benchmarks/models-notes.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dfsim.data.datasets import load_fashion_mnist
from dfsim.models.fmnist_resnet import MEAN, STD, FashionResNet, normalise


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), value=float(-MEAN / STD))
    dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()  # one shift per batch: cheap
    return padded[:, :, dy : dy + 28, dx : dx + 28]


def train_epoch(forward, x, y, perm, batch_size: int, opt, sched, gen) -> float:
    """One pass over ``x`` in the order ``perm``: each batch augmented (``gen``), ``forward``
    (the network, or a wrapper that codes its split features) on it, label-smoothed cross
    entropy, one optimiser and scheduler step. Returns the sum of the per-image losses."""
    total = 0.0
    for i in range(0, len(perm), batch_size):
        idx = perm[i : i + batch_size]
        xb = _augment(x[idx], gen)
        loss = F.cross_entropy(forward(xb), y[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(idx)
    return total


def train(
    out: Path,
    epochs: int = 12,
    batch_size: int = 128,
    lr: float = 0.05,
    seed: int = 0,
    data_dir: str | None = None,
    log=print,
) -> dict:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(seed)
    train_set = load_fashion_mnist("train", data_dir)
    test_set = load_fashion_mnist("test", data_dir)
    x_train, y_train = normalise(train_set.images), torch.from_numpy(train_set.labels)
    x_test, y_test = normalise(test_set.images), torch.from_numpy(test_set.labels)

    net = FashionResNet()
    steps = epochs * ((len(x_train) + batch_size - 1) // batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total = train_epoch(net, x_train, y_train, perm, batch_size, opt, sched, gen)
        acc = evaluate(net, x_test, y_test)
        log(
            f"epoch {epoch + 1}/{epochs}: loss {total / len(x_train):.4f}, test top-1 {acc:.4f}, "
            f"{time.perf_counter() - t0:.0f} s"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    return {"top1": acc, "seconds": time.perf_counter() - t0, "epochs": epochs, "seed": seed}


@torch.no_grad()
def evaluate(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((net(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)
