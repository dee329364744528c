"""The error type for problems a user can fix: the CLI prints its message as one line and exits 2."""
from __future__ import annotations

from collections.abc import Iterator


class UserError(ValueError):
    """A problem with the user's input (files, options, storage) rather than a bug."""


class DataError(UserError):
    """A data file or folder that cannot be used; the message names the file, row and column."""


class NoStudies(UserError):
    """A storage with nothing in it yet (no file, or no Optuna tables), opened by a command that only reads."""


class SubsetOutOfRange(DataError):
    """--subset outside 1 to the size of the data's training split."""


def require_positive(*options: tuple[str, int | None]) -> None:
    """Reject counts below 1, naming the option: e.g. ("--trials", 0) -> "--trials must be at least 1"."""
    for option, value in options:
        if value is not None and value <= 0:
            raise UserError(f"{option} must be at least 1, got {value}")


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and every exception behind it, through both links (`raise X from Y` keeps the one it handled as
    context too), each once: a library may raise another error while it handles the one that matters."""
    chain, seen = [exc], set()
    while chain:
        link = chain.pop()
        if id(link) not in seen:  # a chain may be cyclic
            seen.add(id(link))
            yield link
            chain += [e for e in (link.__cause__, link.__context__) if e is not None]
