"""The default model: a small residual CNN for Fashion-MNIST (28x28 grey images).

Architecture (split points in brackets; ``add_k`` is the output of a residual
addition *before* its activation, so the features are dense and signed like ResNet
``add_1`` in the literature)::

    stem    conv3x3(1->32) BN ReLU                      [stem   32x28x28]
    block1  conv3x3(32->32) BN ReLU conv3x3 BN + x      [add_1  32x28x28]
            ReLU                                        [relu_1 32x28x28]
    block2  conv3x3/2(32->64) BN ReLU conv3x3 BN
            + conv1x1/2(32->64) BN                      [add_2  64x14x14]
            ReLU                                        [relu_2 64x14x14]
    head    global average pool, linear(64->10)

For inference every convolution has its batch-norm folded in (:func:`fold_batchnorm`),
so the cloud sub-model is a handful of convolutions: it runs hundreds of thousands
of times in a sweep. Training (``dfsim train``) uses the unfolded modules.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from torch import nn

from dfsim.errors import UserError
from dfsim.models.sequential import SequentialSplitModel
from dfsim.registry import FILE, register

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "fmnist_resnet.pt"
# Fashion-MNIST pixel statistics (training split) used to normalise inputs.
MEAN, STD = 0.2860, 0.3530


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout)
    )


class ResidualAdd(nn.Module):
    """``main(x) + shortcut(x)`` with no activation after the sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.main = nn.Sequential(
            conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), conv_bn(cout, cout, 3)
        )
        self.shortcut = (
            nn.Identity() if (cin == cout and stride == 1) else conv_bn(cin, cout, 1, stride)
        )

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


class Head(nn.Module):
    def __init__(self, cin: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


class FashionResNet(nn.Module):
    """Trainable form: named stages in order (see module docstring)."""

    def __init__(self, width: int = 32, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, width), nn.ReLU(inplace=True))
        self.add_1 = ResidualAdd(width, width)
        self.relu_1 = nn.ReLU()
        self.add_2 = ResidualAdd(width, 2 * width, stride=2)
        self.relu_2 = nn.ReLU()
        self.head = Head(2 * width, num_classes)

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        return [
            (n, getattr(self, n)) for n in ("stem", "add_1", "relu_1", "add_2", "relu_2", "head")
        ]

    def forward(self, x):
        for _, m in self.named_stages():
            x = m(x)
        return x


def _fold(seq: nn.Sequential) -> nn.Conv2d:
    """Fold Conv2d(bias=False) + BatchNorm2d (eval statistics) into one Conv2d with bias."""
    conv, bn = seq[0], seq[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return fused


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Return a copy of ``module`` where every conv_bn pair is a single biased Conv2d."""
    for name, child in list(module.named_children()):
        if (
            isinstance(child, nn.Sequential)
            and len(child) == 2
            and isinstance(child[0], nn.Conv2d)
            and isinstance(child[1], nn.BatchNorm2d)
        ):
            setattr(module, name, _fold(child))
        else:
            fold_batchnorm(child)
    return module


def weights_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def normalise(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 images -> the network's input: ``(x/255 - MEAN) / STD``."""
    return (torch.from_numpy(images_u8).float() / 255.0 - MEAN) / STD


def _mismatch(net: nn.Module, state: dict) -> str:
    """How a state dict fails to fit ``net``, in a few words ('' if it fits): torch's own
    message puts each missing key on a line of its own."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        k
        for k in own
        if k in state and getattr(state[k], "shape", None) != getattr(own[k], "shape", None)
    ]
    parts = [
        f"{len(keys)} {what}, e.g. {keys[0]!r}"
        for keys, what in (
            (missing, "tensors missing"),
            (unexpected, "unexpected tensors"),
            (shapes, "tensors of another shape"),
        )
        if keys
    ]
    return "; ".join(parts)


def load_weights(
    net: nn.Module, weights, default: Path, key: str, train: str, what: str = "weights file"
) -> Path:
    """Load ``weights`` (else the committed ``default``) into ``net``, in eval mode; a missing
    or unloadable file is a one-line error naming the scenario ``key`` (``train``: the
    command that makes the committed file). Returns the file's path."""
    path = Path(weights) if weights else default
    if not path.is_file():
        raise UserError(
            f"{key}: {what} {str(path)!r} not found"
            + (f" (train them with `{train}`)" if not weights else "")
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and (mismatch := _mismatch(net, state)):
            raise ValueError(f"not weights of {type(net).__name__} ({mismatch})")
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's fault
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{key}: cannot load {str(path)!r}: {msg}") from None
    net.eval()
    return path


@register("model", "fmnist-resnet")
def fmnist_resnet(weights: Annotated[str, FILE] | None = None) -> SequentialSplitModel:
    """The default Fashion-MNIST ResNet with its committed weights (or ``weights``)."""
    net = FashionResNet()
    path = load_weights(net, weights, WEIGHTS_FILE, "model.weights", "dfsim train")
    fold_batchnorm(net)
    return SequentialSplitModel(
        name="fmnist-resnet",
        stages=net.named_stages(),
        input_shape=(1, 28, 28),
        default_split="add_1",
        num_classes=10,
        weights_id=weights_digest(path),
        normaliser=normalise,
    )


@register("model", "fmnist-resnet-traced")
def fmnist_resnet_traced(weights: Annotated[str, FILE] | None = None):
    """The same network and weights through the generic traced machinery
    (:class:`~dfsim.models.generic.GraphSplitModel`): its split points are the traced
    graph's nodes, also inside the residual blocks, where the skip and the branch both cross
    the cut: ``add_1.main`` (the default: the stem's output and the first block's branch,
    two 32x28x28 tensors whose sum is fmnist-resnet's ``add_1``) and ``add_2.shortcut``
    (the second block's two branches, two 64x14x14 tensors)."""
    from dfsim.models.generic import GraphSplitModel

    net = FashionResNet()
    path = load_weights(net, weights, WEIGHTS_FILE, "model.weights", "dfsim train")
    fold_batchnorm(net)
    return GraphSplitModel(
        "fmnist-resnet-traced",
        net,
        (1, 28, 28),
        default_split="add_1.main",
        num_classes=10,
        weights_id=weights_digest(path),
        mean=(MEAN,),
        std=(STD,),
    )
