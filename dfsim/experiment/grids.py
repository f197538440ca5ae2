"""Grid expansion: the lists a scenario gives where a parameter takes one value, counted
and checked before anything is built, then expanded into combinations.

* **configs** (:func:`config_points`): the *config* sections (``model.split``,
  ``encoding``, its per-tensor ``encoding.streams``, ``packets``, ``error_control``) may
  give a list for a parameter; the run covers the product of those lists, or, with
  ``zip``, advances listed keys together. A codec is crossed only with the parameters it
  reads. Each combination becomes a :class:`~dfsim.experiment.specs.Config`
  (:func:`dfsim.experiment.scenario.parse_scenario` makes it);
* **channel settings** (:func:`channel_settings`): a ``channels`` entry's parameters
  given as lists under their plural (``loss_rates``) sweep settings;
* **method variants** (:func:`method_variants`): a method parameter given as a list makes
  one method per value.

One rule for all three: the combinations are the product of the *axes* (each zip group,
and each other listed key alone, :func:`_axes`), and their number is known from the
lists' lengths before any is made, so that a grid too large is refused at once.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterator

from dfsim.errors import UserError
from dfsim.experiment.specs import ChannelSetting, MethodSpec
from dfsim.limits import MAX_CONFIGS, MAX_METHODS, MAX_UNITS
from dfsim.registry import (
    Param,
    check_keys,
    check_params,
    dataclass_params,
    did_you_mean,
    entry,
    grid_values,
    key_text,
    names,
    shown,
    type_name,
)
from dfsim.transport.error_control import parse_strategy
from dfsim.transport.packets import Packetization


def string_value(where: str, value) -> str:
    """``value`` checked to be a non-empty string (a one-line error naming ``where``)."""
    return Param(where, str).check(value, where)


# --------------------------------------------------------------------------- configs
def config_points(raw, max_configs: int = MAX_CONFIGS) -> Iterator[dict]:
    """The grid's distinct combinations, each a mapping of grid key (``model.split``,
    ``encoding.<parameter>``, ``encoding.streams.<index>.<parameter>``,
    ``packets.<parameter>``, ``error_control``) to its value, in
    the order of the product of the lists; their number is checked against
    ``max_configs`` before any is made."""
    dims = _dimensions(raw)
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
    picks = _config_picks(distinct, axes)
    return ({k: dims[k][i] for k, i in p.items()} for p in picks)


def _dimensions(raw) -> dict[str, list]:
    """Every grid key with its values (one, or the list given), checked, in declaration
    order."""
    model = raw.get("model", {})
    splits = model.get("split") if isinstance(model, dict) else None
    dims: dict[str, list] = {"model.split": _grid("model.split", splits, _optional_string)}
    enc = raw.get("encoding", {})
    check_keys(enc, "encoding", ["codec", "streams", *_codec_keys()])
    codecs = _grid(
        "encoding.codec", enc.get("codec", "raw"), lambda v, k: entry("codec", v, k).name
    )
    dims["encoding.codec"] = codecs
    # A parameter given once applies to every codec of the grid that declares it; the
    # others keep their own defaults (set when the config is made).
    given = {k: v for k, v in enc.items() if k not in ("codec", "streams")}
    defaults: dict[str, set] = {}
    for k, vs in _codec_params(given, codecs, "encoding", defaults).items():
        dims[f"encoding.{k}"] = vs
    for k, reprs in defaults.items():  # a default all the grid's codecs share is a grid key
        if f"encoding.{k}" not in dims and len(reprs) == 1:
            p = next(entry("codec", c).params[k] for c in codecs if k in entry("codec", c).params)
            dims[f"encoding.{k}"] = [p.default]
    for i, overrides in _stream_overrides(enc.get("streams"), codecs).items():
        dims.update({f"encoding.streams.{i}.{k}": vs for k, vs in overrides.items()})
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
    return dims


def _codec_params(given: dict, codecs: list[str], where: str, defaults=None) -> dict[str, list]:
    """The codec parameters ``given`` at ``where`` (each one value or a list), checked
    against every codec of the grid that declares them; ``defaults`` collects the reprs of
    the default values of the parameters not given, per parameter."""
    for k in given:
        if not any(k in entry("codec", c).params for c in codecs):
            raise UserError(
                f"{where}.{key_text(k)}: not a parameter of codec {', '.join(codecs)} "
                f"(parameters: {', '.join(_codec_keys(codecs)) or 'none'})"
                + did_you_mean(k, _codec_keys(codecs))
            )
    out: dict[str, list] = {}
    for codec in codecs:
        e = entry("codec", codec)
        mine = {k: v for k, v in given.items() if k in e.params}
        try:
            checked = check_params(e.params, mine, where, e.what, grid=True)
        except UserError as exc:
            raise UserError(f"{exc} (codec {codec})" if len(codecs) > 1 else str(exc)) from None
        for k, vs in checked.items():
            if k in mine:
                out.setdefault(k, vs)
            elif defaults is not None:
                defaults.setdefault(k, set()).add(repr(vs))
    return out


def _stream_overrides(streams, codecs: list[str]) -> dict[int, dict[str, list]]:
    """``encoding.streams``: per tensor of the cut (by index, from 0), codec parameters
    that replace the shared ones for that tensor, each one value or a list (a grid key
    ``encoding.streams.<index>.<parameter>``), checked. Whether the cut has the tensor is
    checked where the model is built (:func:`dfsim.experiment.encoding.check_streams`)."""
    if streams is None:
        return {}
    if not isinstance(streams, dict) or not streams:
        raise UserError(
            "encoding.streams: expected a mapping of tensor index (0, 1, ...) to codec "
            f"parameters, got {type_name(streams)} {shown(streams)}"
        )
    out: dict[int, dict[str, list]] = {}
    for key, overrides in streams.items():
        index = int(key) if isinstance(key, str) and key.isdigit() else key
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise UserError(
                f"encoding.streams.{key_text(key)}: not a stream: streams are the tensors "
                "crossing the cut, by index (0, 1, ...)"
            )
        where = f"encoding.streams.{index}"
        if index in out:
            raise UserError(f"{where}: given twice")
        if not isinstance(overrides, dict) or not overrides:
            raise UserError(
                f"{where}: expected a mapping of codec parameters "
                f"({', '.join(_codec_keys(codecs)) or 'none'}), got {shown(overrides)}"
            )
        own = [codec for codec in [overrides.get("codec")] if codec is not None]
        if own:  # a codec of its own: one name (not a list), its parameters checked on it
            if not isinstance(own[0], str):
                raise UserError(
                    f"{where}.codec: expected one codec name (a stream's codec is not a grid "
                    f"key), got {shown(own[0])}"
                )
            own = [entry("codec", own[0], f"{where}.codec").name]
        rest = {k: v for k, v in overrides.items() if k != "codec"}
        out[index] = ({"codec": own} if own else {}) | _codec_params(rest, own or codecs, where)
    return dict(sorted(out.items()))


def stream_codec(dims_or_point: dict, index: int) -> str | None:
    """The codec of tensor ``index`` where ``encoding.streams.<index>.codec`` gives it one
    (a grid's dimensions hold a list of one name; a grid point the name); else None."""
    value = dims_or_point.get(f"encoding.streams.{index}.codec")
    return value[0] if isinstance(value, list) else value


def stream_key_param(key: str) -> str:
    """The codec parameter of an ``encoding.`` grid key (``encoding.bits``,
    ``encoding.streams.1.bits``: ``bits``)."""
    return key.rsplit(".", 1)[-1]


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
            keys = [k for k in axis if _reads(k, declared, dims)]
            at = [c] if "encoding.codec" in axis else range(len(dims[axis[0]]))
            first: dict[tuple, int] = {}
            for i in at:
                first.setdefault(tuple(dims[k][i] for k in keys), i)
            per_axis.append(list(first.values()))
        out.append(per_axis)
    return out


def _reads(key: str, declared, dims: dict) -> bool:
    """Whether a config of a codec declaring ``declared`` reads grid key ``key``: every
    key but other codecs' parameters; a stream with a codec of its own reads that codec's."""
    if not key.startswith("encoding.") or key == "encoding.codec":
        return True
    if key.startswith("encoding.streams."):
        index, param = key.split(".")[2:]
        own = stream_codec(dims, int(index))
        if own is not None:
            return param == "codec" or param in entry("codec", own).params
    return stream_key_param(key) in declared


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
    return None if value is None else string_value(where, value)


def _grid(key: str, value, check) -> list:
    """A grid key: one value, or a list of values (each checked, no repeats)."""
    return grid_values(key, value, check) if isinstance(value, list) else [check(value, key)]


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


# --------------------------------------------------------------------------- channel settings
def channel_settings(
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
    plans = [_channel_entry(item, f"channels[{i}]") for i, item in enumerate(value)]
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


def _channel_entry(raw, where: str):
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
                + did_you_mean(k, accepted)
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


# --------------------------------------------------------------------------- method variants
def method_variants(value) -> tuple[MethodSpec, ...]:
    """Method entries; a parameter given as a list expands into one method per value
    (the product over list parameters, or element-wise with ``zip: true``)."""
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise UserError("methods: must not be empty")
    plans = [_method_entry(item, f"methods[{i}]") for i, item in enumerate(value)]
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


def _method_entry(item, where: str):
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
    label = string_value(f"{where}.label", item["label"]) if "label" in item else None
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
