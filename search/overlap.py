"""Keras-free work done in a forked process while this one imports Keras, the slowest part of a study's start."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from search.errors import UserError
from search.signals import ending

T = TypeVar("T")


def can_fork() -> bool:
    """Whether forking here is safe and worth it: Keras not imported yet (its import is what the child's work
    hides) and no other thread running (a fork copies only the calling thread; a lock another thread held stays
    held in the child forever)."""
    return hasattr(os, "fork") and "keras" not in sys.modules and threading.active_count() == 1


@contextlib.contextmanager
def in_forked_process(work: Callable[[], T], doing: str) -> Iterator[Callable[[], T]]:
    """Start `work` in a forked process; the block gets a function that waits for its result (re-raising the
    error it raised, e.g. a DataError; a process that died, e.g. killed for memory, is a UserError that says
    what it was `doing`). Where forking is unsafe or pointless (`can_fork`), that function runs `work` itself.
    Leaving the block ends the process, finished or not (an error or Ctrl-C in this one)."""
    if not can_fork():
        yield work
        return
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_send_result, args=(work, sender), name="hpsearch-overlap", daemon=True)
    process.start()  # multiprocessing flushes stdout and stderr first, so nothing buffered is printed twice
    sender.close()

    def result() -> T:
        """Wait for the forked process's result."""
        try:
            status, value = receiver.recv()
        except EOFError:  # it died: a traceback of this process would say nothing of why
            process.join()
            code = process.exitcode or 0
            memory = ", out of memory?" if code == -signal.SIGKILL else ""
            raise UserError(f"the process {doing} ended before it finished ({ending(code)}{memory}); run the same "
                            "command again") from None
        if status == "error":
            raise value
        return value

    try:
        yield result
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()


def _send_result(work: Callable[[], Any], sender: Connection) -> None:
    """The forked process: run work and send ("ok", result) or ("error", exception) to the parent."""
    try:
        message: tuple[str, Any] = ("ok", work())
    except BaseException as exc:  # noqa: BLE001 - Ctrl-C too: the parent decides what happens next
        message = ("error", exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}"))
    with contextlib.suppress(BrokenPipeError):  # the parent is gone (stopped): nobody to tell
        sender.send(message)


def _picklable(value: object) -> bool:
    """Whether value survives the trip through the pipe."""
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:  # noqa: BLE001 - any failure means "send something simpler"
        return False
    return True
