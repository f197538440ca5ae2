"""Scenario files: YAML -> validated :class:`Scenario`.

The only place that reads user configuration. It is generic: every component (model,
dataset, codec, channel, jitter, error control, completion method, task) declares its
parameters where it is registered (:mod:`dfsim.registry`), and the checks here derive from
those declarations. Every mistake becomes a :class:`~dfsim.errors.UserError` whose one-line
message names the file and the YAML path (``channels[1].burst_lengths[0]: ...``). See
``scenarios/default.yaml`` for a commented example and README for every key.

**Grids.** The *config* sections (``model.split``, ``encoding``, ``packets``,
``error_control``) may give a list where a parameter takes one value: the run covers the
product of those lists (or, with ``zip``, advances listed keys together); each combination
is a :class:`Config`. Channel parameters given as lists sweep channel settings; method
parameters given as lists make method variants.
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import itertools
import math
import sys
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from dfsim import devices
from dfsim.errors import UserError
from dfsim.limits import (
    MAX_CONFIGS,
    MAX_METHODS,
    MAX_SCENARIO_BYTES,
    MAX_UNITS,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
)
from dfsim.registry import (
    DIR,
    Param,
    Range,
    check_keys,
    check_params,
    dataclass_params,
    declared_params,
    entry,
    grid_values,
    key_text,
    names,
    parse_dataclass,
    shown,
    type_name,
)
from dfsim.transport.error_control import ErrorControl, parse_strategy
from dfsim.transport.packets import Packetization


# --------------------------------------------------------------------------- components
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
class SideInfoSpec:
    """Where the codec's side information travels and what happens when it is lost."""

    placement: Literal["first-packet", "own-packet"] = "first-packet"
    on_loss: Literal["assume-delivered", "drop-image", "previous"] = "assume-delivered"


Positive = Annotated[float, Range(0, lo_open=True)]
NonNegative = Annotated[float, Range(0)]


@dataclass(frozen=True)
class NetworkSpec:
    """The ``network`` section (see README, "The network model")."""

    bandwidth_mbps: Positive = 10.0
    propagation_ms: NonNegative = 5.0
    header_bytes: Annotated[int, Range(0, 65535)] = 40
    fps: Positive | None = 30.0
    mtu_bytes: Annotated[int, Range(68, 1 << 20)] = 1500
    buffer_bytes: Annotated[int, Range(1)] | None = None
    jitter: Any = None  # a registered jitter distribution (dfsim.transport.network.Jitter)
    deadline_ms: Positive | None = None
    devices: Annotated[int, Range(1, 100_000)] = 1
    arrivals: Literal["periodic", "poisson"] = "periodic"
    edge_ms: NonNegative = 0.0
    cloud_ms: NonNegative = 0.0
    completion_time: Literal["none", "measured"] = "none"
    side_info: SideInfoSpec = SideInfoSpec()


@dataclass(frozen=True)
class Config:
    """One point of the scenario's grid: where to cut, how to encode, how to packetize and
    which error control to use."""

    split: str | None  # None: the model's default split point
    codec: Component
    packets: Packetization
    error_control: ErrorControl = ErrorControl()

    def columns(self, split: str) -> dict[str, Any]:
        """The config's results columns (``split`` resolved to the model's split point)."""
        return {
            "split": split,
            "codec": self.codec.name,
            **self.codec.kwargs,
            **asdict(self.packets),
            "error_control": self.error_control.label,
        }

    def describe(self, with_split: bool = True) -> str:
        codec = ", ".join(f"{k} {v}" for k, v in self.codec.params)
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


