"""What a validated scenario is: its sections, the configs of its grid, its channel
settings and its completion methods, as frozen dataclasses.

:mod:`dfsim.experiment.scenario` makes them from a scenario file (and
:mod:`dfsim.experiment.grids` expands its lists); the rest of the run reads them. The
``network`` section is the transport's own :class:`~dfsim.transport.settings.NetworkSettings`.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from dfsim.registry import entry
from dfsim.transport.error_control import ErrorControl
from dfsim.transport.packets import Packetization
from dfsim.transport.settings import NetworkSettings


def stream_component(codec: str, params, own) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """A stream's codec and its parameters from the shared ``codec`` and ``params`` and the
    stream's ``own`` (name, value) pairs. Without ``codec`` in ``own``: the shared codec,
    its parameters overridden by the stream's. With it: that codec, each of its declared
    parameters the stream's own value, else the shared one where the shared codec has it
    (``bits``), else its default."""
    mine = dict(own)
    name = mine.pop("codec", codec)
    if name == codec:
        return codec, tuple({**dict(params), **mine}.items())
    shared = dict(params)
    declared = entry("codec", name).params
    values = {k: mine.get(k, shared.get(k, p.default)) for k, p in declared.items()}
    return name, tuple(values.items())


@dataclass(frozen=True)
class Component:
    """A registered component a scenario chose: kind, name and validated parameters."""

    kind: str
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        """The parameters as keyword arguments."""
        return dict(self.params)

    def build(self):
        """A fresh instance of the component."""
        return entry(self.kind, self.name).build(self.kind, **self.kwargs)


@dataclass(frozen=True)
class ModelSpec:
    """The ``model`` section: a registered model, or one given by ``import`` path."""

    name: str = "fmnist-resnet"
    import_path: str | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def build(self, split: str | None = None):
        """The split model (``split`` becomes the default split of an imported model)."""
        kw = dict(self.params)
        if self.import_path:
            from dfsim.models.sources import from_import_path

            return from_import_path(
                self.import_path, kw["weights"], kw["input_size"], kw["mean"], kw["std"], split
            )
        return entry("model", self.name).build("model", **kw)


@dataclass(frozen=True)
class DataSpec:
    """The ``data`` section: a registered dataset, how many images, and fit images."""

    dataset: Component
    n_images: int = 1000
    fit_dir: str | None = None


@dataclass(frozen=True)
class Config:
    """One point of the scenario's grid: where to cut, how to encode, how to packetize and
    which error control to use."""

    split: str | None  # None: the model's default split point
    codec: Component  # every tensor's, but for the parameters ``streams`` sets
    packets: Packetization
    error_control: ErrorControl = ErrorControl()
    # ``encoding.streams``: (tensor index, the codec parameters it sets) for each tensor the
    # scenario names, by index (the parameters empty where this config's codec has none of
    # them); the other tensors use ``codec``.
    streams: tuple[tuple[int, tuple[tuple[str, Any], ...]], ...] = ()

    def codec_of(self, stream: int) -> Component:
        """The codec of tensor ``stream`` of the cut: ``codec`` with the stream's own
        parameters, or the stream's own codec (:func:`stream_component`)."""
        own = dict(self.streams).get(stream, ())
        if not own:
            return self.codec
        name, params = stream_component(self.codec.name, self.codec.params, own)
        return Component(self.codec.kind, name, params)

    def columns(self, split: str) -> dict[str, Any]:
        """The config's results columns (``split`` resolved to the model's split point);
        a stream's own parameters as ``<parameter>_s<index>`` (``bits_s1``)."""
        return {
            "split": split,
            "codec": self.codec.name,
            **self.codec.kwargs,
            **{f"{k}_s{i}": v for i, own in self.streams for k, v in own},
            **asdict(self.packets),
            "error_control": self.error_control.label,
        }

    def describe(self, with_split: bool = True) -> str:
        codec = ", ".join(f"{k} {v}" for k, v in self.codec.params)
        codec += "".join(
            f"; stream {i}: " + (", ".join(f"{k} {v}" for k, v in own) or "shared")
            for i, own in self.streams
        )
        text = (
            f"{self.codec.name} ({codec}), {self.packets.rows_per_packet} rows/packet, "
            f"{self.packets.order}, error control {self.error_control.label}"
        )
        return f"split {self.split or '(default)'}, {text}" if with_split else text


@dataclass(frozen=True)
class ChannelSetting:
    """One channel setting of the sweep (a row group in results.csv)."""

    kind: str
    loss_rate: float
    burst_length: float  # mean burst length; for i.i.d. 1/(1-loss_rate)
    channel: Any = field(compare=False, repr=False)
    key: str = ""  # identifies the setting: seeds and duplicate checks

    @property
    def seed_key(self) -> int:
        """Stable integer for seeding: the same setting draws the same losses in any scenario."""
        return zlib.crc32(self.key.encode())


