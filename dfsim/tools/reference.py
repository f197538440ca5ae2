"""The scenario reference: every key a scenario file accepts, as one Markdown page.

The documentation site's ``reference/scenario.md`` is made by :func:`scenario_reference`
each time the site is built, from the same declarations the scenario loader checks a file
against: the registry (:mod:`dfsim.registry`: every kind, every registered component and
its declared parameters with their types, ranges and defaults) and the loader's own
sections (:mod:`dfsim.experiment.scenario`), so the page cannot drift from the code. The
defaults of the sections are those of the smallest valid scenario, read back from the
loader. A component's one-line description is the first sentence of its docstring.

The few words written here (what each section and kind is for) are keyed by section and
kind: a section or kind added to the loader or the registry without them is an error at
the next build, not a silent gap.

``python -m dfsim.tools.reference`` prints the page.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
from typing import Literal, Union, get_args, get_origin

from dfsim import registry
from dfsim.registry import KINDS, Param

# The smallest valid scenario: its resolved form gives the defaults of every section.
_SMALLEST = {"channels": [{"kind": "iid", "loss_rate": 0.0}], "methods": ["zeros"]}

# What each section of a scenario is for, and the user guide page that explains it
# (relative to reference/scenario.md).
_SECTIONS = {
    "model": ("The split model: a registered model or your own, and where to cut it.",
              "../guide/models-and-data.md"),
    "data": ("The images: a registered dataset, how many, and images to fit ALTeC on.",
             "../guide/models-and-data.md"),
    "task": ("What the cloud's outputs are for, and how they are scored.",
             "../guide/tasks.md"),
    "encoding": ("How the edge quantizes and encodes the feature tensor.",
                 "../guide/codecs.md"),
    "packets": ("How each encoded tensor is cut into row packets.",
                "../guide/network.md#packets"),
    "network": ("The network model the packets cross: link, queue, devices, deadline.",
                "../guide/network.md"),
    "error_control": ("Protection against packet loss: none, ARQ, FEC or both.",
                      "../guide/error-control.md"),
    "channels": ("The loss channels: one setting per loss rate (and burst length).",
                 "../guide/network.md"),
    "methods": ("The completion methods the cloud repairs lost rows with.",
                "../guide/completion.md"),
    "zip": ("Grid keys whose lists advance together instead of multiplying.",
            "../guide/scenarios.md"),
}  # fmt: skip

# Where a scenario names a component of each kind.
_KIND_KEYS = {
    "model": "`model.name`",
    "dataset": "`data.dataset`",
    "codec": "`encoding.codec`",
    "channel": "`channels[].kind`",
    "jitter": "`network.jitter.distribution`",
    "error_control": "`error_control.name`, or as a key of an `error_control` mapping",
    "completion": "`methods[].name`",
    "task": "`task`, or `task.name`",
}
_KIND_TITLES = {"jitter": "Jitter distributions"}

# Defaults the table cannot show as a value: they depend on other keys.
_TOP_NOTES = {
    "name": "the file's name without `.yaml`",
    "output": "`results/<name>`",
    "reference_method": "`zeros` if it is a method, else the first method",
}

# The grid keys of the config sections (each may be a list; see ``zip``).
_GRID_NOTE = (
    "Each key of this section may be given a list of values: the run covers the product "
    "of such lists (a grid of configs; see `zip`)."
)


# --------------------------------------------------------------------------- text
def _plain(text: str) -> str:
    """reST-ish docstring text as Markdown: double-backquoted literals and Sphinx roles
    as code (a role's name marked with a tilde as its last dotted part, as Sphinx shows
    it)."""

    def role(m):
        return f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`"

    text = re.sub(r":[a-z]+:`(~?)([^`]*)`", role, text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def summary(obj) -> str:
    """The first sentence of ``obj``'s docstring, as Markdown on one line ("" if none)."""
    doc = inspect.getdoc(obj) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    if not first:
        return ""
    m = re.search(r"[.!?](?=\s+[A-Z`(])", first)
    return _plain(first[: m.end()] if m else first)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(value) -> str:
    return f"`{value}`"