# Images per model pass: on one thread (each worker's) the default model's cloud sub-model
# runs fastest at small batches (benchmarks/model.txt), and the committed models' outputs are
# bit-identical at 64 and 256.
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: its sections, grid configs, channel settings and methods."""

    name: str
    seed: int
    model: ModelSpec
    data: DataSpec
    task: Component
    network: NetworkSpec
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
            "task": {"name": self.task.name, **self.task.kwargs},
            "encoding": {
                "codec": values(lambda c: c.codec.name),
                **{k: values(lambda c, k=k: c.codec.kwargs.get(k)) for k in codec_keys},
            },
            "packets": {
                "rows_per_packet": values(lambda c: c.packets.rows_per_packet),
                "order": values(lambda c: c.packets.order),
            },
            "error_control": [
                asdict(e) for e in dict.fromkeys(c.error_control for c in self.configs)
            ],
            **({"grid": [_config_dict(c) for c in self.configs]} if len(self.configs) > 1 else {}),
            "network": asdict(self.network),
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


def _config_dict(c: Config) -> dict:
    return {
        "split": c.split,
        "codec": c.codec.name,
        **c.codec.kwargs,
        **asdict(c.packets),
        "error_control": asdict(c.error_control),
    }


# --------------------------------------------------------------------------- loading
class _YamlTooDeep(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last, and
    documents nested deeper than :data:`MAX_YAML_DEPTH` while composing them (PyYAML's
    composer recurses: a deep enough document would end in a RecursionError)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YamlTooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_nodes(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded (at most MAX_YAML_NODES + 1), or -1
    when an alias refers to a node that contains it (a document that never ends). Aliases
    share nodes, so this walks each node once."""
    size: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        kids = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        if finished:
            size[key] = min(1 + sum(size[id(k)] for k in kids), MAX_YAML_NODES + 1)
        elif key in size:
            continue
        elif key in entered:  # reached again before it was finished: it contains itself
            return -1
        else:
            entered.add(key)
            stack.append((node, True))
            stack.extend((k, False) for k in kids)
    return size[id(root)]