@dataclass(frozen=True)
class MethodSpec:
    """A completion method of the scenario: registered name, parameters, results label."""

    name: str
    params: dict[str, Any]
    label: str

    def build(self):
        """A fresh instance of the method."""
        return entry("completion", self.name).build(f"methods ({self.label})", **self.params)


# Images per model pass: each worker runs its model passes on one thread, where small
# batches suit the default model best (benchmarks/transport-notes.md), and the committed
# models' outputs are bit-identical at 64 and 256.
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: its sections, grid configs, channel settings and methods."""

    name: str
    seed: int
    model: ModelSpec
    data: DataSpec
    task: Component  # or a TaskList: ``task`` given as a list (dfsim.experiment.multi_task)
    network: NetworkSettings
    configs: tuple[Config, ...]
    cells: tuple[ChannelSetting, ...]
    methods: tuple[MethodSpec, ...]
    trials: int = 5
    output: str = ""
    batch_size: int = DEFAULT_BATCH_SIZE
    reference_method: str = "zeros"  # the paired test compares every method with this one
    dask_scheduler: str | None = None  # run on this Dask scheduler instead of local processes
    plugins: tuple[str, ...] = ()  # modules (or .py files) that register components
    source: str = ""
    device: str = "cpu"  # model passes and torch-backed completion (dfsim.devices)

    @property
    def n_units(self) -> int:
        """Work units: configs x settings x trials."""
        return len(self.configs) * len(self.cells) * self.trials

    def resolved(self) -> dict[str, Any]:
        """The scenario with every default filled in (for manifest.json): a grid key holds
        the list of its values, and ``grid`` every config in run order."""

        def values(get):
            vs = list(dict.fromkeys(get(c) for c in self.configs))
            return vs if len(vs) > 1 else vs[0]

        codec_keys = list(dict.fromkeys(k for c in self.configs for k, _ in c.codec.params))
        return {
            "name": self.name,
            "seed": self.seed,
            "plugins": list(self.plugins),
            "model": {
                "name": self.model.name,
                "import": self.model.import_path,
                **dict(self.model.params),
                "split": values(lambda c: c.split),
            },
            "data": {
                "dataset": self.data.dataset.name,
                **self.data.dataset.kwargs,
                "n_images": self.data.n_images,
                "fit_dir": self.data.fit_dir,
            },
            "task": (
                self.task.section()
                if hasattr(self.task, "parts")
                else {"name": self.task.name, **self.task.kwargs}
            ),
            "encoding": {
                "codec": values(lambda c: c.codec.name),
                **{k: values(lambda c, k=k: c.codec.kwargs.get(k)) for k in codec_keys},
                **_resolved_streams(self.configs, values),
            },
            "packets": {
                "rows_per_packet": values(lambda c: c.packets.rows_per_packet),
                "order": values(lambda c: c.packets.order),
            },
            "error_control": [
                asdict(e) for e in dict.fromkeys(c.error_control for c in self.configs)
            ],
            **({"grid": [config_dict(c) for c in self.configs]} if len(self.configs) > 1 else {}),
            "network": self.network.section(),
            "cells": [
                {
                    "kind": c.kind,
                    "loss_rate": c.loss_rate,
                    "burst_length": c.burst_length,
                    "setting": c.key,  # stable (a repr may hold a memory address)
                }
                for c in self.cells
            ],
            "methods": [{"name": m.name, "label": m.label, **m.params} for m in self.methods],
            "trials": self.trials,
            "batch_size": self.batch_size,
            "device": self.device,
            "reference_method": self.reference_method,
            "output": self.output,
        }


def _resolved_streams(configs, values) -> dict:
    """``encoding.streams`` of the manifest (nothing when the scenario has none): each
    stream's parameters, a list of their values where the grid varies them."""
    keys: dict[int, dict[str, None]] = {}
    for c in configs:
        for i, own in c.streams:
            keys.setdefault(i, {}).update(dict.fromkeys(k for k, _ in own))
    if not keys:
        return {}

    def value(i: int, k: str):
        return values(lambda c: dict(dict(c.streams).get(i, ())).get(k))

    return {"streams": {i: {k: value(i, k) for k in ks} for i, ks in keys.items()}}


def config_dict(c: Config) -> dict:
    """A config as a mapping of its settings (manifest)."""
    return {
        "split": c.split,
        "codec": c.codec.name,
        **c.codec.kwargs,
        **({"streams": {i: dict(own) for i, own in c.streams}} if c.streams else {}),
        **asdict(c.packets),
        "error_control": asdict(c.error_control),
    }
