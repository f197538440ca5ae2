"""Errors that are the user's to fix (bad scenario, missing file).

The CLI prints them as one line and exits non-zero; anything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    """A mistake in user input: the message names the key, value or file at fault."""