def read_yaml(path: str | Path, what: str = "scenario"):
    """A YAML file's document, bounded: at most :data:`MAX_SCENARIO_BYTES`, nested at most
    :data:`MAX_YAML_DEPTH` deep, at most :data:`MAX_YAML_NODES` nodes with aliases
    expanded; anything else is a one-line error naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: {what} file not found")
    try:
        with p.open("rb") as f:
            data = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what}: {exc}") from None
    if len(data) > MAX_SCENARIO_BYTES:  # before decoding: the cut may split a character
        raise UserError(
            f"{path}: {what} file is larger than {MAX_SCENARIO_BYTES // 1024} KiB "
            f"({p.stat().st_size:,} bytes)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: cannot read {what}: {exc}") from None
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_nodes(node)
        if n < 0:
            raise UserError(f"{path}: invalid YAML: an alias refers to a node that contains it")
        if n > MAX_YAML_NODES:
            raise UserError(
                f"{path}: invalid YAML: more than {MAX_YAML_NODES:,} nodes once its aliases "
                "are expanded"
            )
        return loader.construct_document(node)
    except _YamlTooDeep as exc:
        mark = exc.args[0]
        raise UserError(
            f"{path}: invalid YAML (line {mark.line + 1}, column {mark.column + 1}): nested "
            f"more than {MAX_YAML_DEPTH} levels deep"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    except RecursionError:  # a last resort: the depth limit should come first
        raise UserError(f"{path}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def load_scenario(
    path: str | Path, max_configs: int = MAX_CONFIGS, max_units: int = MAX_UNITS
) -> Scenario:
    """Read and validate a scenario file; a grid of more than ``max_configs`` configs or
    more than ``max_units`` work units is refused before any of it is built."""
    raw = read_yaml(path)
    try:
        return parse_scenario(
            raw,
            default_name=Path(path).stem,
            source=str(path),
            max_configs=max_configs,
            max_units=max_units,
        )
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def load_plugins(specs) -> None:
    """Import modules that register components: ``package.module`` names or ``.py`` files.
    A file is imported as module ``dfsim_plugin_<stem>_<hash of its path>`` (the same name
    in every worker)."""
    for i, spec in enumerate(specs):
        where = f"plugins[{i}]"
        try:
            if spec.endswith(".py"):
                path = Path(spec).expanduser()
                name = _plugin_module(path)
                if name in sys.modules:
                    continue
                if not path.is_file():
                    raise UserError(f"{where}: file {spec!r} not found")
                module_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module
                module_spec.loader.exec_module(module)
            else:
                importlib.import_module(spec)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - an error in the user's module
            sys.modules.pop(_plugin_module(Path(spec).expanduser()), None)
            raise UserError(
                f"{where}: cannot import {spec!r} ({type(exc).__name__}: {exc})"
            ) from None


def _plugin_module(path: Path) -> str:
    """The module name of a plugin file: its stem and a hash of its absolute path."""
    digest = zlib.crc32(str(path.resolve()).encode())
    return f"dfsim_plugin_{path.stem}_{digest:08x}"


@dataclass(frozen=True)
class _TopLevel:
    """The scalar top-level keys."""

    name: str = "scenario"
    seed: Annotated[int, Range(0, 2**63 - 1)] = 0
    trials: Annotated[int, Range(1, 100_000)] = 5
    output: str | None = None
    batch_size: Annotated[int, Range(1, 100_000)] = DEFAULT_BATCH_SIZE
    reference_method: str | None = None
    dask_scheduler: str | None = None
    plugins: list[str] | None = None
    device: str = "cpu"


SECTIONS = (
    "model",
    "data",
    "task",
    "encoding",
    "packets",
    "network",
    "error_control",
    "channels",
    "methods",
    "zip",
)


def parse_scenario(
    raw: Any,
    default_name: str = "scenario",
    source: str = "",
    max_configs: int = MAX_CONFIGS,
    max_units: int = MAX_UNITS,
) -> Scenario:
    """Validate a scenario given as parsed YAML. The numbers of configs, channel settings
    and methods are counted from the lists before any is built: a grid of more than
    ``max_configs`` configs or ``max_units`` work units is a one-line error."""
    if raw is None:
        raise UserError("scenario is empty")
    scalars = dataclass_params(_TopLevel)
    check_keys(raw, "", [*scalars, *SECTIONS])
    for required in ("channels", "methods"):
        if required not in raw:
            raise UserError(f"{required}: required key is missing")
    top = check_params(scalars, {k: v for k, v in raw.items() if k in scalars}, "")
    load_plugins(top["plugins"] or ())
    name = top["name"] if "name" in raw else default_name
    model = _model(raw.get("model", {}))
    configs = _configs(raw, max_configs)
    cells = _channels(raw["channels"], len(configs), top["trials"], max_units)
    methods = _methods(raw["methods"])
    labels = [m.label for m in methods]
    reference = top["reference_method"] or ("zeros" if "zeros" in labels else labels[0])
    if reference not in labels:
        raise UserError(
            f"reference_method: {reference!r} is not one of the scenario's methods "
            f"({', '.join(labels)})"
        )
    return Scenario(
        name=name,
        seed=top["seed"],
        model=model,
        data=_data(raw.get("data", {})),
        task=_component("task", raw.get("task", "classification"), "task"),
        network=_network(raw.get("network", {})),
        configs=configs,
        cells=cells,
        methods=methods,
        trials=top["trials"],
        output=top["output"] or f"results/{name}",
        batch_size=top["batch_size"],
        reference_method=reference,
        dask_scheduler=top["dask_scheduler"],
        plugins=tuple(top["plugins"] or ()),
        source=source,
        device=devices.check(top["device"], "device"),
    )


def _component(
    kind: str, raw, where: str, key: str = "name", default=None, extra: tuple[str, ...] = ()
) -> Component:
    """A component given as ``NAME`` or ``{key: NAME, <parameters>}``; ``extra`` keys are
    the section's own and are left out."""
    if isinstance(raw, str):
        name, rest = raw, {}
    else:
        if not isinstance(raw, dict):
            raise UserError(f"{where}: expected a name or a mapping, got {type_name(raw)}")
        name = raw.get(key, default)
        rest = {k: v for k, v in raw.items() if k != key and k not in extra}
        if name is None:
            raise UserError(
                f"{where}.{key}: required key is missing (one of {', '.join(names(kind))})"
            )
    e = entry(kind, name, f"{where}.{key}" if not isinstance(raw, str) else where)
    params = check_params(e.params, rest, where, e.what)
    e.build(where, **params)  # cross-parameter checks now, not in the middle of a run
    return Component(kind, name, tuple(params.items()))