def default_text(value) -> str:
    """A default as it is written in YAML."""
    if value is registry.REQUIRED:
        return "required"
    return _code(_yaml(value))


def _yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value if value and re.fullmatch(r"[\w./+<>-]+", value) else json.dumps(value)
    return repr(value)


_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string", dict: "mapping"}


def type_text(tp, path: registry.PathKind | None = None, plural: bool = False) -> str:
    """A parameter's type in words, as the YAML value is written."""
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        rest = [type_text(a, path, plural) for a in args if a is not type(None)]
        return " or ".join(rest + (["null"] if type(None) in args else []))
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(_code(_yaml(v)) for v in get_args(tp))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        item = type_text(args[0], path, plural=True) if args else "values"
        fixed = origin is tuple and args and get_args(tp)[-1] is not Ellipsis
        return f"list of {len(args)} {item}" if fixed else f"list of {item}"
    if tp is str and path is not None:
        text = f"path of an existing {'directory' if path.kind == 'dir' else 'file'}"
        return text.replace("path", "paths", 1) if plural else text
    if dataclasses.is_dataclass(tp):
        return "mapping (below)"
    name = _NAMES.get(tp, "any value")
    return f"{name}s" if plural and tp in _NAMES else name


def range_text(p: Param) -> str:
    """The allowed interval of a numeric parameter ("" if unbounded)."""
    if p.range is None:
        return ""
    base = _strip_none(p.type)
    if get_origin(base) in (list, tuple):
        return "each " + p.range.text(_is_int(get_args(base)[0])).removeprefix("in ")
    return p.range.text(_is_int(base)).removeprefix("in ")


