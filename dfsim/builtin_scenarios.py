"""The built-in scenarios: the YAML files of the repository's ``scenarios/`` folder, shipped
inside the package as ``dfsim/scenarios/`` (package data; in a checkout ``dfsim/scenarios``
is a committed symlink to ``../scenarios``, so an editable install reads the same files).

A built-in is named by its path under that folder without ``.yaml``: ``default``,
``deadline``, ``paper/classifier``. :func:`resolve` is the one place where a scenario
argument becomes a file: a file that exists always wins, then a built-in name, else a
one-line "scenario file not found" error that lists the built-ins.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dfsim.errors import UserError
from dfsim.registry import did_you_mean

SUFFIX = ".yaml"
DESCRIPTION_CHARS = 100  # a longer first sentence is cut at a word


def _folder():
    return resources.files("dfsim").joinpath("scenarios")


def names() -> list[str]:
    """Every built-in scenario's name, sorted: the top folder's first, then ``paper/...``."""
    found = []

    def walk(folder, prefix):
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(SUFFIX):
                found.append(prefix + entry.name[: -len(SUFFIX)])

    root = _folder()
    if root.is_dir():
        walk(root, "")
    return sorted(found, key=lambda n: (n.count("/"), n))


def path(name: str) -> Path:
    """The file of built-in ``name`` (an unknown name: :class:`UserError`). dfsim is
    installed as files (its model weights are read the same way), so this is a real path."""
    if name not in names():
        raise UserError(f"{name}: not a built-in scenario{_listing(name)}")
    return Path(str(_folder().joinpath(*f"{name}{SUFFIX}".split("/"))))


def text(name: str) -> str:
    """Built-in ``name``'s YAML, verbatim."""
    return path(name).read_text(encoding="utf-8")


def description(name: str) -> str:
    """One line about built-in ``name``: the first sentence of its leading comment (cut at
    :data:`DESCRIPTION_CHARS`), else its ``name:``."""
    lines = text(name).splitlines()
    comment = []
    for line in lines:
        if not line.strip().startswith("#"):
            break
        comment.append(line.strip().lstrip("#").strip())
    sentence = " ".join(c for c in comment if c)
    if not sentence:
        named = [x.split(":", 1)[1].strip() for x in lines if x.startswith("name:")]
        return named[0] if named else ""
    sentence = sentence[: _first_sentence_end(sentence)]
    sentence = sentence.rstrip(":")
    if len(sentence) > DESCRIPTION_CHARS:
        sentence = sentence[:DESCRIPTION_CHARS].rsplit(" ", 1)[0].rstrip(",;:(") + " ..."
    return sentence


def _first_sentence_end(text: str) -> int:
    """Where the first sentence of ``text`` ends: after a ``.``, ``?`` or ``!`` that a space
    and a capital follow (not ``Fig. 4`` or ``i.i.d. loss``), or before a ``:`` and a space,
    outside parentheses."""
    depth = 0
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        rest = text[i + 1 : i + 3]
        if depth == 0 and c in ".?!" and len(rest) == 2 and rest[0] == " " and rest[1].isupper():
            return i + 1
        if depth == 0 and c == ":" and rest[:1] == " ":
            return i
    return len(text)


def resolve(given: str | Path) -> tuple[Path, str | None]:
    """The scenario file that ``given`` names, and the built-in's name when it is one:
    ``(given, None)`` for a file that exists, ``(its file, given)`` for a built-in name,
    else one line naming ``given`` and the built-ins (with a did-you-mean)."""
    p = Path(given)
    if p.is_file():
        return p, None
    if isinstance(given, str) and given in names():
        return path(given), given
    raise UserError(f"{given}: scenario file not found{_listing(str(given))}")


def _listing(given: str) -> str:
    """``" (built-in scenarios: a, b, ...); did you mean 'a'?"``: the end of an unknown-name
    message."""
    known = names()
    if not known:
        return ""
    return f" (built-in scenarios: {', '.join(known)}){did_you_mean(given, known)}"
