"""The one way hpsearch writes to the terminal: results on stdout; status, progress (a line per finished trial,
a live line per epoch) and errors on stderr."""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, TextIO

if TYPE_CHECKING:  # Optuna is imported by the commands that run trials; the console itself is light
    import optuna
    from optuna.trial import FrozenTrial


def format_params(params: dict) -> str:
    """Params as short key=value pairs for one terminal line."""
    def short(value: object) -> str:
        """One value: a float to 3 significant digits, anything else as it prints."""
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return " ".join(f"{key}={short(value)}" for key, value in params.items())


def counted(number: int, noun: str, plural: str = "") -> str:
    """"1 trial", "2 trials", "0 trials": a count and its noun (`plural` where it is not noun + "s")."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def listed(items: Sequence[object], limit: int, total: int | None = None) -> str:
    """The first `limit` items, comma-separated, and "and N more" for the rest of `total` (default: all items)."""
    rest = (len(items) if total is None else total) - min(len(items), limit)
    return ", ".join(map(str, items[:limit])) + (f" and {rest} more" if rest > 0 else "")


def emit(stream: TextIO | None, text: str) -> None:
    """Write and flush text; once the reader of a pipe has gone (`hpsearch study ... | head`), send that stream to
    /dev/null and carry on: the search goes on and saves every trial (a BrokenPipeError failed the trial being
    trained, and the study stopped)."""
    if stream is None:  # closed (`hpsearch trials >&-`): there is no one to tell
        return
    if Console.secrets:
        from search.masking import masked_as_typed

        for url in Console.secrets:
            text = masked_as_typed(text, url)
    try:
        stream.write(text)
        stream.flush()
    except OSError as exc:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # what is still buffered goes there too, also at exit
        os.close(devnull)
        if not isinstance(exc, BrokenPipeError) and stream is sys.stdout:  # a result lost (`> /dev/full`): say so
            emit(sys.stderr, f"error: cannot write the output: {exc.strerror}\n")
            raise SystemExit(2) from None


class Console:
    """Writes results to stdout, and status and progress to stderr unless quiet; in a worker, each stderr line
    starts with [wN]."""

    # This process's worker number where a study runs in several (set once, by the worker command): every line
    # written here carries it, also those of code that makes its own Console (a storage's heartbeat warning, a
    # journal's repair note), which showed without it, so that no one could tell which worker had said them.
    worker: ClassVar[int | None] = None
    # The command-line arguments of this process that hold a password (set once, by the command group): masked in
    # every line, also where such a URL was typed in place of a file (its path was quoted, password and all).
    secrets: ClassVar[tuple[str, ...]] = ()

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        worker = Console.worker
        self.prefix = f"[w{worker}] " if worker is not None else ""
        self.live = sys.stderr is not None and sys.stderr.isatty() and worker is None  # None: closed (2>&-)

    def _write(self, text: str, transient: bool = False) -> None:
        """Write a line; on a terminal an epoch line is overwritten by the next one."""
        if self.quiet:
            return
        if self.live:
            emit(sys.stderr, "\r\033[K" + self.prefix + text + ("" if transient else "\n"))
        else:
            emit(sys.stderr, self.prefix + text + "\n")

    def result(self, text: str) -> None:
        """A command's result on stdout (also under --quiet: it is what the command is for)."""
        emit(sys.stdout, text + "\n")

    def say(self, text: str) -> None:
        """A status line on stderr unless quiet."""
        self._write(text)

    def warn(self, text: str) -> None:
        """A warning or an error on stderr, shown also under --quiet."""
        emit(sys.stderr, self.prefix + text + "\n")

    def epoch(self, number: int | None, row: dict, epochs: int) -> None:
        """Live line after each epoch of a running trial."""
        label = f"trial {number}" if number is not None else "training"
        val = f" val_acc {row['val_accuracy']:.4f}" if "val_accuracy" in row else ""
        self._write(f"  {label} epoch {row['epoch']}/{epochs} loss {row.get('loss', float('nan')):.4f}"
                    f"{val} {row['seconds']:.1f}s", transient=True)

    def trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """One line per finished trial: number, state, value, seconds, params."""
        value = f"{trial.values[0]:.4f}" if trial.values else "-"  # accuracy, also of an accuracy-time study
        from search.records import TrialRecord
        from spaces.param_names import model_params

        record = TrialRecord.of(trial)
        seconds = record.train_seconds
        # An accuracy-time trial's second value, the seconds its front compares (search.pareto.steady_seconds).
        steady = f" (steady {trial.values[1]:.1f}s)" if len(trial.values or []) > 1 else ""
        reason = f" ({record.fail_reason})" if record.fail_reason else ""
        model = f"{record.seed_model} " if record.seed_model else ""  # a notebook model (replay, seed models)
        self._write(f"trial {trial.number:>3} {trial.state.name:<8} val_acc {value} {seconds:6.1f}s{steady} "
                    f"{model}{format_params(model_params(trial.params))}{reason}")
