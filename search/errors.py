"""The error type for problems a user can fix: the CLI prints its message as one line and exits 2."""
from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input (files, options, storage) rather than a bug."""