# --------------------------------------------------------------------------- sections
def _model(raw) -> ModelSpec:
    """A registered model (``name``) or one given by ``import`` path, with its parameters."""
    if not isinstance(raw, dict):
        raise UserError(f"model: expected a mapping, got {type_name(raw)}")
    imported = raw.get("import") is not None
    if imported and "name" in raw:
        raise UserError(
            "model: give either 'name' (a built-in model) or 'import' (your own), not both"
        )
    if imported:
        from dfsim.models.sources import import_parameters

        declared, what = declared_params(import_parameters), "a model given by import"
    else:
        e = entry("model", raw.get("name", "fmnist-resnet"), "model.name")
        declared, what = e.params, e.what
    check_keys(raw, "model", ["name", "import", "split", *declared])
    rest = {k: v for k, v in raw.items() if k not in ("name", "import", "split")}
    params = check_params(declared, rest, "model", what)
    if not imported:
        return ModelSpec(e.name, None, tuple(params.items()))
    path = _string("model.import", raw["import"])
    try:
        params = import_parameters(**params)
    except ValueError as exc:
        raise UserError(f"model.{exc}") from None
    return ModelSpec(path, path, tuple(params.items()))


def _string(where: str, value) -> str:
    return Param(where, str).check(value, where)


def _data(raw) -> DataSpec:
    if not isinstance(raw, dict):
        raise UserError(f"data: expected a mapping, got {type_name(raw)}")
    if "split" in raw:  # the data subset was once called split, like the cut
        print("dfsim: note: data.split is deprecated, read as data.subset", file=sys.stderr)
        raw = {("subset" if k == "split" else k): v for k, v in raw.items()}
    own = check_params(
        dataclass_params(_DataKeys),
        {k: v for k, v in raw.items() if k in ("n_images", "fit_dir")},
        "data",
    )
    dataset = _component(
        "dataset",
        raw,
        "data",
        key="dataset",
        default="fashion-mnist",
        extra=("n_images", "fit_dir"),
    )
    return DataSpec(dataset, own["n_images"], own["fit_dir"])


@dataclass(frozen=True)
class _DataKeys:
    n_images: Annotated[int, Range(1)] = 1000
    fit_dir: Annotated[str, DIR] | None = None


def _network(raw) -> NetworkSpec:
    raw = {} if raw is None else raw
    check_keys(raw, "network", list(dataclass_params(NetworkSpec)))
    jitter = None
    if raw.get("jitter") is not None:
        jitter = _component("jitter", raw["jitter"], "network.jitter", key="distribution").build()
    given = {k: v for k, v in raw.items() if k != "jitter" and not (k == "side_info" and v is None)}
    spec = parse_dataclass(NetworkSpec, given, "network")
    if spec.arrivals == "poisson" and spec.fps is None:
        raise UserError(
            "network.arrivals: 'poisson' needs network.fps (the arrival rate per device)"
        )
    if spec.header_bytes >= spec.mtu_bytes:
        raise UserError(
            f"network.header_bytes: {spec.header_bytes} leaves no payload in "
            f"network.mtu_bytes {spec.mtu_bytes}"
        )
    return replace(spec, jitter=jitter)


