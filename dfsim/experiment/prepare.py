"""The deterministic part of a run, done once per config (:func:`prepare`): model,
images, edge features, encoded packets, loss-free predictions, and the completion
methods (trained ones fitted, :func:`build_methods`).

The steps, in the order :func:`prepare` takes them:

* the split model and the task: :mod:`dfsim.experiment.model_and_task`;
* the images and edge features: :mod:`dfsim.experiment.features`;
* the encoded packets of each crossing tensor: :mod:`dfsim.experiment.encoding`;
* the loss-free cloud pass and its scores, the transport stage and the reassembler: here;
* the completion methods, trained ones fitted: here.

Models run through :mod:`dfsim.experiment.inference`. Edge features and the full and
loss-free split models' predictions are kept in the on-disk cache (keyed by model,
weights, split, image content and codec), fitted methods too (keyed by everything that
determines the fit). Every name these steps' modules define is importable from here too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from dfsim import cache, devices
from dfsim.codecs.accounting import coding_columns, distortion
from dfsim.data.datasets import ImageSet
from dfsim.errors import note
from dfsim.experiment.encoding import (
    TensorStream,
    check_encoded_sizes,
    check_streams,
    coded_edge_features,
    configure_codec,
    decode_all,
    encode_stream,
    largest_packet_bytes,
    stream_rate_columns,
)
from dfsim.experiment.features import (
    device_key,
    edge_pass,
    features_cache_key,
    load_images,
    training_edge_features,
    training_images,
)
from dfsim.experiment.inference import (
    check_crossing,
    check_rows,
    predict,
    run_model,
    task_predict,
    users_model,
)
from dfsim.experiment.model_and_task import (
    build_model,
    build_task,
    check_cloud_only,
    task_cache_id,
    task_cloud,
    task_targets,
)
from dfsim.experiment.profiling import phase
from dfsim.experiment.specs import Config, MethodSpec, Scenario
from dfsim.models.cloud_only import INPUT
from dfsim.models.inference import prepare_for_inference
from dfsim.transport.network import Network
from dfsim.transport.receiver import Reassembler

__all__ = [
    "Prepared",
    "TensorStream",
    "build_methods",
    "build_model",
    "build_task",
    "check_cloud_only",
    "check_crossing",
    "check_encoded_sizes",
    "check_rows",
    "check_streams",
    "coded_edge_features",
    "configure_codec",
    "decode_all",
    "encode_stream",
    "fit_method",
    "largest_packet_bytes",
    "load_images",
    "predict",
    "prepare",
    "run_model",
    "stream_rate_columns",
    "task_cache_id",
    "task_cloud",
    "task_predict",
    "task_targets",
    "training_edge_features",
    "training_features",
    "training_images",
    "transport_for",
    "users_model",
]


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


def per_stream_columns(scn: Scenario) -> bool:
    """Whether a run's rows hold each tensor's rate (``kbpi_s<i>``): where a config gives a
    tensor an encoding or an error control of its own."""
    return any(c.streams or c.error_control.streams for c in scn.configs)


def transport_for(scn: Scenario, cfg: Config, segments=None) -> Network:
    """The transport stage of one config: the scenario's network with the config's error
    control (``segments``: the data packets of each tensor crossing the cut, which an
    error control of its own per tensor needs)."""
    nw, ec = scn.network, cfg.error_control
    own = ec.per_stream(len(segments)) if segments is not None else None
    if own is None:
        return Network(nw.link, nw.traffic, nw.deadline_ms, ec.arq, ec.fec, nw.side_info)
    arq, fec = own
    return Network(nw.link, nw.traffic, nw.deadline_ms, arq, fec, nw.side_info, tuple(segments))


def prepare(scn: Scenario, index: int = 0) -> Prepared:
    """Config ``index`` of ``scn``: everything its trials share."""
    cfg = scn.configs[index]
    devices.use(scn.device)
    with phase("model build"):
        model, split = build_model(scn, cfg)
    crossing = model.crossing(split)
    check_streams(cfg, crossing, split)
    task = build_task(scn, model, split)
    with phase("data loading"):
        images = load_images(scn, model.input_shape)
    features_key = features_cache_key(scn, model, split, images, task)
    with phase("edge pass and full model (or cache load)"):
        features, clean_pred = edge_pass(scn, model, split, images, task, features_key)
    streams = []
    with phase("encoding and loss-free decoding"):
        for i, (t, feats) in enumerate(zip(crossing, features, strict=True)):
            layout, codec, encoded = encode_stream(scn, cfg, model, split, i, t.shape, feats)
            streams.append(TensorStream(t, layout, codec, encoded, decode_all(codec, encoded)))
        check_encoded_sizes(scn, streams, split)
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
        transport=transport_for(scn, cfg, [s.encoded.packets_per_image for s in streams]),
        receiver=Reassembler(scn.network.side_info.on_loss),
        cloud=cloud,
        reference_pred=reference_pred,
        clean=scores["clean"],
        quantized=scores["quantized"],
        coding={
            **coding_columns(streams, model.input_shape),
            **(stream_rate_columns(streams) if per_stream_columns(scn) else {}),
            **distortion(features, [s.reference for s in streams], split == INPUT),
            "coding_agreement": scores["coding_agreement"],
        },
    )


# --------------------------------------------------------------------------- loss-free pass
def _reference_pass(scn, cfg: Config, features_key: str, task, cloud, streams, what="the cloud"):
    """The loss-free split model's predictions (cached by features, which cover the model
    and the task, and codec)."""
    key = cache.key_of(
        features=features_key, codec=cfg.codec.name, params=cfg.codec.params, **_streams_key(cfg)
    )
    ref = cache.load_arrays("reference", key)
    if ref is None:
        tensors = [s.reference for s in streams]
        ref = {"pred": predict(task, cloud, tensors, scn.batch_size, what, users_model(scn))}
        cache.save_arrays("reference", key, ref)
    return ref["pred"]


def _streams_key(cfg: Config) -> dict:
    """The streams' own codec parameters, for the cache keys of what the coded tensors
    determine (nothing without ``encoding.streams``: the keys stay those of a shared codec)."""
    return {"streams": cfg.streams} if cfg.streams else {}


def _loss_free_scores(cfg: Config, features_key: str, task, clean_pred, reference_pred, targets):
    """The task's metrics of the full model (``clean``) and of the loss-free split model
    (``quantized``) against the targets, and ``coding_agreement``: what coding alone
    changes, without labels (the loss-free split model's predictions against the uncoded
    full model's, by the task's label-free metric). Cached with the reference predictions:
    a detector's mAP takes a while, and every process preparing the config needs them."""
    key = cache.key_of(
        features=features_key,
        codec=cfg.codec.name,
        params=cfg.codec.params,
        what="scores",
        **_streams_key(cfg),
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


# --------------------------------------------------------------------------- methods
def build_methods(prep: Prepared, log=None, fit=None) -> list[tuple[MethodSpec, list]]:
    """The scenario's methods, one instance per crossing tensor, trained ones fitted (or
    loaded from the cache) by ``fit(method, spec, prep, log, stream=i)`` (default:
    :func:`fit_method`)."""
    fit = fit or fit_method
    out = []
    for spec in prep.scenario.methods:
        per_stream = []
        for i in range(len(prep.streams)):
            method = spec.build()
            method.device = prep.scenario.device
            if method.needs_fit:
                with phase(f"fit {spec.label} (or cache load)"):
                    fit(method, spec, prep, log, stream=i)
            per_stream.append(method)
        out.append((spec, per_stream))
    return out


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
        codec=cfg.codec_of(stream).name,
        codec_params=cfg.codec_of(stream).params,
        layout=prep.streams[stream].layout,
        data=data,
        fit_images=n_fit,
        stream=stream,
        version=3,
        **device_key(scn),
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
