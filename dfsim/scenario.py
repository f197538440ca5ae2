"""Scenario files: YAML -> validated :class:`Scenario`.

The only place that reads user configuration. Every mistake becomes a
:class:`~dfsim.errors.UserError` whose one-line message names the file and the key
(``channels[1].burst_length: ...``). See ``scenarios/default.yaml`` for a commented
example and README for every key.
"""
from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from dfsim.network import Arq, Fec, Jitter, SideInfo
from dfsim.channels import Bernoulli, ChannelParameterError, GilbertElliott, LossChannel, Trace, TraceError
from dfsim.completion.base import available_methods, make, method_class, method_parameters
from dfsim.encoding import MAX_BITS, MIN_BITS
from dfsim.errors import UserError
from dfsim.packets import SEND_ORDERS

CHANNEL_KINDS = ("iid", "gilbert-elliott", "trace")
DATASETS = ("fashion-mnist", "folder", "sample-photos")


# --------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class ModelSpec:
    name: str = "fmnist-resnet"
    split: str | None = None  # None: the model's default split point
    weights: str | None = None
    import_path: str | None = None  # "package.module:factory": the user's own model
    input_size: tuple[int, int, int] | None = None  # C, H, W (import path: required)
    mean: tuple[float, ...] | None = None  # normalisation of x/255 (import path; default 0 / 1)
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class DataSpec:
    dataset: str = "fashion-mnist"
    split: str = "test"
    n_images: int = 1000
    dir: str | None = None
    labels: str = "folders"  # folder datasets: folders | none | path of a file,label CSV
    resize: int | None = None  # folder datasets: shorter side before the centre crop
    fit_dir: str | None = None  # folder of images to fit trained methods (ALTeC) on


@dataclass(frozen=True)
class NetworkSpec:
    bandwidth_mbps: float = 10.0
    propagation_ms: float = 5.0
    header_bytes: int = 40
    fps: float | None = 30.0
    mtu_bytes: int = 1500
    buffer_bytes: int | None = None  # drop-tail transmit buffer; None = unlimited
    jitter: Jitter | None = None
    deadline_ms: float | None = None
    devices: int = 1
    arrivals: str = "periodic"
    edge_ms: float = 0.0  # edge sub-model time per image
    cloud_ms: float = 0.0  # cloud sub-model time per image
    completion_time: str = "none"  # "measured": add each method's measured time per tensor at the cloud
    side_info: SideInfo = SideInfo()


@dataclass(frozen=True)
class ErrorControl:
    """One packet-loss protection strategy: none, ARQ, FEC, or both."""

    label: str = "none"
    arq: Arq | None = None
    fec: Fec | None = None


@dataclass(frozen=True)
class ChannelCell:
    """One channel setting of the sweep (a row group in results.csv)."""

    kind: str
    loss_rate: float
    burst_length: float  # mean burst length; for i.i.d. 1/(1-loss_rate)
    channel: LossChannel = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        if self.kind == "trace":
            return f"trace|file={self.channel.name}|trial_offset={self.channel.trial_offset}"
        return f"{self.kind}|loss={self.loss_rate!r}|burst={self.burst_length!r}"

    @property
    def seed_key(self) -> int:
        """Stable integer for seeding: the same setting draws the same losses in any scenario."""
        return zlib.crc32(self.key.encode())


@dataclass(frozen=True)
class Config:
    """One point of the scenario's packetization grid: where to split, how many bits,
    how many rows per packet and in which order packets are sent."""

    split: str | None  # None: the model's default split point
    bits: int
    rows_per_packet: int
    order: str
    error_control: ErrorControl = ErrorControl()

    def describe(self) -> str:
        return (f"split {self.split or '(default)'}, {self.bits}-bit, {self.rows_per_packet} rows/packet, "
                f"{self.order}, error control {self.error_control.label}")