# --------------------------------------------------------------------------- the grid
def _configs(raw, max_configs: int = MAX_CONFIGS) -> tuple[Config, ...]:
    """Every grid dimension (path, values) in declaration order, then their product (its
    size checked against ``max_configs`` before it is made)."""
    model = raw.get("model", {})
    splits = model.get("split") if isinstance(model, dict) else None
    dims: dict[str, list] = {"model.split": _grid("model.split", splits, _optional_string)}
    enc = raw.get("encoding", {})
    check_keys(enc, "encoding", ["codec", *_codec_keys()])
    codecs = _grid(
        "encoding.codec", enc.get("codec", "raw"), lambda v, k: entry("codec", v, k).name
    )
    dims["encoding.codec"] = codecs
    # A parameter given once applies to every codec of the grid that declares it; the
    # others keep their own defaults (set in _config).
    given = {k: v for k, v in enc.items() if k != "codec"}
    for k in given:
        if not any(k in entry("codec", c).params for c in codecs):
            raise UserError(
                f"encoding.{key_text(k)}: not a parameter of codec {', '.join(codecs)} "
                f"(parameters: {', '.join(_codec_keys(codecs)) or 'none'})"
            )
    defaults: dict[str, set] = {}
    for codec in codecs:
        e = entry("codec", codec)
        mine = {k: v for k, v in given.items() if k in e.params}
        try:
            checked = check_params(e.params, mine, "encoding", e.what, grid=True)
        except UserError as exc:
            raise UserError(f"{exc} (codec {codec})" if len(codecs) > 1 else str(exc)) from None
        for k, vs in checked.items():
            if k in mine:
                dims.setdefault(f"encoding.{k}", vs)
            else:
                defaults.setdefault(k, set()).add(repr(vs))
    for k, reprs in defaults.items():  # a default all the grid's codecs share is a grid key
        if f"encoding.{k}" not in dims and len(reprs) == 1:
            p = next(entry("codec", c).params[k] for c in codecs if k in entry("codec", c).params)
            dims[f"encoding.{k}"] = [p.default]
    packets = check_params(
        dataclass_params(Packetization), raw.get("packets", {}), "packets", grid=True
    )
    dims.update({f"packets.{k}": vs for k, vs in packets.items()})
    dims["error_control"] = _grid(
        "error_control",
        raw.get("error_control", {"name": "none"}),
        lambda v, k: parse_strategy(v, k),
    )
    labels = [c.label for c in dims["error_control"]]
    if len(set(labels)) < len(labels):
        raise UserError(
            f"error_control: {shown(labels)}: strategies need distinct labels (set 'label')"
        )
    axes = _axes({k: len(v) for k, v in dims.items()}, _zip_groups(dims, raw.get("zip")), "zip")
    distinct = _distinct_per_codec(dims, axes)
    n = _count_configs(distinct)
    if n > max_configs:
        listed = " x ".join(f"{len(v)} {k}" for k, v in dims.items() if len(v) > 1)
        zipped = ", some zipped" if any(len(a) > 1 for a in axes) else ""
        raise UserError(
            f"the grid ({listed}{zipped}) makes {n:,} configs, more than the limit of "
            f"{max_configs:,}: shorten its lists, or raise the limit with --max-configs {n}"
        )
    codecs: dict[tuple, Component] = {}  # each distinct codec checked once
    picks = _config_picks(distinct, axes)
    return tuple(
        dict.fromkeys(_config({k: dims[k][i] for k, i in p.items()}, codecs) for p in picks)
    )


def _distinct_per_codec(dims: dict[str, list], axes: list[list[str]]) -> list[list[list[int]]]:
    """For each codec of the grid, for each axis (keys that advance together): the first
    index of each distinct value the axis takes on the keys that codec reads. A codec
    without a listed codec parameter reads one index of that list, not all of them; the
    codec's axis holds that codec's index only. Linear in the lists' lengths."""
    out = []
    for c, codec in enumerate(dims["encoding.codec"]):
        declared = entry("codec", codec).params
        per_axis = []
        for axis in axes:
            keys = [
                k
                for k in axis
                if not k.startswith("encoding.")
                or k == "encoding.codec"
                or k.removeprefix("encoding.") in declared
            ]
            at = [c] if "encoding.codec" in axis else range(len(dims[axis[0]]))
            first: dict[tuple, int] = {}
            for i in at:
                first.setdefault(tuple(dims[k][i] for k in keys), i)
            per_axis.append(list(first.values()))
        out.append(per_axis)
    return out


