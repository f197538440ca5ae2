"""One registry for every pluggable component, by kind, and the generic parameter checks.

A component is registered by name with a decorator (as in CompressAI's registry)::

    @register("completion", "my-method")
    class MyMethod(CompletionMethod):
        def __init__(self, strength: Annotated[float, Range(0, 1)] = 0.5): ...

Its **parameters are declared by its signature**: each keyword parameter's annotation
gives its type (``int``, ``float``, ``str``, ``bool``, ``list[float]``, ``tuple[int, int,
int]``, ``Literal["a", "b"]``, ``X | None``), an ``Annotated[..., Range(lo, hi)]`` its
range, ``Annotated[str, FILE]`` / ``DIR`` an existing path, and the default its default
(no default: required). Scenario validation is derived from these declarations, so a new
component gets the same one-line errors as the built-in ones, naming the YAML path::

    channels[1].burst_lengths[0]: 0.5 is out of range (must be >= 1)

Kinds, in the order data flows: ``model``, ``dataset``, ``codec``, ``channel``,
``jitter``, ``error_control``, ``completion``, ``task``.
"""

from __future__ import annotations

import difflib
import inspect
import math
import reprlib
import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from dfsim.errors import UserError

KINDS = {
    "model": "model",
    "dataset": "dataset",
    "codec": "codec",
    "channel": "channel",
    "jitter": "jitter",
    "error_control": "error-control strategy",
    "completion": "completion method",
    "task": "task",
}
REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric parameter (``None``: unbounded on that side)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, v: float) -> bool:
        if math.isnan(v) or math.isinf(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def text(self, integer: bool) -> str:
        def num(v):
            return str(int(v)) if isinstance(v, int) or float(v).is_integer() else f"{v:g}"

        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {num(self.hi)}"
        if lo and hi and not (self.lo_open or self.hi_open):
            span = f"[{num(self.lo)}, {num(self.hi)}]"
            return span if integer else f"in {span}"
        return " and ".join(p for p in (lo, hi) if p)


@dataclass(frozen=True)
class PathKind:
    """Marks a string parameter as a path that must exist: ``FILE`` or ``DIR``."""

    kind: str


FILE, DIR = PathKind("file"), PathKind("dir")


def import_object(spec: str, key: str, what: str = "function"):
    """``package.module:name`` (``name`` may be dotted) -> the object, or a one-line
    :class:`UserError` naming the scenario ``key`` (``what``: the word in the expected form)."""
    import importlib

    if ":" not in spec:
        raise UserError(f"{key}: {spec!r} must look like 'package.module:{what}'")
    mod_name, attr = spec.split(":", 1)
    try:
        obj = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - ImportError or an error in the user's module
        raise UserError(
            f"{key}: cannot import {mod_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UserError(f"{key}: {mod_name!r} has no attribute {attr!r}")
    return obj


def type_name(v) -> str:
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }
    return names.get(type(v), type(v).__name__)


@dataclass(frozen=True)
class Param:
    """One declared parameter: its type, default, range and path kind."""

    name: str
    type: Any
    default: Any = REQUIRED
    range: Range | None = None
    path: PathKind | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def nullable(self) -> bool:
        return _is_optional(self.type)

    @property
    def is_sequence(self) -> bool:
        """A list- or tuple-valued parameter: a YAML list is its value, not a grid."""
        return get_origin(_strip_optional(self.type)) in (list, tuple)

    def check(self, value, where: str):
        """The validated (and converted) value, or a :class:`UserError` naming ``where``."""
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise UserError(f"{where}: expected {_expected(self.type)}, got null")
        return _check_type(_strip_optional(self.type), value, where, self)


def _is_optional(tp) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def _strip_optional(tp):
    if _is_optional(tp):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
    return tp


def _expected(tp) -> str:
    tp = _strip_optional(tp)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if origin in (list, tuple):
        return "a list"
    return {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a non-empty string",
        dict: "a mapping",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _check_type(tp, value, where: str, p: Param):
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):  # e.g. int | Literal["fill"]: the first that fits
        errors = []
        for arg in get_args(tp):
            try:
                return _check_type(arg, value, where, p)
            except UserError as exc:
                errors.append(str(exc))
        specific = [e for e in errors if ": expected " not in e and " is not one of " not in e]
        if specific:  # the value has the right type but not the right value (a range)
            raise UserError(specific[0])
        raise UserError(f"{where}: expected {_expected(tp)}, got {type_name(value)} {shown(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices or isinstance(value, bool):
            raise UserError(f"{where}: {shown(value)} is not one of {', '.join(map(str, choices))}")
        return value
    if origin in (list, tuple):
        return _check_sequence(tp, origin, value, where, p)
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(
                f"{where}: expected true or false, got {type_name(value)} {shown(value)}"
            )
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: expected an integer, got {type_name(value)} {shown(value)}")
        if p.range and not p.range.contains(value):
            raise UserError(f"{where}: {value} is out of range (must be {p.range.text(True)})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {type_name(value)} {shown(value)}")
        if not (p.range or Range()).contains(float(value)):
            raise UserError(
                f"{where}: {value!r} is out of range (must be "
                f"{(p.range or Range()).text(False) or 'finite'})"
            )
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise UserError(
                f"{where}: expected a non-empty string, got {type_name(value)} {shown(value)}"
            )
        return _check_path(value, where, p.path) if p.path else value
    if tp is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {type_name(value)}")
        return value
    if is_dataclass(tp):
        return parse_dataclass(tp, value, where)
    return value  # Any: passed through


def _check_sequence(tp, origin, value, where: str, p: Param):
    if not isinstance(value, list):
        raise UserError(f"{where}: expected a list, got {type_name(value)}")
    args = get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
        raise UserError(f"{where}: expected a list of {len(args)} values, got {len(value)}")
    if not value:
        raise UserError(f"{where}: must not be empty")
    item = args[0] if args else Any
    item_param = Param(p.name, item, range=p.range, path=p.path)
    # a tuple, so that components and configs holding it stay hashable
    return tuple(_check_type(item, v, f"{where}[{i}]", item_param) for i, v in enumerate(value))


def _check_path(value: str, where: str, kind: PathKind) -> str:
    """An existing path; a relative ``dfsim/...`` path that is not found from the working
    directory names a file shipped inside the package (the committed weights a built-in
    scenario names, when dfsim runs installed, away from its checkout)."""
    path = Path(value).expanduser()
    if not path.is_absolute() and path.parts[:1] == ("dfsim",) and not path.exists():
        shipped = Path(__file__).resolve().parent.parent / path
        path = shipped if shipped.exists() else path
    if not (path.is_dir() if kind.kind == "dir" else path.is_file()):
        raise UserError(f"{where}: {kind.kind} {value!r} not found")
    return str(path)


# --------------------------------------------------------------------------- declarations
def _hints(obj) -> dict:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations: treat them as Any
        return {}


def _param_from(name: str, annotation, default) -> Param:
    rng = path = None
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        for e in extras:
            rng = e if isinstance(e, Range) else rng
            path = e if isinstance(e, PathKind) else path
        annotation = base
    if _is_optional(annotation):  # Optional[Annotated[...]]
        inner = _strip_optional(annotation)
        if get_origin(inner) is Annotated:
            inner_p = _param_from(name, inner, default)
            return Param(name, inner_p.type | None, default, inner_p.range, inner_p.path)
    return Param(name, annotation, default, rng, path)


def declared_params(obj) -> dict[str, Param]:
    """The keyword parameters of a class's constructor or a function, as :class:`Param`."""
    hints = _hints(obj)
    sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    out = {}
    for p in sig.parameters.values():
        if p.name == "self" or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        out[p.name] = _param_from(p.name, hints.get(p.name, Any), p.default)
    return out


def dataclass_params(cls) -> dict[str, Param]:
    """The fields of a dataclass, declared like constructor parameters."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = {}
    for f in fields(cls):
        if not f.init:
            continue
        default = (
            f.default
            if f.default is not MISSING
            else (f.default_factory() if f.default_factory is not MISSING else REQUIRED)
        )
        out[f.name] = _param_from(f.name, hints[f.name], default)
    return out


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 80, 80, 6, 4


def shown(value) -> str:
    """``repr(value)`` cut short for messages (a value may be a huge list or string)."""
    return _SHORT.repr(value)


def key_text(key) -> str:
    """A user's mapping key as messages show it: as written when it is a short plain name,
    else quoted, escaped and cut short (a key holding a line break, a number, a list)."""
    plain = isinstance(key, str) and key.isprintable() and key == key.strip() and key != ""
    return key if plain and len(key) <= 80 else shown(key)


def did_you_mean(given, allowed) -> str:
    """``"; did you mean 'NAME'?"`` when one of ``allowed`` is close to ``given`` (a
    misspelling), else ``""``: the end of an unknown-name message."""
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given, [a for a in allowed if isinstance(a, str)], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(raw, where: str, allowed, what: str | None = None) -> dict:
    """``raw`` must be a mapping whose keys are all in ``allowed``."""
    if not isinstance(raw, dict):
        raise UserError(f"{where or 'scenario'}: expected a mapping, got {type_name(raw)}")
    for k in raw:
        if k not in allowed:
            key = f"{where}.{key_text(k)}" if where else key_text(k)
            hint = did_you_mean(k, allowed)
            if what:
                listed = ", ".join(allowed) or "none"
                raise UserError(
                    f"{key}: not a parameter of {what} (its parameters: {listed}){hint}"
                )
            raise UserError(f"{key}: unknown key (allowed here: {', '.join(allowed)}){hint}")
    return raw


def check_params(
    params: dict[str, Param], raw: dict, where: str, what: str | None = None, grid: bool = False
) -> dict:
    """Validate ``raw`` against ``params``: unknown keys, missing required ones, types and
    ranges; defaults filled in. ``what`` names the component (None: a scenario section).
    With ``grid``, a scalar parameter given as a list is a list of values (each checked at
    ``key[i]``, no repeats), and every value is returned as a list."""
    check_keys(raw, where, list(params), what)
    out = {}
    for name, p in params.items():
        key = f"{where}.{name}" if where else name
        if name not in raw:
            if p.required:
                raise UserError(f"{key}: required for {what or where}")
            out[name] = [p.default] if grid else p.default
        elif grid and isinstance(raw[name], list) and not p.is_sequence:
            out[name] = grid_values(key, raw[name], p.check)
        else:
            value = p.check(raw[name], key)
            out[name] = [value] if grid else value
    return out


def grid_values(key: str, values: list, check) -> list:
    """A list given for a scalar: each value checked, none empty or repeated."""
    if not values:
        raise UserError(f"{key}: must not be an empty list")
    out = [check(v, f"{key}[{i}]") for i, v in enumerate(values)]
    seen = set()
    for i, v in enumerate(out):
        try:
            repeated = v in seen  # linear in the list's length, not quadratic
            seen.add(v)
        except TypeError:  # unhashable
            repeated = v in out[:i]
        if repeated:
            raise UserError(f"{key}: {shown(getattr(v, 'label', v))} is listed twice")
    return out


def parse_dataclass(cls, raw, where: str):
    """A dataclass instance from a mapping, every field checked against its annotation."""
    raw = {} if raw is None else raw
    values = check_params(dataclass_params(cls), raw, where, f"{where or cls.__name__}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Entry:
    """A registered component: its kind, name, factory and declared parameters."""

    kind: str
    name: str
    factory: Any
    params: dict

    @property
    def what(self) -> str:
        return f"the {self.name} {KINDS[self.kind]}"

    def build(self, where: str = "", **params):
        """The component, with ``params`` (already validated) passed to its factory; a
        ``ValueError`` from the factory becomes a one-line :class:`UserError`."""
        try:
            return self.factory(**params)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where or self.kind}: {exc}") from None


_REGISTRY: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}


def register(kind: str, name: str):
    """Decorator: make a class or factory function available to scenarios as ``name``."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r} (one of {', '.join(KINDS)})")

    def deco(obj):
        if name in _REGISTRY[kind]:
            raise ValueError(f"{KINDS[kind]} {name!r} registered twice")
        _REGISTRY[kind][name] = Entry(kind, name, obj, declared_params(obj))
        if inspect.isclass(obj):
            obj.name = name
        return obj

    return deco


def unregister(kind: str, name: str) -> None:
    """Remove a registration (tests that register toy components clean up with it)."""
    _REGISTRY[kind].pop(name, None)


def names(kind: str) -> list[str]:
    """Registered names of ``kind``, in registration order."""
    _load_builtins()
    return list(_REGISTRY[kind])


def entry(kind: str, name, where: str = "") -> Entry:
    """The registered component, or a one-line error listing what is available."""
    _load_builtins()
    if not isinstance(name, str) or name not in _REGISTRY[kind]:
        listed = ", ".join(_REGISTRY[kind])
        hint = did_you_mean(name, _REGISTRY[kind])
        raise UserError(f"{where or kind}: unknown {KINDS[kind]} {name!r} (one of {listed}){hint}")
    return _REGISTRY[kind][name]


def build(kind: str, name: str, where: str = "", **raw):
    """Validate ``raw`` parameters against the declaration and build the component."""
    e = entry(kind, name, where)
    params = check_params(e.params, raw, where, e.what)
    return e.build(where, **params)


_BUILTINS = (
    "dfsim.models",
    "dfsim.data.datasets",
    "dfsim.data.coco",
    "dfsim.data.scenes",
    "dfsim.codecs",
    "dfsim.transport.channels",
    "dfsim.transport.network",
    "dfsim.transport.error_control",
    "dfsim.completion",
    "dfsim.tasks",
)
_loaded = False


def _load_builtins() -> None:
    """Import the modules that register dfsim's own components (once)."""
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib

        for module in _BUILTINS:
            importlib.import_module(module)
