"""Scenario files: YAML -> validated :class:`~dfsim.experiment.specs.Scenario`.

The only place that reads user configuration. It is generic: every component (model,
dataset, codec, channel, jitter, error control, completion method, task) declares its
parameters where it is registered (:mod:`dfsim.registry`), the network its parameters on
the transport's dataclasses (:mod:`dfsim.transport.settings`), and the checks here derive
from those declarations. Every mistake becomes a :class:`~dfsim.errors.UserError` whose
one-line message names the file and the YAML path (``channels[1].burst_lengths[0]:
...``). See ``scenarios/default.yaml`` for a commented example and the scenario reference
(docs/reference/scenario.md on the documentation site, generated from the registry) for
every key.

Here: reading the file within limits (:func:`read_yaml`, from
:mod:`dfsim.experiment.yaml_files`), plug-ins
(:func:`load_plugins`) and each section (:func:`parse_scenario`). What a scenario is:
:mod:`dfsim.experiment.specs`; how its lists expand into configs, channel settings and
method variants: :mod:`dfsim.experiment.grids`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from dfsim import devices
from dfsim.errors import UserError
from dfsim.experiment.grids import (
    channel_settings,
    config_points,
    method_variants,
    stream_codec,
    string_value,
)
from dfsim.experiment.multi_task import TaskList, check_distinct
from dfsim.experiment.specs import (
    DEFAULT_BATCH_SIZE,
    ChannelSetting,
    Component,
    Config,
    DataSpec,
    MethodSpec,
    ModelSpec,
    Scenario,
    stream_component,
)
from dfsim.experiment.yaml_files import parse_yaml, read_yaml
from dfsim.limits import MAX_CONFIGS, MAX_UNITS
from dfsim.registry import (
    DIR,
    Range,
    check_keys,
    check_params,
    dataclass_params,
    declared_params,
    entry,
    names,
    type_name,
)
from dfsim.transport.error_control import ErrorControl, parse_strategy
from dfsim.transport.packets import Packetization
from dfsim.transport.settings import NetworkSettings, NonNegative, Positive, SideInfo

# The names importers know from here; the classes live in specs (and the network's in the
# transport), the grid expansion in grids.
__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SECTIONS",
    "ChannelSetting",
    "Component",
    "Config",
    "DataSpec",
    "ErrorControl",
    "MethodSpec",
    "ModelSpec",
    "NetworkSpec",
    "NonNegative",
    "Packetization",
    "Positive",
    "Scenario",
    "ScenarioErrors",
    "SideInfoSpec",
    "load_plugins",
    "load_scenario",
    "parse_scenario",
    "parse_strategy",
    "parse_yaml",
    "read_yaml",
]

NetworkSpec = NetworkSettings  # deprecated: the network section is NetworkSettings now
SideInfoSpec = SideInfo  # deprecated: the side_info section is the transport's SideInfo


# --------------------------------------------------------------------------- loading
def load_scenario(
    path: str | Path, max_configs: int = MAX_CONFIGS, max_units: int = MAX_UNITS
) -> Scenario:
    """Read and validate a scenario file or built-in name (a file wins); a grid of more than
    ``max_configs`` configs or ``max_units`` work units is refused before it is built."""
    from dfsim.builtin_scenarios import resolve

    file, builtin = resolve(path)
    raw, path = read_yaml(file), f"{builtin} (built-in)" if builtin else path
    try:
        return parse_scenario(
            raw,
            default_name=Path(builtin or file).stem,
            source=str(path),
            max_configs=max_configs,
            max_units=max_units,
        )
    except UserError as exc:
        raise ScenarioErrors(
            f"{path}: {e}" for e in getattr(exc, "errors", None) or (str(exc),)
        ) from None


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


class ScenarioErrors(UserError):
    """Every mistake found in a scenario: the message is one per line (a single mistake's
    message is just that one), :attr:`errors` the messages; the CLI prints one
    ``dfsim: error:`` line for each."""

    SHOWN = 20  # at most this many messages, then how many more

    def __init__(self, errors):
        errors = list(errors)
        if len(errors) > self.SHOWN + 1:
            errors[self.SHOWN :] = [f"... and {len(errors) - self.SHOWN} more errors"]
        self.errors = tuple(errors)
        super().__init__("\n".join(self.errors))


class _Collected:
    """The :class:`UserError` messages of a scenario's independent sections, each section
    checked whatever the others hold."""

    def __init__(self):
        self.errors: list[str] = []

    def check(self, fn, *args, failed=None):
        """``fn(*args)``, or ``failed`` after recording its error."""
        try:
            return fn(*args)
        except UserError as exc:
            self.errors.extend(getattr(exc, "errors", None) or (str(exc),))
            return failed

    def raise_any(self) -> None:
        if self.errors:
            raise ScenarioErrors(self.errors)


_FAILED = object()  # a section whose check recorded an error


def parse_scenario(
    raw: Any,
    default_name: str = "scenario",
    source: str = "",
    max_configs: int = MAX_CONFIGS,
    max_units: int = MAX_UNITS,
) -> Scenario:
    """Validate a scenario given as parsed YAML. The numbers of configs, channel settings
    and methods are counted from the lists before any is built: a grid of more than
    ``max_configs`` configs or ``max_units`` work units is a one-line error.

    The independent parts (top-level keys, model, data, task, the grid of encoding, packets
    and error control, network, channels, methods) are each checked, and every mistake
    found is reported at once (:class:`ScenarioErrors`, in the order of the checks: the
    first is the one a check stopping at the first mistake would report). Plug-ins register
    components, so a plug-in that cannot be loaded ends the checks there."""
    if raw is None:
        raise UserError("scenario is empty")
    found = _Collected()
    top, bad = _top_level(raw, found)
    name = top["name"] if "name" in raw else default_name
    model = found.check(_model, raw.get("model", {}), failed=_FAILED)
    codecs: dict[tuple, Component] = {}  # each distinct codec checked once
    configs = found.check(
        lambda: tuple(dict.fromkeys(_config(p, codecs) for p in config_points(raw, max_configs))),
        failed=_FAILED,
    )
    # With the configs or the trials in error, the work units are counted for one of each:
    # fewer than the scenario's, so a grid over the limit is still refused before it is built.
    n_configs = 1 if configs is _FAILED else len(configs)
    trials = 1 if "trials" in bad else top["trials"]
    cells = methods = _FAILED
    if "channels" in raw:
        cells = found.check(
            channel_settings, raw["channels"], n_configs, trials, max_units, failed=_FAILED
        )
    if "methods" in raw:
        methods = found.check(method_variants, raw["methods"], failed=_FAILED)
    reference = None
    if methods is not _FAILED and "reference_method" not in bad:
        reference = _reference(top["reference_method"], methods, found)
    data = found.check(_data, raw.get("data", {}))
    task = found.check(_task, raw.get("task", "classification"))
    network = found.check(_network, raw.get("network", {}))
    device = None
    if "device" not in bad:
        device = found.check(devices.check, top["device"], "device")
    found.raise_any()
    return Scenario(
        name=name,
        seed=top["seed"],
        model=model,
        data=data,
        task=task,
        network=network,
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
        device=device,
    )


def _top_level(raw, found: _Collected) -> tuple[dict, set]:
    """The top level's scalars (defaults filled in) and the names of those in error; each
    unknown key and each missing required section noted in ``found``; then the plug-ins
    loaded, since they register the components the sections name (a plug-in that cannot
    be loaded, or ``plugins`` itself in error, ends the checks)."""
    scalars = dataclass_params(_TopLevel)
    allowed = [*scalars, *SECTIONS]
    if not isinstance(raw, dict):
        check_keys(raw, "", allowed)  # says it is not a mapping
    for k in raw:  # each unknown key
        if k not in allowed:
            found.check(check_keys, {k: raw[k]}, "", allowed)
    for required in ("channels", "methods"):
        if required not in raw:
            found.errors.append(f"{required}: required key is missing")
    top = {name: p.default for name, p in scalars.items()}
    bad = set()
    for name, p in scalars.items():  # each scalar on its own
        if name in raw:
            top[name] = found.check(p.check, raw[name], name, failed=_FAILED)
            if top[name] is _FAILED:
                bad.add(name)
    if "plugins" in bad:  # which components exist is unknown
        found.raise_any()
    try:
        load_plugins(top["plugins"] or ())
    except UserError as exc:
        found.errors.append(str(exc))
        found.raise_any()
    return top, bad


def _reference(given: str | None, methods, found: _Collected) -> str:
    """The method the others are tested against: ``given``, else ``zeros`` if the scenario
    has it, else its first method; one that is not a method of the scenario is noted."""
    labels = [m.label for m in methods]
    reference = given or ("zeros" if "zeros" in labels else labels[0])
    if reference not in labels:
        found.errors.append(
            f"reference_method: {reference!r} is not one of the scenario's methods "
            f"({', '.join(labels)})"
        )
    return reference


# --------------------------------------------------------------------------- sections
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
    if extra:  # the section's own keys are allowed too: list them, and suggest among them
        check_keys(raw, where, [key, *extra, *e.params])
    params = check_params(e.params, rest, where, e.what)
    e.build(where, **params)  # cross-parameter checks now, not in the middle of a run
    return Component(kind, name, tuple(params.items()))


def _task(raw):
    """The ``task`` section: one task (a name or a mapping), or a list of them, all scoring
    the same received features (:mod:`dfsim.experiment.multi_task`); a list of one is that
    task."""
    if not isinstance(raw, list):
        return _component("task", raw, "task")
    if not raw:
        raise UserError("task: an empty list: name one task or more")
    parts = [_component("task", r, f"task[{i}]") for i, r in enumerate(raw)]
    check_distinct([c.name for c in parts])
    return parts[0] if len(parts) == 1 else TaskList(tuple(parts))


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
    path = string_value("model.import", raw["import"])
    try:
        params = import_parameters(**params)
    except ValueError as exc:
        raise UserError(f"model.{exc}") from None
    return ModelSpec(path, path, tuple(params.items()))


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


def _network(raw) -> NetworkSettings:
    """The ``network`` section, read straight into the transport's dataclasses: each key
    checked against the field that declares it (:class:`NetworkSettings`), in the keys'
    order, so that the first mistake is the one reported."""
    raw = {} if raw is None else raw
    check_keys(raw, "network", list(NetworkSettings.KEYS))
    values: dict[str, Any] = {}
    if raw.get("jitter") is not None:
        jitter = _component("jitter", raw["jitter"], "network.jitter", key="distribution")
        values["jitter"] = jitter.build()
    for key in NetworkSettings.KEYS:
        if key in raw and key not in ("jitter", "side_info"):
            values[key] = NetworkSettings.param(key).check(raw[key], f"network.{key}")
    if raw.get("side_info") is not None:
        declared = dataclass_params(SideInfo)
        side_keys = {k: declared[k] for k in NetworkSettings.SIDE_INFO_KEYS}
        where = "network.side_info"
        values["side_info"] = SideInfo(**check_params(side_keys, raw["side_info"], where, where))
    # Checks across keys, before the transport's dataclasses are made (they would refuse
    # the first one too, without naming the scenario's keys).
    default = NetworkSettings()
    keys = ("arrivals", "fps", "header_bytes", "mtu_bytes")
    given = {k: values.get(k, getattr(default, k)) for k in keys}
    if given["arrivals"] == "poisson" and given["fps"] is None:
        raise UserError(
            "network.arrivals: 'poisson' needs network.fps (the arrival rate per device)"
        )
    if given["header_bytes"] >= given["mtu_bytes"]:
        raise UserError(
            f"network.header_bytes: {given['header_bytes']} leaves no payload in "
            f"network.mtu_bytes {given['mtu_bytes']}"
        )
    try:
        return NetworkSettings.from_keys(**values)
    except ValueError as exc:  # a key's value in its field's unit out of range (1e308 Mbit/s)
        raise UserError(f"network: {exc}") from None


# --------------------------------------------------------------------------- configs
def _config(point: dict, codecs: dict) -> Config:
    """The config of one grid point (:func:`~dfsim.experiment.grids.config_points`), its
    codec built once to check its parameters together; ``codecs``: the codec components
    checked so far."""
    codec = point["encoding.codec"]
    declared = entry("codec", codec).params
    params = tuple((k, point.get(f"encoding.{k}", p.default)) for k, p in declared.items())
    streams: dict[int, dict] = {}  # encoding.streams.<index>.<parameter>, of its codec's
    for key, value in point.items():
        if key.startswith("encoding.streams."):
            index, k = key.split(".")[2:]
            own = streams.setdefault(int(index), {})
            mine = stream_codec(point, int(index))
            if k == "codec" or k in (entry("codec", mine).params if mine else declared):
                own[k] = value
    checks = [("encoding", codec, params)]
    for i, own in streams.items():
        if own:
            name, kw = stream_component(codec, params, tuple(own.items()))
            checks.append((f"encoding.streams.{i}", name, kw))
    for where, name, kw in checks:  # each stream's codec built too: its parameters together
        if (name, kw) not in codecs:
            try:
                entry("codec", name).build(where, **dict(kw))
            except UserError as exc:
                raise UserError(f"{exc} (codec {name})") from None
            codecs[name, kw] = Component("codec", name, kw)
    return Config(
        point["model.split"],
        codecs[codec, params],
        Packetization(point["packets.rows_per_packet"], point["packets.order"]),
        point["error_control"],
        tuple((i, tuple(own.items())) for i, own in sorted(streams.items())),
    )
