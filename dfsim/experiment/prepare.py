"""The deterministic part of a run, done once per config: model, images, edge features,
encoded packets, loss-free predictions, and the completion methods (trained ones fitted).

Edge features and the full and loss-free split models' predictions are kept in the
on-disk cache (keyed by model, weights, split, image content and codec), fitted methods
too (keyed by everything that determines the fit).
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from dfsim import cache, devices
from dfsim.codecs.accounting import coding_columns, distortion
from dfsim.data.datasets import ImageSet, load_image_folder
from dfsim.errors import UserError, note
from dfsim.experiment.profiling import phase
from dfsim.experiment.scenario import Config, MethodSpec, Scenario
from dfsim.models.cloud_only import INPUT, CloudOnly, cloud_only
from dfsim.models.inference import prepare_for_inference, run_batched
from dfsim.registry import entry, names
from dfsim.stages import Codec, Crossing, Encoded
from dfsim.transport.network import Network
from dfsim.transport.packets import PacketLayout
from dfsim.transport.receiver import Reassembler


@dataclass
class TensorStream:
    """One tensor crossing the cut: its layout, codec, encoded packets and the values the
    cloud would have without loss."""

    crossing: Crossing
    layout: PacketLayout
    codec: Codec
    encoded: Encoded
    reference: np.ndarray  # loss-free decoded tensors, N x C x H x W


@dataclass
class Prepared:
    """Everything deterministic of one config of a run. ``streams`` are the tensors that
    cross the cut (one, unless the cut crosses a skip connection); each image's packets
    are those of stream 0, then stream 1, ... in the transport's packet stream."""

    scenario: Scenario
    config: Config
    index: int  # the config's position in the scenario's grid
    model: object
    split: str
    images: ImageSet
    task: object
    streams: list[TensorStream]
    transport: Network
    receiver: Reassembler
    cloud: torch.nn.Module
    reference_pred: object  # loss-free split model's predictions
    clean: dict[str, float]  # no coding, no loss: the task's metrics against its targets
    quantized: dict[str, float]  # split model with coding, no loss
    coding: dict[str, float]  # the codec's bit accounting (dfsim.codecs.accounting)

    @property
    def targets(self):
        return task_targets(self.task, self.images)

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def packets_per_image(self) -> int:
        return sum(s.encoded.packets_per_image for s in self.streams)

    @property
    def payload_bits(self) -> np.ndarray:
        """Payload bits of each image's data packets (N x K), all streams, in stream order
        (K: one row for every image when the codecs' packet sizes never vary)."""
        pbs = [np.asarray(s.encoded.payload_bits) for s in self.streams]
        if all(p.ndim == 1 for p in pbs):
            return np.concatenate(pbs)
        return np.concatenate([s.encoded.packet_bits() for s in self.streams], axis=1)

    @property
    def side_info_bits(self) -> np.ndarray:
        """Side-information bits of each image (N), all streams."""
        return sum(s.encoded.side_bits() for s in self.streams)

    def columns(self) -> dict:
        """The config's results columns."""
        return self.config.columns(self.split)


def task_targets(task, images: ImageSet):
    """What the task scores against: its ``targets(images)`` (detection: boxes;
    reconstruction: the images), else the labels."""
    get = getattr(task, "targets", None)
    return get(images) if get is not None else images.labels


def task_cloud(task, model, split: str) -> torch.nn.Module:
    """The cloud sub-model: the task's own (``cloud_model(model, split)``: e.g. a decoder
    that reconstructs the input) where it has one, else the model's."""
    own = getattr(task, "cloud_model", None)
    return own(model, split) if own is not None else model.cloud(split)


def task_cache_id(task) -> str:
    """What else determines the task's predictions (its ``cache_id()``: e.g. the digest of
    a reconstruction decoder's weights), for cache keys."""
    get = getattr(task, "cache_id", None)
    return get() if get is not None else ""


def build_task(scn: Scenario, model, split: str):
    """The scenario's task, bound to the model and split where it needs them (a
    detector's post-processing, a reconstruction decoder)."""
    task = scn.task.build()
    bind = getattr(task, "bind", None)
    if bind is not None:
        bind(model, split)
    return task


@functools.lru_cache(maxsize=2)
def _dataset_images(dataset, input_shape: tuple) -> ImageSet:
    """A dataset's images at ``input_shape``, loaded once per process (every config of a
    run reads the same images; a detection dataset draws its scenes each time). Shared by
    the configs: nothing writes into them."""
    return dataset.build().load(input_shape)