def _count_configs(distinct: list[list[list[int]]]) -> int:
    """How many distinct configs the grid makes, without making them: for each codec, the
    product over the axes of the distinct values the axis takes on the keys that codec
    reads (``distinct``: :func:`_distinct_per_codec`)."""
    return sum(math.prod(map(len, per_axis)) for per_axis in distinct)


def _config_picks(distinct: list[list[list[int]]], axes: list[list[str]]) -> list[dict[str, int]]:
    """The index combination of each distinct config, exactly :func:`_count_configs` of
    them (made per codec from the axes it reads, never the product of every list), in the
    order of the full product of the axes: the first combination of each config there is
    the one made of each axis's first index for its values, and sorting the index tuples
    restores the product's order across codecs."""
    combos = sorted(combo for per_axis in distinct for combo in itertools.product(*per_axis))
    return [{k: combo[a] for a, axis in enumerate(axes) for k in axis} for combo in combos]


def _codec_keys(codecs=None) -> list[str]:
    """Parameters of ``codecs`` (default: every registered codec)."""
    codecs = names("codec") if codecs is None else codecs
    return list(dict.fromkeys(k for n in codecs for k in entry("codec", n).params))


def _optional_string(value, where):
    return None if value is None else _string(where, value)


def _grid(key: str, value, check) -> list:
    """A grid key: one value, or a list of values (each checked, no repeats)."""
    return grid_values(key, value, check) if isinstance(value, list) else [check(value, key)]


def _config(point: dict, codecs: dict) -> Config:
    """One grid point's config; ``codecs``: the codec components checked so far."""
    codec = point["encoding.codec"]
    declared = entry("codec", codec).params
    params = tuple((k, point.get(f"encoding.{k}", p.default)) for k, p in declared.items())
    if (codec, params) not in codecs:
        try:
            entry("codec", codec).build("encoding", **dict(params))
        except UserError as exc:
            raise UserError(f"{exc} (codec {codec})") from None
        codecs[codec, params] = Component("codec", codec, params)
    return Config(
        point["model.split"],
        codecs[codec, params],
        Packetization(point["packets.rows_per_packet"], point["packets.order"]),
        point["error_control"],
    )


def _zip_groups(dims: dict[str, list], zipped) -> list[list[str]]:
    """The scenario's ``zip`` groups of grid keys, checked."""
    groups: list[list[str]] = []
    if zipped is not None:
        if not isinstance(zipped, list) or not zipped:
            raise UserError(f"zip: expected a non-empty list of groups, got {type_name(zipped)}")
        for i, group in enumerate(zipped):
            if not isinstance(group, list) or len(group) < 2:
                raise UserError(
                    f"zip[{i}]: expected a list of at least two grid keys, got {shown(group)}"
                )
            for name in group:
                if not isinstance(name, str) or name not in dims:
                    raise UserError(
                        f"zip[{i}]: {shown(name)} is not a grid key (one of {', '.join(dims)})"
                    )
                if any(name in g for g in groups):
                    raise UserError(f"zip[{i}]: {name!r} appears in more than one zip group")
            groups.append(group)
    return groups


def _axes(lengths: dict[str, int], groups: list[list[str]], where: str) -> list[list[str]]:
    """The keys that advance together (each zip group, and each other key alone), in the
    order of ``lengths``; the zipped lists checked to be of one length. The one rule for
    grids, channel sweeps and method variants: their combinations are the product of the
    axes (:func:`_picks_of`), and there are ``_count(axes, lengths)`` of them."""
    for i, g in enumerate(groups):
        if len({lengths[k] for k in g}) > 1:
            at = f"{where}[{i}]" if where == "zip" else where
            counts = ", ".join(f"{k} has {lengths[k]}" for k in g)
            raise UserError(f"{at}: zipped lists differ in length ({counts})")
    order = list(lengths)
    axes = groups + [[k] for k in order if not any(k in g for g in groups)]
    axes.sort(key=lambda g: min(order.index(k) for k in g))
    return axes


