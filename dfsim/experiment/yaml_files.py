"""YAML read within limits: at most :data:`~dfsim.limits.MAX_SCENARIO_BYTES` from a file,
nested at most :data:`~dfsim.limits.MAX_YAML_DEPTH` deep, at most
:data:`~dfsim.limits.MAX_YAML_NODES` nodes once aliases are expanded, no duplicate keys;
every failure a one-line :class:`~dfsim.errors.UserError` naming the file (or the text's
label) and, where it has one, the line and column."""

from __future__ import annotations

from pathlib import Path

import yaml

from dfsim.errors import UserError
from dfsim.limits import MAX_SCENARIO_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES


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
    return parse_yaml(text, str(path), what)


def parse_yaml(text: str, label: str = "scenario YAML", what: str = "scenario"):
    """YAML text's document, within the limits :func:`read_yaml` sets; anything else is a
    one-line error that begins with ``label``."""
    path = label
    if len(text) > MAX_SCENARIO_BYTES or len(text.encode("utf-8")) > MAX_SCENARIO_BYTES:
        raise UserError(
            f"{label}: {what} text is larger than {MAX_SCENARIO_BYTES // 1024} KiB "
            f"({len(text.encode('utf-8')):,} bytes)"
        )
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