def load_images(scn: Scenario, input_shape) -> ImageSet:
    """The scenario's images, at the model's input size (``input_shape``: C, H, W)."""
    images = _dataset_images(scn.data.dataset, tuple(int(d) for d in input_shape))
    if images.images.shape[1:] != tuple(input_shape):
        raise UserError(
            f"data.dataset: {images.name} images are "
            f"{'x'.join(map(str, images.images.shape[1:]))}, the model takes "
            f"{'x'.join(map(str, input_shape))}"
        )
    if scn.data.n_images > len(images):
        raise UserError(
            f"data.n_images: {scn.data.n_images} exceeds the {len(images)} images of {images.name}"
        )
    return images.head(scn.data.n_images)


def build_model(scn: Scenario, cfg: Config, model=None):
    """The split model (``model``: one already built for ``cfg.split``) and the resolved
    split point, its crossing tensors checked: each is C x H x W, and its packets fit the
    height and the MTU (every tensor's side information rides in the image's first packet)."""
    model = scn.model.build(cfg.split) if model is None else model
    split = cfg.split or model.default_split
    if split == INPUT:
        model = check_cloud_only(scn, cfg, model)
    crossing = model.crossing(split)
    for t in crossing:
        if len(t.shape) != 3:
            raise UserError(
                f"model.split: tensor {t.name!r} crossing the cut after {split!r} is "
                f"{'x'.join(map(str, t.shape))}, not channels x height x width: "
                "choose another split"
            )
    codec, nw = cfg.codec.build(), scn.network
    # Before encoding, only what is fixed: a codec whose side information varies (a coded
    # histogram) is checked on its encoded packets (check_encoded_sizes).
    first = nw.side_info.placement == "first-packet"
    known = not cfg.packets.fill and not getattr(codec, "model_side_info_bits", 0)
    for t in crossing if known else ():
        cfg.packets.layout(t.shape).check(
            codec,
            nw.header_bytes,
            nw.mtu_bytes,
            codec.side_info_bits * len(crossing) if first else 0,
            split,
        )
    return model, split


def check_cloud_only(scn: Scenario, cfg: Config, model):
    """The model cut at ``input`` (the cloud-only baseline), after checking that the codec
    codes images and the task runs the model's own cloud."""
    if isinstance(model, CloudOnly):
        return model
    codec = cfg.codec.build()
    if not hasattr(codec, "for_camera"):
        pictures = ", ".join(
            n for n in names("codec") if hasattr(entry("codec", n).factory, "for_camera")
        )
        raise UserError(
            f"encoding.codec: {cfg.codec.name} codes features; split input sends the camera's "
            f"image: use a picture codec ({pictures})"
        )
    try:
        codec.for_camera()
    except ValueError as exc:
        raise UserError(f"encoding.{exc}") from None
    if getattr(build_task(scn, model, model.default_split), "cloud_model", None) is not None:
        raise UserError(
            f"model.split: input has no features for task {scn.task.name!r} to reconstruct"
        )
    return cloud_only(model)


