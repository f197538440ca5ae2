"""A griffe extension (mkdocstrings' ``extensions:`` in mkdocs.yml) that lets dfsim's
reST-flavoured docstrings read well as Markdown in the API reference.

* A Sphinx role (``:class:`~dfsim.errors.UserError```, ``:func:`decode```, ``:mod:``,
  ``:meth:``, ``:data:``, ``:attr:``, ...) becomes a cross-reference to the object's
  entry in the API reference when the name resolves, as Python would from where the
  docstring is (its class, then its module, or a full dotted path), to a public object
  the reference shows (one with a docstring, in a public module); otherwise it becomes
  the name in code. ``~`` shows only the last part of the name, as in Sphinx.
* A paragraph ending in reST's ``::`` (a literal block follows) ends in ``:``.

Nothing else is changed: the docstrings' ````code```` spans, emphasis and indented blocks
are already Markdown.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?([a-z]+):`(~?)([^`<]+?)`")
_LITERAL = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
_BARE_LITERAL = re.compile(r"^[ \t]*::[ \t]*$\n?", re.MULTILINE)


def _public(path: str) -> bool:
    return not any(part.startswith("_") for part in path.split("."))


def _shown(obj) -> bool:
    """Whether the API reference renders ``obj``: public, in a public module of the
    package, documented (a class or module with any docstring inside counts), and inside
    objects it renders too."""
    if not _public(obj.path):
        return False
    while obj is not None and not obj.is_module:
        if not (obj.docstring or (obj.is_class and obj.has_docstrings)):
            return False
        obj = obj.parent
    return obj is not None


def _target(name: str, scope, package, module: bool = False) -> str | None:
    """The API-reference path of the object ``name`` names from ``scope`` (its own
    members, then each enclosing class and module's; a leading ``.`` as in Sphinx), or
    None when the reference does not show it (``module``: only a module will do, for
    ``:mod:``). A name a public module re-exports from a
    private one (``dfsim.testing.check_codec``) is shown there, under that name."""
    name = name.lstrip(".")
    first, _, rest = name.partition(".")
    if first == package.name:
        scopes, parts = [package], rest.split(".") if rest else []
    else:
        scopes, parts = [], name.split(".")
        s = scope
        while s is not None:
            if s.is_class or s.is_module:
                scopes.append(s)
            s = s.parent
    for start in scopes:
        obj, path = start, start.path
        try:
            for part in parts:
                obj = obj.members[part]
                path = f"{path}.{part}" if obj.is_alias and obj.is_exported else obj.path
                if obj.is_alias:
                    obj = obj.final_target
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        if module and not obj.is_module:
            continue
        if _shown(obj):
            return obj.path
        if path != obj.path and _public(path) and obj.docstring:
            return path  # re-exported by a public module: shown there
        return None
    return None


def convert(text: str, scope, package) -> str:
    """``text`` with its roles as cross-references or code and ``::`` as ``:``."""

    def role(m):
        kind, tilde, name = m.groups()
        name = name.strip()
        label = name.rsplit(".", 1)[-1] if tilde else name
        path = _target(name.removesuffix("()"), scope, package, module=kind == "mod")
        if path is not None:
            return f"[`{label}`][{path}]"
        return f"`{label}`"

    text = _ROLE.sub(role, text)
    text = _BARE_LITERAL.sub("", text)
    return _LITERAL.sub(r"\1:", text)


class SphinxRoles(griffe.Extension):
    """Rewrite the docstrings of the loaded package once it is complete."""

    def on_package(self, *, pkg, **kwargs) -> None:
        stack = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj, pkg)
            stack.extend(m for m in obj.members.values() if not m.is_alias)
