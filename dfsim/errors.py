"""Errors that are the user's to fix (bad scenario, missing file).

The CLI prints them as one line and exits non-zero; anything else is a bug and keeps
its traceback.
"""

import unicodedata


class UserError(Exception):
    """A mistake in user input: the message names the key, value or file at fault."""


def one_line(text: str) -> str:
    """``text`` with every line break and other control character escaped as Python
    writes it in a string literal (``\\n``, ``\\x1b``, ``\\u2028``): whatever a key or
    value holds, a message stays on one line and cannot drive the terminal."""
    return "".join(
        repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text
    )