def _count(axes: list[list[str]], lengths: dict[str, int]) -> int:
    """How many combinations :func:`_picks_of` makes."""
    return math.prod(lengths[g[0]] for g in axes)


def _picks_of(axes: list[list[str]], lengths: dict[str, int]) -> list[dict[str, int]]:
    """Index combinations: the product of the axes, each axis's keys advancing together."""
    picks: list[dict[str, int]] = [{}]
    for g in axes:
        picks = [{**p, **dict.fromkeys(g, i)} for p in picks for i in range(lengths[g[0]])]
    return picks


def _zip_flag(raw: dict, listed: list[str], where: str) -> list[list[str]]:
    """An entry's ``zip: true`` as one group of its list-valued keys."""
    zipped = raw.get("zip", False)
    if not isinstance(zipped, bool):
        raise UserError(
            f"{where}.zip: expected true or false, got {type_name(zipped)} {shown(zipped)}"
        )
    if zipped and len(listed) < 2:
        raise UserError(f"{where}.zip: fewer than two parameters are lists, nothing to zip")
    return [listed] if zipped else []


# --------------------------------------------------------------------------- channels
def _channels(
    value, n_configs: int = 1, trials: int = 1, max_units: int = MAX_UNITS
) -> tuple[ChannelSetting, ...]:
    """The channel settings; their number (times the configs and trials: the work units)
    checked against ``max_units`` before any channel is made."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise UserError(
            f"channels: expected a non-empty list of channel settings, got {type_name(value)}"
        )
    plans = [_channel_settings(item, f"channels[{i}]") for i, item in enumerate(value)]
    n_cells = sum(n for n, _ in plans)
    units = n_configs * n_cells * trials
    if units > max_units:
        raise UserError(
            f"the scenario makes {units:,} work units ({n_configs:,} configs x {n_cells:,} "
            f"channel settings x {trials:,} trials), more than the limit of {max_units:,}: "
            f"shorten its lists, or raise the limit with --max-units {units}"
        )
    cells = [c for _, make in plans for c in make()]
    seen = set()
    for c in cells:
        if c.key in seen:
            raise UserError(f"channels: setting {c.key.replace('|', ' ')} appears twice")
        seen.add(c.key)
    return tuple(cells)


def _channel_settings(raw, where: str):
    """One ``channels`` entry: each parameter given once (``loss_rate``) or as a sweep under
    its plural (``loss_rates``); the settings are the product of the sweeps, or with
    ``zip: true`` the sweeps taken element-wise. Returns their number and a function that
    makes them (every value is checked first)."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type_name(raw)}")
    if "kind" not in raw:
        raise UserError(
            f"{where}.kind: required key is missing (one of {', '.join(names('channel'))})"
        )
    e = entry("channel", raw["kind"], f"{where}.kind")
    accepted = [k for p in e.params for k in (f"{p}s", p)]
    for k in raw:
        if k not in ("kind", "zip", *accepted):
            listed = ", ".join(f"{p}s" for p in e.params) or "none"
            raise UserError(
                f"{where}.{key_text(k)}: not a parameter of {e.what} (its parameters: {listed})"
            )
    sweeps: dict[str, list] = {}  # YAML key -> checked values
    keys: dict[str, str] = {}  # parameter -> its YAML key
    for p, decl in e.params.items():
        if p in raw and f"{p}s" in raw:
            raise UserError(f"{where}: give {p} or {p}s, not both")
        key = keys[p] = f"{p}s" if f"{p}s" in raw else p
        if key not in raw:
            if decl.required:
                raise UserError(
                    f"{where}.{p}: required for {e.what} (one value, or a list as {p}s)"
                )
            sweeps[key] = [decl.default]
        elif isinstance(raw[key], list) and not decl.is_sequence:
            sweeps[key] = grid_values(f"{where}.{key}", raw[key], decl.check)
        else:
            sweeps[key] = [decl.check(raw[key], f"{where}.{key}")]
    listed = [keys[p] for p in e.params if isinstance(raw.get(keys[p]), list)]
    lengths = {k: len(v) for k, v in sweeps.items()}
    axes = _axes(lengths, _zip_flag(raw, listed, where), f"{where}.zip")
    return _count(axes, lengths), lambda: [
        _setting(e, where, keys, sweeps, pick, listed, raw) for pick in _picks_of(axes, lengths)
    ]


