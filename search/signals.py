"""How hpsearch's long commands take signals: SIGTERM as Ctrl-C (so what they leave is cleaned up or recorded),
and neither while a step must not be cut in two."""
from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from search.errors import exception_chain

# The interrupts received within sigterm_as_interrupt's outermost block: Python drops an exception raised in a
# garbage collector's callback ("Exception ignored in ..."), so a Ctrl-C that landed in Keras' clear_session was lost
# and the study trained on; TensorFlow may turn one into another error (pybind11's "error_already_set: MISMATCH").
_received: list[int] = []
_depth = 0  # how many sigterm_as_interrupt blocks this thread is in (a command's, and its study's or worker's)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT or SIGTERM: noted, then raised as Ctrl-C is."""
    _received.append(signum)
    raise KeyboardInterrupt


def interrupt_received() -> bool:
    """Whether Ctrl-C or SIGTERM came within the current sigterm_as_interrupt block, raised or swallowed since."""
    return bool(_received)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt where an interrupt came and something swallowed it: between epochs and trials."""
    if _received:
        raise KeyboardInterrupt


def interrupted(exc: BaseException) -> bool:
    """Whether exc is Ctrl-C (or a worker's SIGTERM), or an error raised while a library was handling one, or any
    error after one came (interrupt_received: TensorFlow may turn it into pybind11's "error_already_set: MISMATCH").

    Optuna's journal lock turns an interrupt that lands in its release into FileNotFoundError; the study's
    catch=(Exception,) would then fail the trial and go on to the next one instead of stopping."""
    return any(isinstance(link, KeyboardInterrupt) for link in exception_chain(exc)) or interrupt_received()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM stops the process the way Ctrl-C does (a trial is recorded as interrupted, a
    half-written folder removed), and both are noted (interrupt_received), in case a library swallows one. A SIGINT
    inherited as ignored (a background job of a script) stays ignored. Blocks nest: the outermost one's notes last
    until it ends, and no longer (a test runs many commands in one process)."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [signal.SIGTERM, *([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])]
    previous = {sig: signal.signal(sig, _interrupt) for sig in taken}
    previous_hook, sys.unraisablehook = sys.unraisablehook, functools.partial(_unraisable, sys.unraisablehook)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth:
            _received.clear()
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ending(code: int) -> str:
    """How a child process ended, from its exit code: killed by a signal, interrupted, or an error."""
    if code < 0:
        with contextlib.suppress(ValueError):  # e.g. a real-time signal, which the enum lacks
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    if code == 130:  # Ctrl-C or SIGTERM, taken as an interrupt: its trial is recorded as interrupted
        return "interrupted"
    return f"exit code {code}: an error, see the output above"


def _unraisable(hook: Callable[[Any], object], unraisable: Any) -> None:
    """Python's report of an error it had to drop ("Exception ignored in ...", a traceback), except for a noted
    interrupt: it is acted on (raise_if_interrupted), and its traceback told a user nothing."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        hook(unraisable)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are ignored: a step that must not be cut in two (the parent stopping
    its workers, files moved into place or removed)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
