"""A config's crossing tensors encoded (:class:`TensorStream`): the codec configured for
where it runs (the camera's image at ``input``, its fragments' room in the MTU), fitted
where it learns, the rows per packet found for ``rows_per_packet: fill``, every encoded
packet checked against the MTU, and the values the cloud decodes without loss (also of
training images, :func:`coded_edge_features`, what trained completion methods learn from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfsim.codecs.base import decode_all
from dfsim.errors import UserError
from dfsim.experiment.features import training_edge_features
from dfsim.experiment.specs import Config, Scenario
from dfsim.models.cloud_only import INPUT
from dfsim.models.inference import prepare_for_inference, run_batched
from dfsim.stages import Codec, Crossing, Encoded
from dfsim.transport.packets import PacketLayout


@dataclass
class TensorStream:
    """One tensor crossing the cut: its layout, codec, encoded packets and the values the
    cloud would have without loss."""

    crossing: Crossing
    layout: PacketLayout
    codec: Codec
    encoded: Encoded
    reference: np.ndarray  # loss-free decoded tensors, N x C x H x W


def configure_codec(scn: Scenario, codec, split: str, others_side_bits: int = 0):
    """A picture codec learns where it runs: the camera's image at ``input``, and the room
    its fragments have within the MTU (the first also carries every tensor's side
    information in the default placement: its own and ``others_side_bits``, the other
    tensors' codecs')."""
    if split == INPUT and hasattr(codec, "for_camera"):
        codec.for_camera()
    if hasattr(codec, "set_fragments"):
        nw = scn.network
        room = nw.mtu_bytes - nw.header_bytes
        first = nw.side_info.placement == "first-packet"
        side = codec.side_info_bits + others_side_bits if first else 0
        codec.set_fragments(room, room - -(-side // 8))
    return codec


def encode_stream(scn: Scenario, cfg: Config, model, split: str, i: int, shape, feats):
    """Tensor ``i``'s layout, codec (fitted if it learns) and encoded packets. With
    ``rows_per_packet: fill``: the largest number of rows (at most the height) for which
    every encoded packet fits the MTU, found by bisection (sizes grow with the rows); tensor
    0's first packet also holds its own side information as encoded and the other tensors'
    at the codec's bound."""

    n_tensors = len(model.crossing(split))
    # the first fragment also holds the other tensors' side information (first-packet)
    others_side = sum(cfg.codec_of(j).build().side_info_bits for j in range(n_tensors) if j != i)

    def encode_at(rows: int):
        layout = cfg.packets.layout(shape, rows)
        codec = cfg.codec_of(i).build()  # one per tensor: a fitted one learns its tensor
        configure_codec(scn, codec, split, others_side)
        if getattr(codec, "needs_fit", False):
            n_fit = getattr(codec, "fit_images", 500)
            codec.fit(training_edge_features(scn, model, split, n_fit, i), layout)
        codec.encode(feats[:1], layout)  # warm-up: the timed encode excludes JIT loading
        return layout, codec, codec.encode(feats, layout)

    if not cfg.packets.fill:
        return encode_at(cfg.packets.rows_per_packet)
    nw = scn.network
    # The first packet of tensor 0 carries every tensor's side information: its own as
    # encoded, the others' at their bound (the encoded sizes are checked again at the end).
    n = len(model.crossing(split))
    others = sum(cfg.codec_of(j).build().side_info_bits for j in range(1, n))

    def fits(encoded) -> bool:
        first = encoded.side_bits() + others if i == 0 else 0
        return largest_packet_bytes(encoded, first, nw) <= nw.mtu_bytes

    best = encode_at(int(shape[1]))  # whole channels, when they fit
    lo, hi = 1, int(shape[1]) - 1
    if not fits(best[2]):
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            attempt = encode_at(mid)
            if fits(attempt[2]):
                best, lo = attempt, mid + 1
            else:
                hi = mid - 1
    if best is None:
        raise UserError(
            f"packets.rows_per_packet: fill: even one row of {shape[2]} values "
            f"{cfg.codec_of(i).build().describe_values()} does not fit "
            f"network.mtu_bytes {nw.mtu_bytes}"
        )
    return best


