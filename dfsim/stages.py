"""The pipeline's stage interfaces, in the order data flows::

    SplitModel.edge -> Codec.encode -> PacketLayout -> Transport (SimPy) -> Reassembler
        -> CompletionMethod -> SplitModel.cloud -> Task (predictions + metrics) -> results

Each stage is a :class:`typing.Protocol`: any object with these methods fits, and a new
component is one module plus a registration (:func:`dfsim.registry.register`).
``dfsim.testing`` has a conformance check per stage. What one stage hands the next is a
dataclass here too: :class:`Encoded` (a codec's packets) and :class:`Transmission` (what
the transport delivered). The implementations:

* SplitModel: :mod:`dfsim.models` (a chain of named stages, or any ``nn.Module`` via torch.fx)
* Codec: :mod:`dfsim.codecs` (``raw``: the uniform min/max quantizer with n-bit payloads)
* PacketLayout: :class:`dfsim.transport.packets.PacketLayout`
* Transport: :class:`dfsim.transport.network.Network` (the SimPy model), over a loss channel of
  :mod:`dfsim.transport.channels`
* Reassembler: :class:`dfsim.transport.receiver.Reassembler`
* CompletionMethod: :mod:`dfsim.completion`
* Task: :mod:`dfsim.tasks` (``classification``)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from dfsim.transport.channels import LossChannel
    from dfsim.transport.packets import PacketLayout


@dataclass(frozen=True)
class Crossing:
    """One tensor crossing the cut: its name in the model and its shape (C x H x W)."""

    name: str
    shape: tuple[int, ...]


@runtime_checkable
class SplitModel(Protocol):
    """A network that can be cut at named split points into an edge and a cloud part."""

    name: str
    input_shape: tuple[int, int, int]  # C x H x W of one input image
    default_split: str
    weights_id: str  # identifies the weights (cache keys)

    @property
    def split_points(self) -> list[str]:
        """Every point the model can be cut at, in execution order."""

    def crossing(self, split: str) -> list[Crossing]:
        """The tensors that cross the cut after ``split`` (one, or several when the cut
        crosses a skip connection); an unknown split point is a one-line UserError."""

    def edge(self, split: str) -> nn.Module:
        """The edge sub-model: images in, a tuple of the crossing tensors out."""

    def cloud(self, split: str) -> nn.Module:
        """The cloud sub-model: the crossing tensors in (positional), model outputs out."""

    def full(self) -> nn.Module:
        """The whole model (``cloud(s)(*edge(s)(x))`` performs the same operations)."""

    def normalise(self, images: np.ndarray):
        """uint8 images N x C x H x W -> the model's input tensor."""

    def describe(self) -> list[dict]:
        """Per split point: crossing tensors, their values and the edge's share of time."""


@dataclass
class Encoded:
    """What a codec made of a batch of N tensors cut into K packets each.

    ``side_info``: per-image arrays (each with leading dimension N) the decoder needs
    besides the payloads (for ``raw``: the quantizer's min and max); ``side_info_bits``:
    what they cost on the wire, per image (an integer: the same for every image, or an N
    array). ``payload_bits``: bits of each packet's payload, headers excluded (N x K, or K
    when every image's packets have the same sizes). ``payloads``: the codec's own
    representation of the packets. ``ideal_bits``: per image, the payload bits an ideal
    entropy coder would spend under the codec's probability model (-sum log2 p); None for
    codecs without one. ``encode_s``: seconds the codec spent encoding the batch.
    """

    n_images: int
    side_info: dict[str, np.ndarray]
    side_info_bits: int | np.ndarray
    payload_bits: np.ndarray
    payloads: Any = None
    ideal_bits: np.ndarray | None = None
    encode_s: float = 0.0

    @property
    def packets_per_image(self) -> int:
        """K: data packets of each image."""
        return int(np.shape(self.payload_bits)[-1])

    def packet_bits(self) -> np.ndarray:
        """Payload bits N x K (a broadcast view when every image's sizes are the same)."""
        pb = np.asarray(self.payload_bits, dtype=np.int64)
        return np.broadcast_to(pb, (self.n_images, self.packets_per_image))

    def side_bits(self) -> np.ndarray:
        """Side-information bits of each image (N)."""
        return np.broadcast_to(np.asarray(self.side_info_bits, np.int64), (self.n_images,))

    def bits_per_image(self) -> np.ndarray:
        """Coded bits of each image: payloads plus side information, headers excluded."""
        return self.packet_bits().sum(axis=1) + self.side_bits()