def configure_codec(scn: Scenario, codec, split: str, n_tensors: int):
    """A picture codec learns where it runs: the camera's image at ``input``, and the room
    its fragments have within the MTU (the first also carries every tensor's side
    information, in the default placement)."""
    if split == INPUT and hasattr(codec, "for_camera"):
        codec.for_camera()
    if hasattr(codec, "set_fragments"):
        nw = scn.network
        room = nw.mtu_bytes - nw.header_bytes
        side = codec.side_info_bits * n_tensors if nw.side_info.placement == "first-packet" else 0
        codec.set_fragments(room, room - -(-side // 8))
    return codec


def encode_stream(scn: Scenario, cfg: Config, model, split: str, i: int, shape, feats):
    """Tensor ``i``'s layout, codec (fitted if it learns) and encoded packets. With
    ``rows_per_packet: fill``: the largest number of rows (at most the height) for which
    every encoded packet fits the MTU, found by bisection (sizes grow with the rows); tensor
    0's first packet also holds its own side information as encoded and the other tensors'
    at the codec's bound."""

    def encode_at(rows: int):
        layout = cfg.packets.layout(shape, rows)
        codec = cfg.codec.build()  # one per tensor: a fitted codec learns its tensor's model
        configure_codec(scn, codec, split, len(model.crossing(split)))
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
    others = cfg.codec.build().side_info_bits * (len(model.crossing(split)) - 1)

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
            f"{cfg.codec.build().describe_values()} does not fit network.mtu_bytes {nw.mtu_bytes}"
        )
    return best


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


def transport_for(scn: Scenario, cfg: Config) -> Network:
    """The transport stage of one config: the scenario's network with the config's error
    control."""
    nw, ec = scn.network, cfg.error_control
    return Network(nw.link, nw.traffic, nw.deadline_ms, ec.arq, ec.fec, nw.side_info)


def prepare(scn: Scenario, index: int = 0) -> Prepared:
    """Config ``index`` of ``scn``: everything its trials share."""
    cfg = scn.configs[index]
    devices.use(scn.device)
    with phase("model build"):
        model, split = build_model(scn, cfg)
    crossing = model.crossing(split)
    task = build_task(scn, model, split)
    with phase("data loading"):
        images = load_images(scn, model.input_shape)
    features_key = _features_key(scn, model, split, images, task)
    with phase("edge pass and full model (or cache load)"):
        features, clean_pred = _edge_pass(scn, model, split, images, task, features_key)
    streams = []
    with phase("encoding and loss-free decoding"):
        for i, (t, feats) in enumerate(zip(crossing, features, strict=True)):
            layout, codec, encoded = encode_stream(scn, cfg, model, split, i, t.shape, feats)
            streams.append(TensorStream(t, layout, codec, encoded, decode_all(codec, encoded)))
        check_encoded_sizes(scn, streams, split)
    nw = scn.network
    cloud = prepare_for_inference(task_cloud(task, model, split))
    with phase("loss-free cloud pass (or cache load)"):
        what = f"model {scn.model.import_path or model.name!r} at split {split!r}: its cloud"
        reference_pred = _reference_pass(scn, cfg, features_key, task, cloud, streams, what)
    targets = task_targets(task, images)
    with phase("loss-free scores (or cache load)"):
        scores = _loss_free_scores(cfg, features_key, task, clean_pred, reference_pred, targets)
    return Prepared(
        scenario=scn,
        config=cfg,
        index=index,
        model=model,
        split=split,
        images=images,
        task=task,
        streams=streams,
        transport=transport_for(scn, cfg),
        receiver=Reassembler(nw.side_info.on_loss),
        cloud=cloud,
        reference_pred=reference_pred,
        clean=scores["clean"],
        quantized=scores["quantized"],
        coding={
            **coding_columns(streams, model.input_shape),
            **distortion(features, [s.reference for s in streams], split == INPUT),
            "coding_agreement": scores["coding_agreement"],
        },
    )


def _features_key(scn: Scenario, model, split: str, images: ImageSet, task) -> str:
    return cache.key_of(
        model=scn.model.import_path or model.name,
        model_params=scn.model.params,
        weights=model.weights_id,
        split=split,
        batch=scn.batch_size,
        images=hashlib.sha256(images.images.tobytes()).hexdigest(),
        torch=torch.__version__,
        arrays="features_i",
        task=scn.task.name,  # the full model's predictions are the task's
        task_params=scn.task.params,
        task_id=task_cache_id(task),
        **_device_key(scn),
    )


def _device_key(scn: Scenario) -> dict:
    """Cache-key entry for artefacts computed on a GPU (CPU keys are left as they were)."""
    return {} if scn.device == "cpu" else {"device": scn.device}


def _edge_pass(scn: Scenario, model, split: str, images: ImageSet, task, key: str):
    """Edge features of every crossing tensor and the loss-free predictions without coding
    (the full model's, or the task's own cloud sub-model's on the uncoded features), cached
    under ``key`` (:func:`_features_key`)."""
    stored = cache.load_arrays("features", key)
    if stored is None:
        x = model.normalise(images.images)
        name, n = scn.model.import_path or model.name, len(images)
        edge = f"model {name!r}: its edge sub-model at split {split!r}"
        users = users_model(scn)
        feats = run_model(prepare_for_inference(model.edge(split)), x, scn.batch_size, edge, users)
        feats = feats if isinstance(feats, tuple) else (feats,)
        check_crossing(feats, model.crossing(split), n, edge)
        stored = {f"features_{i}": f.astype(np.float32) for i, f in enumerate(feats)}
        if getattr(task, "cloud_model", None) is not None:  # the task's own cloud sub-model
            own = prepare_for_inference(task.cloud_model(model, split))
            what = f"task {scn.task.name!r}: its cloud sub-model"
            outputs = run_model(
                own, list(feats) if len(feats) > 1 else feats[0], scn.batch_size, what, users
            )
        else:
            what = f"model {name!r}: the full model"
            full = prepare_for_inference(model.full())
            outputs = run_model(full, x, scn.batch_size, what, users)
        check_rows(outputs, n, what)
        stored["clean_pred"] = task_predict(task, outputs, n)
        cache.save_arrays("features", key, stored)
    n = len(model.crossing(split))
    return [stored[f"features_{i}"] for i in range(n)], stored["clean_pred"]


def _reference_pass(scn, cfg: Config, features_key: str, task, cloud, streams, what="the cloud"):
    """The loss-free split model's predictions (cached by features, which cover the model
    and the task, and codec)."""
    key = cache.key_of(features=features_key, codec=cfg.codec.name, params=cfg.codec.params)
    ref = cache.load_arrays("reference", key)
    if ref is None:
        tensors = [s.reference for s in streams]
        ref = {"pred": predict(task, cloud, tensors, scn.batch_size, what, users_model(scn))}
        cache.save_arrays("reference", key, ref)
    return ref["pred"]


def _loss_free_scores(cfg: Config, features_key: str, task, clean_pred, reference_pred, targets):
    """The task's metrics of the full model (``clean``) and of the loss-free split model
    (``quantized``) against the targets, and ``coding_agreement``: what coding alone
    changes, without labels (the loss-free split model's predictions against the uncoded
    full model's, by the task's label-free metric). Cached with the reference predictions:
    a detector's mAP takes a while, and every process preparing the config needs them."""
    key = cache.key_of(
        features=features_key, codec=cfg.codec.name, params=cfg.codec.params, what="scores"
    )
    stored = cache.load_arrays("scores", key)
    if stored is not None:
        return {
            "clean": {k[6:]: float(v) for k, v in stored.items() if k.startswith("clean_")},
            "quantized": {
                k[10:]: float(v) for k, v in stored.items() if k.startswith("quantized_")
            },
            "coding_agreement": float(stored["coding_agreement"]),
        }
    clean = task.evaluate(clean_pred, clean_pred, targets)
    quantized = task.evaluate(reference_pred, reference_pred, targets)
    agree = task.evaluate(reference_pred, clean_pred, targets)[task.label_free]
    arrays = {f"clean_{k}": np.float64(v) for k, v in clean.items()}
    arrays |= {f"quantized_{k}": np.float64(v) for k, v in quantized.items()}
    cache.save_arrays("scores", key, {**arrays, "coding_agreement": np.float64(agree)})
    return {"clean": clean, "quantized": quantized, "coding_agreement": agree}


def predict(
    task,
    cloud,
    tensors: list[np.ndarray],
    batch_size: int,
    what: str = "the cloud",
    users: bool = False,
):
    """The cloud sub-model on the crossing tensors, then the task's predictions (one per
    image, from one output row per image: anything else is a one-line error)."""
    n = len(tensors[0])
    what = f"{what} sub-model"
    x = tensors if len(tensors) > 1 else tensors[0]
    outputs = run_model(cloud, x, batch_size, what, users)
    check_rows(outputs, n, what)
    return task_predict(task, outputs, n)


def users_model(scn: Scenario) -> bool:
    """Whether the scenario's model (or a plug-in) is the user's code: given by import path,
    or with plug-ins loaded. A failure there is the user's to fix, not a bug of dfsim's."""
    return bool(scn.model.import_path or scn.plugins)


def _users_layers(module) -> bool:
    """Whether ``module`` holds layers defined outside dfsim and torch."""
    return any(not type(m).__module__.startswith(("dfsim.", "torch.")) for m in module.modules())


def run_model(module, x, batch_size: int, what: str, users: bool = False):
    """:func:`run_batched`, where the user's module (``users``, or one with layers of the
    user's own) that fails or returns something other than tensors is a one-line error
    naming ``what``; dfsim's own models keep their traceback (a bug)."""
    try:
        return run_batched(module, x, batch_size)
    except (UserError, MemoryError):
        raise
    except Exception as exc:
        if not (users or _users_layers(module)):
            raise
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise UserError(f"{what} failed ({type(exc).__name__}: {text})") from None


def _shapes(arrays) -> str:
    return ", ".join("x".join(map(str, np.shape(a))) or "a scalar" for a in arrays)


def check_rows(outputs, n: int, what: str) -> None:
    """``outputs`` (an array, or a tuple of them) hold one row per image of ``n``."""
    parts = outputs if isinstance(outputs, tuple) else (outputs,)
    if any(np.ndim(p) == 0 or len(p) != n for p in parts):
        raise UserError(
            f"{what} returned {_shapes(parts)} for {n} images: expected one row per image"
        )


def check_crossing(feats: tuple, crossing, n: int, what: str) -> None:
    """The edge's outputs are the tensors crossing the cut, of the declared shapes."""
    want = [(n, *t.shape) for t in crossing]
    if [tuple(np.shape(f)) for f in feats] != want:
        expected = ", ".join("x".join(map(str, w)) for w in want)
        raise UserError(
            f"{what} returned {len(feats)} tensors ({_shapes(feats)}), expected "
            f"{len(want)} ({expected}) for {n} images"
        )


def task_predict(task, outputs, n: int):
    """The task's predictions of ``n`` images: exactly one per image."""
    pred = task.predict(outputs)
    if np.ndim(pred) == 0 or len(pred) != n:
        raise UserError(
            f"task {getattr(task, 'name', type(task).__name__)!r}: predict returned "
            f"{_shapes([pred])} for {n} images: expected one prediction per image"
        )
    return pred


# --------------------------------------------------------------------------- methods
def build_methods(prep: Prepared, log=None) -> list[tuple[MethodSpec, list]]:
    """The scenario's methods, one instance per crossing tensor, trained ones fitted (or
    loaded from the cache)."""
    out = []
    for spec in prep.scenario.methods:
        per_stream = []
        for i in range(len(prep.streams)):
            method = spec.build()
            method.device = prep.scenario.device
            if method.needs_fit:
                with phase(f"fit {spec.label} (or cache load)"):
                    fit_method(method, spec, prep, log, stream=i)
            per_stream.append(method)
        out.append((spec, per_stream))
    return out


def training_images(scn: Scenario, shape, n_images: int, what: str):
    """``n_images`` training images at the model's input ``shape`` (``what`` needs them)."""
    if scn.data.fit_dir:
        train = load_image_folder(scn.data.fit_dir, shape, "none").head(n_images)
    else:
        train = scn.data.dataset.build().training_images(shape, n_images)
    if train is None:
        raise UserError(
            f"{what} need training images: set data.fit_dir (a folder of images unlike the "
            f"{scn.data.dataset.name} test images)"
        )
    return train


def training_edge_features(scn: Scenario, model, split: str, n_images: int, stream: int):
    """Edge features (not coded) of ``n_images`` training images: what a codec learns from."""
    train = training_images(scn, model.input_shape, n_images, "encoding: fitted codecs")
    feats = run_batched(
        prepare_for_inference(model.edge(split)), model.normalise(train.images), scn.batch_size
    )
    return feats[stream] if isinstance(feats, tuple) else feats


def training_features(prep: Prepared, n_images: int, stream: int = 0) -> np.ndarray:
    """Edge features of ``n_images`` training images, coded and decoded like the scenario's."""
    scn = prep.scenario
    train = training_images(
        scn, prep.model.input_shape, n_images, "methods: trained methods (altec)"
    )
    s = prep.streams[stream]
    return coded_edge_features(
        prep.model, prep.split, train.images, s.codec, s.layout, scn.batch_size, stream
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


def decode_all(codec, encoded) -> np.ndarray:
    """The values decoded when every packet arrives (what the cloud has without loss)."""
    received = np.ones((encoded.n_images, encoded.packets_per_image), bool)
    return codec.decode(encoded, received, encoded.side_info)[0]


def fit_method(
    method, spec: MethodSpec, prep: Prepared, log=None, force: bool = False, stream: int = 0
) -> None:
    """Fit a trained method on training features, through the on-disk cache."""
    scn, cfg = prep.scenario, prep.config
    n_fit = getattr(method, "fit_images", 2000)
    data = (
        f"folder:{scn.data.fit_dir}" if scn.data.fit_dir else scn.data.dataset.build().training_id()
    )
    key = cache.key_of(
        method=spec.name,
        model_params=scn.model.params,
        params=spec.params,
        model=prep.model.name,
        weights=prep.model.weights_id,
        split=prep.split,
        codec=cfg.codec.name,
        codec_params=cfg.codec.params,
        layout=prep.streams[stream].layout,
        data=data,
        fit_images=n_fit,
        stream=stream,
        version=3,
        **_device_key(scn),
    )
    state = None if force else cache.load_arrays(spec.name, key)
    if state is not None:
        method.load_fitted_state(state)
        if fitted := getattr(method, "fit_note", None):
            note(fitted)  # as the fit said when it was made
        return
    t0 = time.perf_counter()
    method.fit(training_features(prep, n_fit, stream), prep.streams[stream].layout)
    path = cache.save_arrays(spec.name, key, method.fitted_state())
    if log:
        log(
            f"dfsim: fitted {spec.label} on {n_fit} training images in "
            f"{time.perf_counter() - t0:.1f} s (cached in {path})"
        )