# The scenario keys that may be lists (a grid) and their Config field.
GRID_KEYS = {"model.split": "split", "encoding.bits": "bits", "packets.rows_per_packet": "rows_per_packet",
             "packets.order": "order", "error_control": "error_control"}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: dict[str, Any]
    label: str


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    model: ModelSpec
    data: DataSpec
    bits: int
    rows_per_packet: int
    order: str
    network: NetworkSpec
    cells: tuple[ChannelCell, ...]
    methods: tuple[MethodSpec, ...]
    trials: int
    output: str
    batch_size: int
    reference_method: str = "zeros"  # the paired test compares every method with this one
    dask_scheduler: str | None = None  # run on this Dask scheduler instead of local processes
    source: str = ""
    # Every (split, bits, rows_per_packet, order) of the grid. The scalar fields above
    # (model.split, bits, rows_per_packet, order) hold configs[0]; for_config() gives the
    # single-config scenario that one part of a run works with.
    configs: tuple[Config, ...] = ()

    def __post_init__(self):
        if not self.configs:
            object.__setattr__(self, "configs", (self.config,))

    error_control: ErrorControl = ErrorControl()

    @property
    def config(self) -> Config:
        return Config(self.model.split, self.bits, self.rows_per_packet, self.order, self.error_control)

    def for_config(self, cfg: Config) -> "Scenario":
        return replace(self, model=replace(self.model, split=cfg.split), bits=cfg.bits,
                       rows_per_packet=cfg.rows_per_packet, order=cfg.order, error_control=cfg.error_control,
                       configs=(cfg,))

    @property
    def n_units(self) -> int:
        return len(self.configs) * len(self.cells) * self.trials

    def resolved(self) -> dict[str, Any]:
        """The scenario with every default filled in (for manifest.json). A grid key holds
        the list of its values, and ``grid`` every config in run order."""
        def values(f):
            vs = list(dict.fromkeys(getattr(c, f) for c in self.configs))
            return vs if len(vs) > 1 else vs[0]

        return {
            "name": self.name,
            "seed": self.seed,
            "model": {**asdict(self.model), "split": values("split")},
            "data": asdict(self.data),
            "encoding": {"bits": values("bits")},
            "packets": {"rows_per_packet": values("rows_per_packet"), "order": values("order")},
            "error_control": [asdict(e) for e in dict.fromkeys(c.error_control for c in self.configs)],
            **({"grid": [asdict(c) for c in self.configs]} if len(self.configs) > 1 else {}),
            "network": asdict(self.network),
            "cells": [
                {"kind": c.kind, "loss_rate": c.loss_rate, "burst_length": c.burst_length, "channel": repr(c.channel)}
                for c in self.cells
            ],
            "methods": [{"name": m.name, "label": m.label, **m.params} for m in self.methods],
            "trials": self.trials,
            "batch_size": self.batch_size,
            "reference_method": self.reference_method,
            "output": self.output,
        }


# --------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last."""


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


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: scenario file not found")
    try:
        text = p.read_text()
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read scenario: {exc}") from None
    try:
        return parse_scenario(raw, default_name=p.stem, source=str(p))
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- validation helpers
def _type_name(v) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping",
            type(None): "null"}.get(type(v), type(v).__name__)


