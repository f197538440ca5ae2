"""The cloud's reassembly: from what the transport delivered to decoded tensors and loss
masks (:class:`Reassembler`; the SimPy process that takes the packets' arrivals is
:class:`dfsim.transport.network.CloudEndpoint`).

For each tensor crossing the cut it picks that tensor's packets out of the image's
packet stream, applies the side-information loss policy and runs the codec's decoder:

* ``assume-delivered``: side information always reaches the decoder (a reliable side
  channel);
* ``drop-image``: the transport already counted every packet of an image whose side
  information was lost as lost;
* ``previous``: decode with the side information of the same device's latest earlier
  image that had it; an image with no such predecessor is lost entirely.

The codec's decoder runs on the packets that arrived; a packet whose payload it cannot
decode counts as lost (the loss mask says so). A whole-tensor picture codec with
``on_fragment_loss: drop-image`` drops an image it cannot decode (``Delivery.dropped``):
the cloud gives no answer for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dfsim.stages import Transmission


@dataclass
class Delivery:
    """What the cloud has of one trial: per crossing tensor, the decoded values (lost
    entries 0) and the loss mask; ``substituted``: some image was decoded with another
    image's side information (so its values differ from the loss-free ones)."""

    tensors: list[np.ndarray]
    lost: list[np.ndarray]
    substituted: bool
    decode_s: float = 0.0  # seconds the codecs spent decoding
    undecodable: int = 0  # packets that arrived but could not be decoded (all tensors)
    dropped: np.ndarray | None = None  # images the cloud gives no answer for (N), or None
    n_lost: int = field(init=False)  # lost entries, all tensors (counted once per trial)

    def __post_init__(self):
        self.n_lost = sum(int(m.sum()) for m in self.lost)

    @property
    def damaged(self) -> bool:
        """Some entry is lost, or some image used another image's side information."""
        return self.substituted or self.n_lost > 0


class Reassembler:
    """Reassembles and decodes every crossing tensor of a trial (see module docstring)."""

    def __init__(self, on_loss: str = "assume-delivered"):
        self.on_loss = on_loss

    def receive(self, tx: Transmission, streams) -> Delivery:
        """``tx``: the trial's :class:`~dfsim.stages.Transmission`; ``streams``: the
        prepared crossing tensors (codec, encoded packets), in packet-stream order."""
        n = len(tx.capture_s)
        lost_2d = tx.lost.reshape(n, -1)
        side_lost = tx.side_info_lost
        previous = self.on_loss == "previous" and bool(side_lost.any())
        if previous:
            src = previous_received(side_lost, tx.device)
            usable, src = src >= 0, np.maximum(src, 0)
        tensors, masks, offset, decode_s, undecodable = [], [], 0, 0.0, 0
        dropped = None
        for s in streams:
            k = s.encoded.packets_per_image
            received = ~lost_2d[:, offset : offset + k]
            offset += k
            side = s.encoded.side_info
            if previous:
                swap = side_lost & usable
                side = {
                    key: np.where(swap.reshape(-1, *[1] * (v.ndim - 1)), v[src], v)
                    for key, v in side.items()
                }
            t0 = time.perf_counter()
            values, lost = s.codec.decode(s.encoded, received, side)
            decode_s += time.perf_counter() - t0
            if previous:
                values[side_lost & ~usable] = 0.0  # no side information to decode with
                lost[side_lost & ~usable] = True
            tensors.append(values)
            masks.append(lost)
            if hasattr(s.codec, "packet_lost"):  # its packets are not the layout's row bands
                packet_lost = s.codec.packet_lost(lost, s.encoded)
            else:
                hdr = s.layout.headers()
                packet_lost = lost[:, hdr["channel"], hdr["row"], 0]  # N x K, send order
            undecodable += int(np.count_nonzero(received & packet_lost))
            if getattr(s.codec, "drops_images", False):
                whole = lost.reshape(n, -1).all(axis=1)
                dropped = whole if dropped is None else dropped | whole
        return Delivery(tensors, masks, previous, decode_s, undecodable, dropped)


Receiver = Reassembler  # deprecated: the old name of Reassembler, kept for importers


def previous_received(side_lost: np.ndarray, device: np.ndarray) -> np.ndarray:
    """For each image, the index of the same device's latest earlier image whose side
    information arrived (-1: none); images of a device are in index order."""
    src = np.full(len(side_lost), -1)
    for d in np.unique(device):
        idx = np.flatnonzero(device == d)
        ok = np.where(~side_lost[idx], idx, -1)
        last = np.maximum.accumulate(ok)
        src[idx[1:]] = last[:-1]
    return src