def _strip_none(tp):
    if get_origin(tp) in (Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
    return tp


def _is_int(tp) -> bool:
    if get_origin(tp) in (Union, types.UnionType):
        return any(_is_int(a) for a in get_args(tp))
    return tp is int


def param_table(params: dict[str, Param], keys: dict[str, str] | None = None,
                notes: dict[str, str] | None = None) -> str:  # fmt: skip
    """A Markdown table of declared parameters (``keys``: the YAML key shown for each,
    ``notes``: a default given in words instead of the declared value)."""
    if not params:
        return "No parameters.\n"
    rows = ["| Key | Type | Range | Default |", "|---|---|---|---|"]
    for name, p in params.items():
        key = (keys or {}).get(name, _code(name))
        default = (notes or {}).get(name) or default_text(p.default)
        cells = (key, type_text(p.type, p.path), range_text(p), default)
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- components
def kind_title(kind: str) -> str:
    """The heading of a kind's components: ``Completion methods``."""
    if kind in _KIND_TITLES:
        return _KIND_TITLES[kind]
    word = KINDS[kind]
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return plural[0].upper() + plural[1:]


def anchor(kind: str, name: str) -> str:
    """The page anchor of a registered component."""
    return re.sub(r"[^a-z0-9]+", "-", f"{kind}-{name}".lower()).strip("-")


def _link(kind: str, name: str) -> str:
    return f"[`{name}`](#{anchor(kind, name)})"


def _one_of(kind: str) -> str:
    return ", ".join(_link(kind, n) for n in registry.names(kind))


def _api_link(obj) -> str:
    """A cross-reference to ``obj`` on the API reference, when it is public dfsim code."""
    path = _qualified(obj)
    # the API reference shows the public objects of dfsim that have a docstring
    private = any(p.startswith("_") for p in path.split("."))
    if not path.startswith("dfsim.") or private or not getattr(obj, "__doc__", None):
        return _code(path)
    return f"[`{path}`][{path}]"


def components(kind: str, api_links: bool = True) -> str:
    """The section of one kind: each registered component, its description and parameters."""
    if kind not in _KIND_KEYS:
        raise KeyError(f"kind {kind!r} has no scenario key in dfsim.tools.reference")
    out = [
        f"## {kind_title(kind)}\n",
        f"Named in a scenario at {_KIND_KEYS[kind]}.\n",
    ]
    for name in registry.names(kind):
        e = registry.entry(kind, name)
        out.append(f"### `{name}` {{ #{anchor(kind, name)} }}\n")
        where = _api_link(e.factory) if api_links else _code(_qualified(e.factory))
        text = summary(e.factory)
        out.append(f"{text} ({where})\n" if text else f"{where}\n")
        keys = None
        if kind == "channel":  # each parameter also takes a list under its plural
            keys = {p: f"`{p}` or `{p}s` (a list: a sweep)" for p in e.params}
        out.append(param_table(e.params, keys))
    return "\n".join(out)


def _qualified(obj) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"


# --------------------------------------------------------------------------- sections
def _scenario():
    from dfsim.experiment import scenario

    return scenario


def _section(name: str, defaults: dict) -> str:
    """One fixed section of a scenario: what it is for and its keys."""
    sc = _scenario()
    text, guide = _SECTIONS[name]
    heading = f"### `{name}` {{ #section-{name.replace('_', '-')} }}\n"
    out = [heading, f"{text} ([Guide]({guide}))\n"]
    params = registry.dataclass_params
    if name == "model":
        from dfsim.models.sources import import_parameters

        out += [
            f"A built-in model: `name` (one of {_one_of('model')}; default "
            f"{_code(defaults['model']['name'])}) with that model's parameters, and "
            "`split`, the split point (default: the model's own; a list makes a grid). "
            "Or your own model: `import` (`package.module:factory`, a function returning "
            "a `torch.nn.Module`, or the module itself), `split`, and these keys:\n",
            param_table(registry.declared_params(import_parameters)),
        ]
    elif name == "data":
        out += [
            f"`dataset`: one of {_one_of('dataset')} (default "
            f"{_code(defaults['data']['dataset'])}), with that dataset's parameters, and:\n",
            param_table(params(sc._DataKeys)),
        ]
    elif name == "task":
        out.append(
            f"A task name, or a mapping with `name` and that task's parameters: one of "
            f"{_one_of('task')} (default {_code(defaults['task']['name'])}). "
            "Or a list of them (`task: [classification, reconstruction]`): every task "
            "scores the same received features, its metrics columns of the same rows "
            "([Several tasks at once](../guide/tasks.md#several-tasks-at-once)).\n"
        )
    elif name == "encoding":
        out += _encoding(defaults)
    elif name == "packets":
        out += [param_table(params(sc.Packetization)), _GRID_NOTE + "\n"]
    elif name == "network":
        out += _network()
    elif name == "error_control":
        strategies = registry.names("error_control")
        both = "+".join(reversed(strategies))
        out.append(
            f"A strategy's name (`none`, {', '.join(map(_code, strategies))} or "
            f"{_code(both)}, with default parameters), or a mapping with `name`, `label` "
            "(its name in results, made from the parameters if not given) and a mapping "
            f"of parameters under each strategy's own key ({_one_of('error_control')}). "
            "A list of strategies makes a grid (one config each). Default: "
            f"{_code(defaults['error_control'][0]['label'])}.\n"
        )
    elif name == "channels":
        out.append(
            "A list of channel settings (required). Each has `kind` (one of "
            f"{_one_of('channel')}) and that channel's parameters, each given once "
            "(`loss_rate`) or as a list under its plural (`loss_rates`): the entry makes "
            "the product of its lists, or with `zip: true` takes them element-wise.\n"
        )
    elif name == "methods":
        out.append(
            "A list (required) of method names, or mappings with `name` (one of "
            f"{_one_of('completion')}), `label` (its name in results) and the method's "
            "parameters. A parameter given as a list makes one method per value (the "
            "product of such lists, or element-wise with `zip: true`).\n"
        )
    elif name == "zip":
        out.append(
            "A list of groups, each a list of at least two grid keys (`model.split`, "
            "`encoding.codec`, `encoding.<parameter>`, `encoding.streams.<index>.<parameter>`, "
            "`packets.rows_per_packet`, "
            "`packets.order`, `error_control`) whose lists have one length: they advance "
            "together.\n"
        )
    return "\n".join(out)


def _encoding(defaults: dict) -> list[str]:
    """The ``encoding`` section's text: the shared codec, per-stream overrides, grids."""
    return [
        f"`codec`: one of {_one_of('codec')} (default "
        f"{_code(defaults['encoding']['codec'])}), and that codec's parameters. "
        "A parameter given once applies to every codec of a grid that declares it; "
        "the others keep their own defaults.\n",
        "`streams`: where several tensors cross the cut, codec parameters of some of "
        "them, by index (`streams: {1: {bits: [2, 4]}}`); the others use the shared ones "
        "([Per-stream encoding](../guide/codecs.md#per-stream-encoding)).\n",
        _GRID_NOTE + "\n",
    ]


def _network() -> list[str]:
    """The ``network`` section's keys, each checked against the transport field that
    declares it (:class:`dfsim.transport.settings.NetworkSettings`)."""
    from dfsim.transport.settings import NetworkSettings, SideInfo

    keys = [k for k in NetworkSettings.KEYS if k not in ("jitter", "side_info")]
    out = [param_table({k: NetworkSettings.param(k) for k in keys})]
    if "jitter" in NetworkSettings.KEYS:
        out.append(
            "`jitter`: an extra delay per packet, `null` (default) or a mapping with "
            f"`distribution` (one of {_one_of('jitter')}) and its parameters.\n"
        )
    if "side_info" in NetworkSettings.KEYS:
        declared = registry.dataclass_params(SideInfo)
        side = {k: declared[k] for k in NetworkSettings.SIDE_INFO_KEYS}
        out += ["`side_info`: where the codec's side information travels, a mapping:\n",
                param_table(side)]  # fmt: skip
    return out


def scenario_reference(api_links: bool = True) -> str:
    """The scenario reference page, as Markdown (``api_links``: name each component's
    code as a cross-reference into the API reference, which mkdocstrings resolves)."""
    sc = _scenario()
    missing = [s for s in sc.SECTIONS if s not in _SECTIONS]
    stale = [s for s in _SECTIONS if s not in sc.SECTIONS]
    if missing or stale:
        raise KeyError(
            f"dfsim.tools.reference: sections without a description {missing}, "
            f"described but not sections {stale}"
        )
    defaults = sc.parse_scenario(_SMALLEST).resolved()
    top = registry.dataclass_params(sc._TopLevel)
    stale = [k for k in _TOP_NOTES if k not in top]
    if stale:
        raise KeyError(f"dfsim.tools.reference: notes for keys that do not exist: {stale}")
    out = [
        "# Scenario reference\n",
        "Every key a scenario file accepts, with its type, range and default. This page is "
        "generated from the code (the registry's declarations and the scenario loader, by "
        "`dfsim.tools.reference`) each time the site is built. How to write a scenario: "
        "[Writing a scenario](../guide/scenarios.md).\n",
        "A component given by a plugin (`plugins:`) takes the parameters its own signature "
        "declares; [Extending dfsim](../extending.md) explains how.\n",
        "## Top-level keys { #top-level }\n",
        "The top level of a scenario holds these keys and the sections below; only "
        "`channels` and `methods` are required.\n",
        param_table(top, notes=_TOP_NOTES),
        "## Sections\n",
    ]
    out += [_section(s, defaults) for s in sc.SECTIONS]
    out += [components(kind, api_links) for kind in KINDS]
    return "\n".join(out)


if __name__ == "__main__":
    print(scenario_reference(api_links=False))