def _setting(e, where: str, keys: dict, sweeps: dict, pick: dict, listed, raw) -> ChannelSetting:
    """The channel of one combination of the entry's sweeps, with its seed key."""
    values = {p: sweeps[k][pick[k]] for p, k in keys.items()}
    try:
        channel = e.factory(**values)
    except ValueError as exc:
        shown = [
            (f"{k}[{pick[k]}]" if k in listed else k, sweeps[k][pick[k]])
            for k in raw
            if k in sweeps
        ]
        given = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown)
        raise UserError(f"{where}: {given}: {exc}") from None
    loss = values.get("loss_rate", channel.loss_rate)
    burst = values.get("burst_length", channel.mean_burst_length)
    if hasattr(channel, "setting_key"):
        key = channel.setting_key()
    else:
        other = "".join(
            f"|{p}={v!r}" for p, v in values.items() if p not in ("loss_rate", "burst_length")
        )
        key = f"{e.name}|loss={loss!r}|burst={burst!r}{other}"
    return ChannelSetting(e.name, loss, burst, channel, key)


# --------------------------------------------------------------------------- methods
def _methods(value) -> tuple[MethodSpec, ...]:
    """Method entries; a parameter given as a list expands into one method per value
    (the product over list parameters, or element-wise with ``zip: true``)."""
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise UserError("methods: must not be empty")
    plans = [_method_variants(item, f"methods[{i}]") for i, item in enumerate(value)]
    n = sum(k for k, _ in plans)
    if n > MAX_METHODS:
        raise UserError(
            f"methods: {n:,} methods with their variants, more than the limit of "
            f"{MAX_METHODS:,}: shorten the parameter lists, or split the scenario"
        )
    specs = [s for _, make in plans for s in make()]
    labels = [s.label for s in specs]
    counts = collections.Counter(labels)
    dup = sorted({x for x in labels if counts[x] > 1})
    if dup:
        more = f" and {len(dup) - 5} more" if len(dup) > 5 else ""
        raise UserError(
            f"methods: {', '.join(key_text(x) for x in dup[:5])}{more} listed twice "
            "(give each a distinct 'label')"
        )
    return tuple(specs)


def _method_variants(item, where: str):
    """One ``methods`` entry: its number of variants and a function that makes them."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        raise UserError(
            f"{where}: expected a method name or a mapping with 'name', got {type_name(item)}"
        )
    if "name" not in item:
        raise UserError(
            f"{where}.name: required key is missing (one of {', '.join(names('completion'))})"
        )
    e = entry("completion", item["name"], where)
    label = _string(f"{where}.label", item["label"]) if "label" in item else None
    given = {k: v for k, v in item.items() if k not in ("name", "label", "zip")}
    checked = check_params(e.params, given, where, e.what, grid=True)
    varying = [k for k, v in given.items() if isinstance(v, list) and not e.params[k].is_sequence]
    lengths = {k: len(given[k]) for k in varying}
    axes = _axes(lengths, _zip_flag(item, varying, where), f"{where}.zip")

    def make() -> list[MethodSpec]:
        out = []
        for pick in _picks_of(axes, lengths):
            params = {k: (v[pick[k]] if k in pick else v[0]) for k, v in checked.items()}
            e.build(where, **params)  # cross-parameter checks
            shown = given if label is None else dict.fromkeys(varying)
            text = ",".join(f"{k}={given[k][pick[k]] if k in pick else given[k]}" for k in shown)
            base = label or e.name
            out.append(MethodSpec(e.name, params, f"{base}({text})" if text else base))
        return out

    return _count(axes, lengths), make