def _mapping(key: str, value, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{key}: expected a mapping, got {_type_name(value)}")
    for k in value:
        if k not in allowed:
            prefix = f"{key}." if key else ""
            raise UserError(f"{prefix}{k}: unknown key (allowed here: {', '.join(allowed)})")
    return value


def _int(key: str, value, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key}: expected an integer, got {_type_name(value)} {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise UserError(f"{key}: {value} is out of range (must be {rng})")
    return value


def _num(key: str, value, lo: float | None = None, hi: float | None = None, lo_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{key}: expected a number, got {_type_name(value)} {value!r}")
    v = float(value)
    bad = math.isnan(v) or math.isinf(v)
    bad |= lo is not None and (v <= lo if lo_open else v < lo)
    bad |= hi is not None and v > hi
    if bad:
        lower = f"> {lo:g}" if lo_open else f">= {lo:g}"
        rng = f"in [{lo:g}, {hi:g}]" if (hi is not None and not lo_open) else (
            f"{lower} and <= {hi:g}" if hi is not None else lower)
        raise UserError(f"{key}: {value!r} is out of range (must be {rng})")
    return v


def _str(key: str, value, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{key}: expected a non-empty string, got {_type_name(value)} {value!r}")
    if choices is not None and value not in choices:
        raise UserError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _list(key: str, value, item, allow_scalar=True) -> list:
    if not isinstance(value, list):
        if allow_scalar and not isinstance(value, dict):
            value = [value]
        else:
            raise UserError(f"{key}: expected a list, got {_type_name(value)}")
    if not value:
        raise UserError(f"{key}: must not be empty")
    return [item(f"{key}[{i}]", v) for i, v in enumerate(value)]


def _bool(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{key}: expected true or false, got {_type_name(value)} {value!r}")
    return value


def _existing_path(key: str, value, kind: str) -> str:
    s = _str(key, value)
    p = Path(s).expanduser()
    ok = p.is_dir() if kind == "dir" else p.is_file()
    if not ok:
        raise UserError(f"{key}: {kind} {s!r} not found")
    return str(p)


# --------------------------------------------------------------------------- the schema
TOP_KEYS = ("name", "seed", "model", "data", "encoding", "packets", "network", "channels", "methods",
            "trials", "output", "batch_size", "reference_method", "dask_scheduler", "zip",
            "error_control")


def parse_scenario(raw: Any, default_name: str = "scenario", source: str = "") -> Scenario:
    if raw is None:
        raise UserError("scenario is empty")
    raw = _mapping("", raw, TOP_KEYS)
    for required in ("channels", "methods"):
        if required not in raw:
            raise UserError(f"{required}: required key is missing")

    name = _str("name", raw.get("name", default_name))
    seed = _int("seed", raw.get("seed", 0), 0, 2**63 - 1)

    m = _mapping("model", raw.get("model", {}), ("name", "split", "weights", "import", "input_size", "mean", "std"))
    import_path = _str("model.import", m["import"]) if m.get("import") is not None else None
    if import_path and "name" in m:
        raise UserError("model: give either 'name' (a built-in model) or 'import' (your own), not both")
    model_name = import_path or _str("model.name", m.get("name", ModelSpec.name))
    weights = _existing_path("model.weights", m["weights"], "file") if m.get("weights") is not None else None
    input_size = mean = std = None
    if import_path:
        if "input_size" not in m:
            raise UserError("model.input_size: required with model.import ([channels, height, width])")
        input_size = tuple(_list("model.input_size", m["input_size"], lambda k, v: _int(k, v, 1), allow_scalar=False))
        if len(input_size) != 3:
            raise UserError(f"model.input_size: expected [channels, height, width], got {list(input_size)}")
        mean = tuple(_list("model.mean", m.get("mean", [0.0]), lambda k, v: _num(k, v)))
        std = tuple(_list("model.std", m.get("std", [1.0]), lambda k, v: _num(k, v, 0, lo_open=True)))
        for key, vals in (("model.mean", mean), ("model.std", std)):
            if len(vals) not in (1, input_size[0]):
                raise UserError(f"{key}: expected 1 or {input_size[0]} values (one per channel), got {len(vals)}")
    else:
        for k in ("input_size", "mean", "std"):
            if k in m:
                raise UserError(f"model.{k}: only for a model given by 'import' (built-in models know theirs)")

    d = _mapping("data", raw.get("data", {}), ("dataset", "split", "n_images", "dir", "labels", "resize", "fit_dir"))
    dataset = _str("data.dataset", d.get("dataset", DataSpec.dataset), DATASETS)
    if dataset == "folder" and d.get("dir") is None:
        raise UserError("data.dir: required for dataset 'folder' (a directory of images)")
    if dataset != "folder":
        for k in ("labels", "resize"):
            if k in d:
                raise UserError(f"data.{k}: only for dataset 'folder'")
    labels = _str("data.labels", d.get("labels", "folders"))
    if labels not in ("folders", "none"):
        labels = _existing_path("data.labels", labels, "file")
    data = DataSpec(
        dataset=dataset,
        split=_str("data.split", d.get("split", DataSpec.split), ("train", "test")),
        n_images=_int("data.n_images", d.get("n_images", DataSpec.n_images), 1),
        dir=_existing_path("data.dir", d["dir"], "dir") if d.get("dir") is not None else None,
        labels=labels,
        resize=_int("data.resize", d["resize"], 1) if d.get("resize") is not None else None,
        fit_dir=_existing_path("data.fit_dir", d["fit_dir"], "dir") if d.get("fit_dir") is not None else None,
    )

    e = _mapping("encoding", raw.get("encoding", {}), ("bits",))
    pk = _mapping("packets", raw.get("packets", {}), ("rows_per_packet", "order"))
    grid_values = {
        "model.split": _grid_list("model.split", m.get("split"),
                                  lambda k, v: None if v is None else _str(k, v)),
        "encoding.bits": _grid_list("encoding.bits", e.get("bits", 8), lambda k, v: _int(k, v, MIN_BITS, MAX_BITS)),
        "packets.rows_per_packet": _grid_list("packets.rows_per_packet", pk.get("rows_per_packet", 4),
                                              lambda k, v: _int(k, v, 1)),
        "packets.order": _grid_list("packets.order", pk.get("order", "row-major"),
                                    lambda k, v: _str(k, v, SEND_ORDERS)),
        "error_control": _grid_list("error_control", raw.get("error_control", {"name": "none"}), _error_control),
    }
    configs = _expand_grid(grid_values, raw.get("zip"))
    first = configs[0]
    model = ModelSpec(name=model_name, split=first.split, weights=weights, import_path=import_path,
                      input_size=input_size, mean=mean, std=std)
    bits, rows_per_packet, order = first.bits, first.rows_per_packet, first.order
    labels = [c.label for c in grid_values["error_control"]]
    if len(set(labels)) < len(labels):
        raise UserError(f"error_control: {labels!r}: strategies need distinct labels (set 'label')")

    network = _parse_network(raw.get("network", {}))

    cells = _parse_channels(raw["channels"])
    methods = _parse_methods(raw["methods"])
    trials = _int("trials", raw.get("trials", 5), 1, 100_000)
    output = _str("output", raw.get("output", f"results/{name}"))
    batch_size = _int("batch_size", raw.get("batch_size", 256), 1, 100_000)
    labels = [m.label for m in methods]
    default_ref = "zeros" if "zeros" in labels else labels[0]
    reference_method = _str("reference_method", raw.get("reference_method", default_ref))
    if reference_method not in labels:
        raise UserError(f"reference_method: {reference_method!r} is not one of the scenario's methods "
                        f"({', '.join(labels)})")
    dask_scheduler = _str("dask_scheduler", raw["dask_scheduler"]) if raw.get("dask_scheduler") is not None else None
    return Scenario(name, seed, model, data, bits, rows_per_packet, order, network, cells, methods, trials,
                    output, batch_size, reference_method, dask_scheduler, source, configs, first.error_control)


NETWORK_KEYS = ("bandwidth_mbps", "propagation_ms", "header_bytes", "fps", "mtu_bytes", "buffer_bytes", "jitter",
                "deadline_ms", "devices", "arrivals", "edge_ms", "cloud_ms", "completion_time", "side_info")
JITTER_KEYS = {"uniform": ("low_ms", "high_ms"), "exponential": ("mean_ms",), "normal": ("mean_ms", "sd_ms")}


def _parse_network(value) -> NetworkSpec:
    nw = _mapping("network", value, NETWORK_KEYS)
    d = NetworkSpec()

    def get(k, parse):
        if k not in nw:
            return getattr(d, k)
        return None if nw[k] is None else parse(f"network.{k}", nw[k])

    fps = get("fps", lambda k, v: _num(k, v, 0, lo_open=True))
    arrivals = get("arrivals", lambda k, v: _str(k, v, ("periodic", "poisson")))
    if arrivals == "poisson" and fps is None:
        raise UserError("network.arrivals: 'poisson' needs network.fps (the arrival rate per device)")
    header = _int("network.header_bytes", nw.get("header_bytes", d.header_bytes), 0, 65535)
    mtu = _int("network.mtu_bytes", nw.get("mtu_bytes", d.mtu_bytes), 68, 1 << 20)
    if header >= mtu:
        raise UserError(f"network.header_bytes: {header} leaves no payload in network.mtu_bytes {mtu}")
    si = _mapping("network.side_info", nw.get("side_info") or {}, ("placement", "on_loss"))
    side = SideInfo(
        placement=_str("network.side_info.placement", si.get("placement", "first-packet"), SideInfo.PLACEMENTS),
        on_loss=_str("network.side_info.on_loss", si.get("on_loss", "assume-delivered"), SideInfo.POLICIES),
    )
    return NetworkSpec(
        bandwidth_mbps=_num("network.bandwidth_mbps", nw.get("bandwidth_mbps", d.bandwidth_mbps), 0, lo_open=True),
        propagation_ms=_num("network.propagation_ms", nw.get("propagation_ms", d.propagation_ms), 0),
        header_bytes=header,
        fps=fps,
        mtu_bytes=mtu,
        buffer_bytes=get("buffer_bytes", lambda k, v: _int(k, v, 1)),
        jitter=get("jitter", _jitter),
        deadline_ms=get("deadline_ms", lambda k, v: _num(k, v, 0, lo_open=True)),
        devices=_int("network.devices", nw.get("devices", d.devices), 1, 100_000),
        arrivals=arrivals,
        edge_ms=_num("network.edge_ms", nw.get("edge_ms", d.edge_ms), 0),
        cloud_ms=_num("network.cloud_ms", nw.get("cloud_ms", d.cloud_ms), 0),
        completion_time=_str("network.completion_time", nw.get("completion_time", d.completion_time),
                             ("none", "measured")),
        side_info=side,
    )


def _jitter(key: str, value) -> Jitter:
    j = _mapping(key, value, ("distribution", "low_ms", "high_ms", "mean_ms", "sd_ms"))
    if "distribution" not in j:
        raise UserError(f"{key}.distribution: required key is missing (one of {', '.join(JITTER_KEYS)})")
    dist = _str(f"{key}.distribution", j["distribution"], tuple(JITTER_KEYS))
    params = []
    for p in JITTER_KEYS[dist]:
        if p not in j:
            raise UserError(f"{key}.{p}: required for a {dist} jitter ({', '.join(JITTER_KEYS[dist])})")
        params.append(_num(f"{key}.{p}", j[p], 0))
    extra = [p for p in j if p != "distribution" and p not in JITTER_KEYS[dist]]
    if extra:
        raise UserError(f"{key}.{extra[0]}: not a parameter of a {dist} jitter ({', '.join(JITTER_KEYS[dist])})")
    if dist == "uniform" and params[1] < params[0]:
        raise UserError(f"{key}.high_ms: {params[1]:g} is below low_ms {params[0]:g}")
    return Jitter(dist, *params)


def _error_control(key: str, value) -> ErrorControl:
    """One strategy: {name: none}, {arq: {max_retries, timeout_ms}}, {fec: {k, m}} or both."""
    e = _mapping(key, value, ("name", "label", "arq", "fec"))
    name = e.get("name")
    if name is not None:
        _str(f"{key}.name", name, ("none", "arq", "fec", "fec+arq"))
    arq = fec = None
    if e.get("arq") is not None or name in ("arq", "fec+arq"):
        a = _mapping(f"{key}.arq", e.get("arq") or {}, ("max_retries", "timeout_ms"))
        arq = Arq(max_retries=_int(f"{key}.arq.max_retries", a.get("max_retries", 2), 1, 100),
                  timeout_ms=_num(f"{key}.arq.timeout_ms", a.get("timeout_ms", 10.0), 0))
    if e.get("fec") is not None or name in ("fec", "fec+arq"):
        f = _mapping(f"{key}.fec", e.get("fec") or {}, ("k", "m"))
        k = _int(f"{key}.fec.k", f.get("k", 8), 1, 255)
        fec = Fec(k=k, m=_int(f"{key}.fec.m", f.get("m", 2), 1, 256 - k))
    if name == "none" and (arq or fec):
        raise UserError(f"{key}.name: 'none' cannot have arq or fec settings")
    parts = ([f"fec({fec.k},{fec.m})"] if fec else []) + ([f"arq({arq.max_retries})"] if arq else [])
    label = _str(f"{key}.label", e["label"]) if "label" in e else ("+".join(parts) or "none")
    return ErrorControl(label, arq, fec)


def _grid_list(key: str, value, item) -> list:
    """A grid key: one value, or a list of values (each validated, no repeats)."""
    values = [item(f"{key}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [item(key, value)]
    if not values:
        raise UserError(f"{key}: must not be an empty list")
    dup = [v for i, v in enumerate(values) if v in values[:i]]
    if dup:
        raise UserError(f"{key}: {getattr(dup[0], 'label', dup[0])!r} is listed twice")
    return values


def _expand_grid(values: dict[str, list], zipped) -> tuple[Config, ...]:
    """The product of the grid keys' lists, except that the keys in each ``zip`` group
    advance together (their lists must have equal lengths)."""
    groups: list[list[str]] = []
    if zipped is not None:
        zipped = _list("zip", zipped, lambda k, v: (k, v), allow_scalar=False)
        used: set[str] = set()
        for key, group in zipped:
            if not isinstance(group, list) or len(group) < 2:
                raise UserError(f"{key}: expected a list of at least two grid keys, got {group!r}")
            for name in group:
                if name not in GRID_KEYS:
                    raise UserError(f"{key}: {name!r} is not a grid key (one of {', '.join(GRID_KEYS)})")
                if name in used:
                    raise UserError(f"{key}: {name!r} appears in more than one zip group")
                used.add(name)
            lengths = {name: len(values[name]) for name in group}
            if len(set(lengths.values())) > 1:
                raise UserError(f"{key}: zipped lists differ in length ("
                                + ", ".join(f"{n} has {n_}" for n, n_ in lengths.items()) + ")")
            groups.append(list(group))
        groups += [[name] for name in GRID_KEYS if name not in used]
    else:
        groups = [[name] for name in GRID_KEYS]
    # Each group is one axis; the product runs over axes in GRID_KEYS order of their first key.
    groups.sort(key=lambda g: min(list(GRID_KEYS).index(n) for n in g))
    points = [{}]
    for group in groups:
        n = len(values[group[0]])
        points = [{**p, **{GRID_KEYS[name]: values[name][i] for name in group}} for p in points for i in range(n)]
    return tuple(Config(**p) for p in points)


def _parse_channels(value) -> tuple[ChannelCell, ...]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise UserError(f"channels: expected a non-empty list of channel settings, got {_type_name(value)}")
    cells: list[ChannelCell] = []
    for i, ch in enumerate(value):
        key = f"channels[{i}]"
        if isinstance(ch, dict) and ch.get("kind") == "trace":
            ch = _mapping(key, ch, ("kind", "file", "trial_offset"))
            if "file" not in ch:
                raise UserError(f"{key}.file: required for kind 'trace' (one 0/1 per packet: .npy, .csv or .txt)")
            path = _existing_path(f"{key}.file", ch["file"], "file")
            offset = ch.get("trial_offset")
            offset = None if offset is None else _int(f"{key}.trial_offset", offset, 0)
            try:
                trace = Trace.from_file(path, offset)
            except TraceError as exc:
                raise UserError(f"{key}.file: {exc}") from None
            cells.append(ChannelCell("trace", trace.loss_rate, trace.mean_burst_length, trace))
            continue
        ch = _mapping(key, ch, ("kind", "loss_rates", "burst_lengths", "zip"))
        if "kind" not in ch:
            raise UserError(f"{key}.kind: required key is missing (one of {', '.join(CHANNEL_KINDS)})")
        kind = _str(f"{key}.kind", ch["kind"], CHANNEL_KINDS)
        if "loss_rates" not in ch:
            raise UserError(f"{key}.loss_rates: required key is missing")
        losses = _list(f"{key}.loss_rates", ch["loss_rates"], lambda k, v: _num(k, v, 0, 1))
        if kind == "iid":
            if "zip" in ch:
                raise UserError(f"{key}.zip: kind 'iid' has only loss_rates, nothing to zip")
            if "burst_lengths" in ch:
                raise UserError(
                    f"{key}.burst_lengths: not used by kind 'iid' (its mean burst is 1/(1-loss)); "
                    "use kind 'gilbert-elliott' for bursty loss"
                )
            for loss in losses:
                ch_obj = Bernoulli(loss)
                cells.append(ChannelCell(kind, loss, ch_obj.mean_burst_length, ch_obj))
        else:
            if "burst_lengths" not in ch:
                raise UserError(f"{key}.burst_lengths: required for kind 'gilbert-elliott'")
            bursts = _list(f"{key}.burst_lengths", ch["burst_lengths"], lambda k, v: _num(k, v, 1))
            if _bool(f"{key}.zip", ch.get("zip", False)):
                if len(losses) != len(bursts):
                    raise UserError(f"{key}.zip: loss_rates has {len(losses)} values and burst_lengths "
                                    f"{len(bursts)}; zipped lists must have equal lengths")
                pairs = [(j, j) for j in range(len(losses))]
            else:
                pairs = [(j, b) for j in range(len(losses)) for b in range(len(bursts))]
            for j, b in pairs:
                loss, burst = losses[j], bursts[b]
                try:
                    ch_obj = GilbertElliott.from_loss_burst(loss, burst)
                except ChannelParameterError as exc:
                    raise UserError(f"{key}: loss_rates[{j}]={loss:g}, burst_lengths[{b}]={burst:g}: {exc}") from None
                cells.append(ChannelCell(kind, loss, burst, ch_obj))
    seen = set()
    for c in cells:
        if c.key in seen:
            what = repr(c.channel) if c.kind == "trace" else f"{c.kind} loss {c.loss_rate:g} burst {c.burst_length:g}"
            raise UserError(f"channels: setting {what} appears twice")
        seen.add(c.key)
    return tuple(cells)


def _parse_methods(value) -> tuple[MethodSpec, ...]:
    """Method entries; a parameter given as a list expands into one method per value
    (the product over list parameters, or element-wise with ``zip: true``)."""
    items = _list("methods", value, lambda k, v: (k, v))
    specs: list[MethodSpec] = []
    for key, item in items:
        if isinstance(item, str):
            name, params, label, zipped = item, {}, None, False
        elif isinstance(item, dict):
            if "name" not in item:
                raise UserError(f"{key}.name: required key is missing (one of {', '.join(available_methods())})")
            name = _str(f"{key}.name", item["name"])
            params = {k: v for k, v in item.items() if k not in ("name", "label", "zip")}
            label = _str(f"{key}.label", item["label"]) if "label" in item else None
            zipped = _bool(f"{key}.zip", item.get("zip", False))
        else:
            raise UserError(f"{key}: expected a method name or a mapping with 'name', got {_type_name(item)}")
        if name not in available_methods():
            raise UserError(f"{key}: unknown completion method {name!r} (available: {', '.join(available_methods())})")
        for lp in method_class(name).layout_params:
            if lp in params:
                raise UserError(f"{key}.{lp}: set by packets.{lp} for every method, not per method")
        for variant, varying in _method_variants(key, params, zipped):
            try:
                make(name, **variant)  # validates the parameters
            except UserError as exc:
                raise UserError(f"{key} ({exc})") from None
            full = {k: v for k, v in {**method_parameters(name), **variant}.items()
                    if k not in method_class(name).layout_params}
            shown = variant if label is None else varying
            base = name if label is None else label
            text = base if not shown else base + "(" + ",".join(f"{k}={v}" for k, v in shown.items()) + ")"
            specs.append(MethodSpec(name, full, text))
    labels = [s.label for s in specs]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise UserError(f"methods: {', '.join(sorted(dup))} listed twice (give each a distinct 'label')")
    return tuple(specs)


def _method_variants(key: str, params: dict, zipped: bool) -> list[tuple[dict, dict]]:
    """(parameters, the list-valued ones' values) for every variant of one method entry."""
    lists = {k: v for k, v in params.items() if isinstance(v, list)}
    for k, v in lists.items():
        if not v:
            raise UserError(f"{key}.{k}: must not be an empty list")
    if not lists:
        if zipped:
            raise UserError(f"{key}.zip: no parameter is a list, nothing to zip")
        return [(params, {})]
    if zipped:
        lengths = {k: len(v) for k, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise UserError(f"{key}.zip: zipped lists differ in length ("
                            + ", ".join(f"{k} has {n}" for k, n in lengths.items()) + ")")
        combos = [dict(zip(lists, vs, strict=True)) for vs in zip(*lists.values(), strict=True)]
    else:
        combos = [dict(zip(lists, vs, strict=True)) for vs in itertools.product(*lists.values())]
    return [({**params, **c}, c) for c in combos]