@runtime_checkable
class Codec(Protocol):
    """Feature encoding: a quantizer plus a payload coder, packet by packet.

    Packets decode independently: ``decode`` gets a received-packet mask and rebuilds
    exactly the received packets' values (others are marked lost).
    """

    name: str
    side_info_bits: int  # per tensor (an upper bound when it varies)
    needs_fit: bool  # learns from training features (fit) before encoding; optional: False

    def encode(self, features: np.ndarray, layout: PacketLayout) -> Encoded:
        """Features N x C x H x W (float32) -> side information and per-packet payloads."""

    def decode(
        self, encoded: Encoded, received: np.ndarray, side_info: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``received``: N x K packet flags; ``side_info``: the per-image side information
        the receiver has (its own, or a substitute). Returns (tensors N x C x H x W float32,
        lost mask of the same shape); lost entries are 0. A packet whose payload cannot be
        decoded (truncated or corrupted: :class:`dfsim.codecs.base.PayloadError`) is lost."""

    def fit(self, features: np.ndarray, layout: PacketLayout) -> Codec:
        """Learn from loss-free training features N x C x H x W; called only when
        ``needs_fit`` (a codec without ``needs_fit`` and ``fit`` never learns)."""

    def max_payload_bits(self, rows: int, width: int) -> int | None:
        """An upper bound on one packet's payload of ``rows`` rows of ``width`` values, or
        None when only the encoded sizes tell (entropy coders): the MTU is then checked
        against the encoded packets."""

    def describe_values(self) -> str:
        """How values are coded, for messages (e.g. "at 8 bits")."""


# Why a data packet is missing at the decoder (Transmission.cause).
DELIVERED, CHANNEL, CONGESTION, DEADLINE = 0, 1, 2, 3


@dataclass
class Transmission:
    """What the transport delivered of a batch of N images of K data packets each. Data
    packets are indexed image-major in send order (image i's are ``[i*K, (i+1)*K)``), like
    the packetizer's stream."""

    lost: np.ndarray  # n*K bool: data packets missing at the decoder (after FEC/ARQ, deadline)
    cause: np.ndarray  # n*K int8: DELIVERED, CHANNEL, CONGESTION or DEADLINE
    # n*K: when the data packet's last attempt reached (or would have reached) the cloud
    arrival_s: np.ndarray
    # n*K: when the decoder had it (received or FEC-recovered in time; inf: never)
    available_s: np.ndarray
    capture_s: np.ndarray  # N
    delivered_s: np.ndarray  # N: when the cloud has all it will get of the image
    device: np.ndarray  # N: the device that sent the image
    side_info_lost: np.ndarray  # N bool
    bits_sent: int  # every packet put on the wire, retransmissions and parity included
    packets_sent: int
    retransmissions: int

    @property
    def latency_ms(self) -> np.ndarray:
        """Capture to delivery, per image."""
        return (self.delivered_s - self.capture_s) * 1e3

    def loss_by_cause(self) -> dict[str, float]:
        """Fraction of data packets missing for each cause."""
        n = max(len(self.cause), 1)
        causes = (("channel", CHANNEL), ("congestion", CONGESTION), ("deadline", DEADLINE))
        return {name: float(np.count_nonzero(self.cause == code)) / n for name, code in causes}


@runtime_checkable
class Transport(Protocol):
    """Moves one run's packets from the edge devices to the cloud (the SimPy network)."""

    def send(
        self,
        n_images: int,
        payload_bits: np.ndarray,
        side_info_bits: int | np.ndarray,
        channel: LossChannel,
        rng: np.random.Generator,
        aux_rng: np.random.Generator | None = None,
    ) -> Transmission:
        """Send ``n_images`` images of K data packets each: ``payload_bits`` N x K (or K,
        the same for every image), without headers; ``side_info_bits`` per image (one
        number or N); ``rng`` drives the loss channel."""


@runtime_checkable
class CompletionMethod(Protocol):
    """Fills the lost entries of received tensors; received entries come back bit for bit."""

    name: str
    needs_fit: bool
    iterations: list[int] | None  # iterative methods: iterations per tensor of the last batch

    def fit(self, features: np.ndarray, layout: PacketLayout) -> CompletionMethod:
        """Learn from loss-free training features N x C x H x W (no-op if untrained)."""

    def fitted_state(self) -> dict[str, np.ndarray]:
        """The arrays a fit produced, for the cache (empty for untrained methods)."""

    def load_fitted_state(self, state: dict[str, np.ndarray]) -> CompletionMethod:
        """Restore a fit from :meth:`fitted_state`'s arrays."""

    def complete(
        self, tensor: np.ndarray, lost: np.ndarray, layout: PacketLayout | None = None
    ) -> np.ndarray:
        """One tensor C x H x W with its boolean loss mask -> the completed tensor."""

    def complete_batch(
        self, tensors: np.ndarray, lost: np.ndarray, layout: PacketLayout | None = None
    ) -> np.ndarray:
        """A batch N x C x H x W; the same result as one tensor at a time."""


@dataclass(frozen=True)
class Metric:
    """A results column a stage produces: its name, unit, which way is better and how to
    label and scale it in tables and figures. ``per``: ``method`` (differs between
    completion methods) or ``trial`` (the same for every method of a trial: network
    metrics). ``timing``: depends on the machine's speed (excluded from reproducibility
    checks). ``core``: part of the fixed leading columns of ``results.csv``."""

    name: str
    label: str
    unit: str = ""
    higher_is_better: bool | None = None
    scale: float = 1.0
    dtype: type = float
    per: str = "method"
    timing: bool = False
    core: bool = False
    alias: str | None = None  # short name accepted by ``dfsim plot --y``
    decimals: int = 1  # decimals of the scaled value in tables and figure legends

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


@runtime_checkable
class Task(Protocol):
    """Turns cloud outputs into predictions and scores them.

    ``metrics`` are declared once; results columns, summaries, ``dfsim compare`` and
    plots follow from them. ``primary``: the metric the paired test and the run's main
    figure use when it has values; ``label_free``: the metric that needs no labels
    (agreement with the loss-free split model).

    Optional hooks, used when a task defines them: ``bind(model, split)``, called once
    after the model is built (a detector's post-processing comes from the model);
    ``targets(images)``, what ``evaluate`` scores against (default: the labels; detection:
    each image's boxes; reconstruction: the images); ``cloud_model(model, split)``, the
    task's own cloud sub-model in place of ``model.cloud(split)`` (a decoder that
    reconstructs the input from the features).
    Predictions are arrays (they are cached with numpy)."""

    name: str
    metrics: tuple[Metric, ...]
    primary: str
    label_free: str

    def predict(self, outputs: np.ndarray) -> Any:
        """Cloud sub-model outputs for a batch -> predictions."""

    def evaluate(self, predictions: Any, reference: Any, targets: Any) -> dict[str, float]:
        """Every declared metric of ``predictions`` against the loss-free split model's
        ``reference`` predictions and the dataset's ``targets`` (NaN where unavailable)."""
