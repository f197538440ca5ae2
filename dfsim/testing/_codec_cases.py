"""What :func:`dfsim.testing.check_codec` runs a codec on, and what its packets hold: batches
of feature-like and adversarial tensors in several packet layouts, and the entries a
missing packet loses (its rows, or for a whole-tensor codec its whole image)."""

from __future__ import annotations

import numpy as np

from dfsim.testing._common import synthetic_features
from dfsim.transport.packets import PacketLayout

# (shape C x H x W, rows per packet); the send order alternates
DEFAULT_CODEC_LAYOUTS = (
    ((6, 12, 10), 4),
    ((4, 7, 5), 3),
    ((1, 9, 6), 2),
    ((3, 5, 8), 5),
    ((2, 6, 4), 1),
)
# the inputs with structure a lossy codec is expected to code well ("distortion")
_STRUCTURED = ("feature-like", "given features")


def _codec_inputs(shape, n: int, seed: int, features) -> dict[str, np.ndarray]:
    """Real-ish and adversarial batches of ``n`` tensors of ``shape``."""
    rng = np.random.default_rng(seed)
    full = (n, *shape)
    spikes = rng.standard_normal(full).astype(np.float32)
    spikes.reshape(n, -1)[:, ::17] *= 1e3
    levels = np.linspace(-2.5, 3.75, n, dtype=np.float32)[:, None, None, None]
    inputs = {
        "feature-like": np.maximum(synthetic_features(n, shape, seed), 0),
        "constant": np.broadcast_to(levels, full).copy(),
        "all-zero": np.zeros(full, np.float32),
        "max-entropy": rng.uniform(-1e3, 1e3, full).astype(np.float32),
        "outliers": spikes,
    }
    if features is not None:
        inputs["given features"] = np.asarray(features, np.float32)
    return inputs


def _codec_cases(layouts, n: int, seed: int, features):
    cases = []
    for i, spec in enumerate(layouts):
        if isinstance(spec, PacketLayout):
            lay = spec
        else:
            shape, rows = spec
            lay = PacketLayout.for_shape(shape, rows, ("row-major", "channel-major")[i % 2])
        shape = (lay.channels, lay.height, lay.width)
        for kind, x in _codec_inputs(shape, n, seed + i, None).items():
            cases.append((lay, kind, x))
    if features is not None:
        f = np.asarray(features, np.float32)
        for rows in (1, 3):
            lay = PacketLayout.for_shape(f.shape[1:], min(rows, f.shape[2]))
            cases.append((lay, "given features", f))
    return cases


def _where(lay: PacketLayout, kind: str) -> str:
    return (
        f"{kind} tensors {lay.channels}x{lay.height}x{lay.width} in {lay.rows_per_packet}-row "
        f"packets ({lay.order})"
    )


def _whole_tensor(codec) -> bool:
    """The codec's packets are fragments of one codestream per tensor (``whole_tensor``
    True): a missing one loses the whole tensor."""
    return bool(getattr(codec, "whole_tensor", False))


def _packets(codec, e, lay: PacketLayout) -> int:
    """K, the packets of each image: the layout's, or a whole-tensor codec's fragments."""
    return e.packets_per_image if _whole_tensor(codec) else lay.packets_per_tensor


def _lost_for(codec, lay: PacketLayout, received: np.ndarray) -> np.ndarray:
    """The entries the decoder must mark lost when the packets not ``received`` (N x K)
    are missing: their rows (``layout.lost_mask``), or, for a whole-tensor codec, every
    entry of each image that misses one."""
    if _whole_tensor(codec):
        gone = ~np.asarray(received, bool).all(axis=1)
        shape = (len(gone), lay.channels, lay.height, lay.width)
        return np.broadcast_to(gone[:, None, None, None], shape).copy()
    return lay.lost_mask(~np.asarray(received, bool))