def check_streams(cfg: Config, crossing, split: str) -> None:
    """Every tensor ``encoding.streams`` and ``error_control.streams`` name is one the cut
    passes (a one-line error naming the key, the index and how many tensors cross)."""
    named = [("encoding.streams", i) for i, _ in cfg.streams] + [
        (f"error_control {cfg.error_control.label!r}: streams", i)
        for i, _ in cfg.error_control.streams
    ]
    n = len(crossing)
    for key, i in named:
        if i >= n:
            raise UserError(
                f"{key}.{i}: the cut at split {split!r} passes {n} "
                f"tensor{'s' if n > 1 else ''} (stream{'s 0 to' if n > 1 else ''} {n - 1}), "
                f"not a stream {i}"
            )


def stream_rate_columns(streams: list[TensorStream]) -> dict[str, float]:
    """Each tensor's coded bits per image (payloads plus its side information), averaged
    over the images, and in kbit: ``bits_per_image_s<i>`` and ``kbpi_s<i>``; they add up
    to ``bits_per_image`` and ``kbpi``."""
    bits = [float(np.mean(s.encoded.bits_per_image())) for s in streams]
    return {
        **{f"bits_per_image_s{i}": b for i, b in enumerate(bits)},
        **{f"kbpi_s{i}": b / 1e3 for i, b in enumerate(bits)},
    }


def largest_packet_bytes(encoded: Encoded, first_side_bits, nw) -> int:
    """Bytes of the largest encoded packet with its header; data packet 0 also carries
    ``first_side_bits`` (per image, or one number) when side information rides in it."""
    bits = encoded.packet_bits()
    worst = int(bits.max())
    if nw.side_info.placement == "first-packet":
        worst = max(worst, int((bits[:, 0] + first_side_bits).max()))
    return nw.header_bytes + -(-worst // 8)


def check_encoded_sizes(scn: Scenario, streams: list[TensorStream], split: str) -> None:
    """Every packet as encoded fits the MTU (the first also carries the side information
    in the default placement): codecs whose sizes are known only once encoded."""
    nw = scn.network
    side = sum(s.encoded.side_bits() for s in streams)
    if nw.side_info.placement == "own-packet":
        worst = nw.header_bytes + -(-int(side.max()) // 8)
        if worst > nw.mtu_bytes:
            raise UserError(
                f"network.side_info: the side information of an image takes up to {worst} "
                f"bytes (with the header), over network.mtu_bytes {nw.mtu_bytes}"
            )
    for n, s in enumerate(streams):
        worst = largest_packet_bytes(s.encoded, side if n == 0 else 0, nw)
        if worst > nw.mtu_bytes:
            r, w = s.layout.rows_per_packet, s.layout.width
            raise UserError(
                f"packets.rows_per_packet: {r} rows of {w} values {s.codec.describe_values()} "
                f"make packets of up to {worst} bytes (with the {nw.header_bytes}-byte header), "
                f"over network.mtu_bytes {nw.mtu_bytes}; use fewer rows per packet"
            )


def coded_edge_features(
    model,
    split: str,
    images: np.ndarray,
    codec,
    layout: PacketLayout,
    batch_size: int = 256,
    stream: int = 0,
) -> np.ndarray:
    """What the cloud receives without loss: edge features of ``images`` (uint8 N x C x H x
    W) encoded and decoded by ``codec`` (tensor ``stream`` when several cross the cut)."""
    feats = run_batched(
        prepare_for_inference(model.edge(split)), model.normalise(images), batch_size
    )
    feats = feats[stream] if isinstance(feats, tuple) else feats
    return decode_all(codec, codec.encode(feats, layout))
