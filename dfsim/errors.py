"""Errors that are the user's to fix (bad scenario, missing file), and notes.

The CLI prints errors as one line and exits non-zero; anything else is a bug and keeps
its traceback. A note (:func:`note`) is one line that a run goes on after: damaged state
recomputed, a fit that could not beat doing nothing, kernels that could not be pinned.
"""

import contextlib
import sys
import unicodedata


class UserError(Exception):
    """A mistake in user input: the message names the key, value or file at fault."""


def one_line(text: str) -> str:
    """``text`` with every line break and other control character escaped as Python
    writes it in a string literal (``\\n``, ``\\x1b``, ``\\u2028``): whatever a key or
    value holds, a message stays on one line and cannot drive the terminal."""
    return "".join(
        repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text
    )


_said: set[str] | None = None  # the notes said in the run under way (None: no run)
_silent = False


def note(text: str) -> None:
    """Print ``text`` on stderr as one ``dfsim: note:`` line: once per run (the same note
    from several configs or fits is said once, see :func:`notes_once`), and not at all in
    worker processes (:func:`silence_notes`), whose main process prepares the same configs
    and says it."""
    line = one_line(text)
    if _silent or (_said is not None and line in _said):
        return
    if _said is not None:
        _said.add(line)
    print(f"dfsim: note: {line}", file=sys.stderr)


@contextlib.contextmanager
def notes_once():
    """Within this block (a run), each distinct note is printed once."""
    global _said
    outer, _said = _said, set()
    try:
        yield
    finally:
        _said = outer


def silence_notes() -> None:
    """This process is a worker: its notes are its main process's to say."""
    global _silent
    _silent = True
