"""The command line's shared pieces: option types used by several commands, the one-line error rule, the
options a rerun takes from its study, and the study export-best and confirm retrain from."""
from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup

import spaces
from search.console import Console, emit
from search.errors import UserError
from search.masking import redact, secret_arguments
from search.signals import interrupted as was_interrupted
from search.signals import sigterm_as_interrupt

if TYPE_CHECKING:
    import optuna

# study and replay: a rerun takes a resumed study's own folder (search.study.resumed_settings).
DataDir = Annotated[Optional[Path], typer.Option("--data", help="Folder with train.csv and testX.csv, or with "
                                                 "train/<class name>/*.png|jpg|... and test/*.png|jpg|... (see "
                                                 "README). Default: a resumed study's own folder where it exists "
                                                 "here, else data.", show_default=False)]
# export-best and confirm retrain on the study's data: by default the folder it was made with.
StudyDataDir = Annotated[Optional[Path], typer.Option("--data", help="Data folder (default: the one the study was "
                                                      "made with, where it exists here; else data).")]
ImageSize = Annotated[Optional[str], typer.Option("--image-size", help="HEIGHTxWIDTH every image of an image "
                                                  "folder is resized to (default: a resumed or retrained "
                                                  "study's, else the most common size).")]


def _password_typed(context: typer.Context, parameter: typer.CallbackParam, url: str) -> str:
    """--storage as given; where a password was typed in it on the command line, a note of where it belongs."""
    from search.masking import display_url

    # By the name of click's ParameterSource member: typer vendors click, so its module path is typer's own.
    typed = getattr(context.get_parameter_source(parameter.name or ""), "name", None) == "COMMANDLINE"
    if typed and display_url(url) != url:
        Console().warn("note: --storage holds a password, which `ps` shows to every user of this machine while "
                       "hpsearch runs, and shell history keeps; put the URL in $HPSEARCH_STORAGE instead, or the "
                       "password in ~/.pgpass (README: many machines)")
    return url


# The default storage may come from $HPSEARCH_STORAGE, so a password need not be typed on a command line;
# show_envvar only names the variable in --help, never its value.
Storage = Annotated[str, typer.Option("--storage", envvar="HPSEARCH_STORAGE", show_envvar=True,
                                      callback=_password_typed,
                                      help="Optuna storage URL (sqlite:///..., postgresql+psycopg://..., "
                                      "journal:///path; three slashes: a path relative to this folder, four: "
                                      "absolute); $HPSEARCH_STORAGE sets the default.")]
Arch = Annotated[str, typer.Argument(help=f"Architecture: {', '.join(spaces.names())}.")]
StudyName = Annotated[Optional[str], typer.Option("--study-name", help="Study name (default: ARCH).")]
Backend = Annotated[Optional[str], typer.Option(help="Keras backend: tensorflow or jax (default: $KERAS_BACKEND, "
                                                "else jax where it can use a GPU, else tensorflow).")]
RetrainBackend = Annotated[Optional[str], typer.Option(
    help="Keras backend: tensorflow or jax (default: the one the study's trials trained on, or its best trial "
    "where they differ, if installed; another one retrains them as other models).")]
ConfirmBackend = Annotated[Optional[str], typer.Option(
    help="Keras backend: tensorflow or jax (default: the one the study's trials trained on, or its best trial's "
    "where they differ, if installed). A trial is confirmed only on the backend it trained on.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


# The disk's errors, said in one line even where the file is not named (a write to an open file).
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# What Ctrl-C leaves behind, said after "interrupted" (each command its own: export-best has no trials to resume).
RESUMABLE = "finished trials are saved; run the same command again to resume"


@contextlib.contextmanager
def user_errors(interrupted: str = RESUMABLE, console: Console | None = None) -> Iterator[None]:
    """Turn a user's mistake into one line on stderr and exit code 2; Ctrl-C, and SIGTERM (`timeout`, `kill`,
    a batch scheduler) taken as one, into exit code 130 and a line saying what it left (`interrupted`; "" for a
    command that writes nothing). `console`: a worker's, whose lines say which worker it is."""
    console = console or Console()
    # Cleaned up or recorded as on Ctrl-C (a replay left its trial RUNNING); the errors are judged inside the block,
    # where an interrupt a library swallowed is still noted.
    with sigterm_as_interrupt():
        try:
            yield
        except (KeyboardInterrupt, Exception) as exc:
            # Also Ctrl-C inside a library that then failed on its own (Optuna recording a trial: UnboundLocalError,
            # a journal lock: FileNotFoundError), or any error once one came: as Ctrl-C, not a traceback and exit 1.
            if was_interrupted(exc):
                console.warn(f"interrupted: {interrupted}" if interrupted else "interrupted")
                raise typer.Exit(130) from None
            if isinstance(exc, (UserError, spaces.UnknownArchitecture)):
                console.warn(f"error: {exc}")
                raise typer.Exit(2) from None
            # An OSError not about a file the user named, nor the disk, is a bug or the network: its traceback stays.
            if not isinstance(exc, OSError) or (exc.filename is None and exc.errno not in DISK_ERRORS):
                raise
            # e.g. a folder without write permission, or a full disk while a file was written
            console.warn(f"error: {exc.filename}: {exc.strerror}" if exc.filename else f"error: {exc.strerror}")
            raise typer.Exit(2) from None


# click's base of the errors it shows as "Usage: ... Error: ...", found from a public subclass: typer vendors click
# (typer._click), older typers use click itself.
_USAGE_ERROR: type[Exception] = next(base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException")


@contextlib.contextmanager
def _passwords_masked(typed: list[str]) -> Iterator[None]:
    """Mask the passwords of the URLs among the arguments `typed` in click's usage errors, which quote what was
    typed: a storage URL given without --storage (`hpsearch trials cnn "$URL"`) was shown whole."""
    try:
        yield
    except _USAGE_ERROR as exc:
        message = str(getattr(exc, "message", ""))  # what click shows after "Error: "
        for arg in secret_arguments(typed):
            message = redact(message, arg)
        exc.message = message  # type: ignore[attr-defined]
        raise


class MaskedGroup(TyperGroup):
    """typer's command group, with no password shown in its usage errors (_passwords_masked)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Parse the command line, keeping what was typed for the subcommand's errors."""
        typed = list(args)
        Console.secrets = secret_arguments(typed)  # every line this command writes masks them (search.console.emit)
        with _passwords_masked(typed):
            context = super().make_context(info_name, args, parent, **extra)
        context.meta["hpsearch.typed"] = typed  # shared with the subcommands' contexts
        return context

    def invoke(self, ctx: Any) -> Any:
        """Run the subcommand: its name is resolved and its own arguments parsed here."""
        with _passwords_masked(ctx.meta.get("hpsearch.typed", [])):
            return super().invoke(ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line; a help text that stdout cannot take (`--help > /dev/full`) is one line on stderr
        and exit 2, as a result is (it was a traceback: click writes the help itself, outside user_errors)."""
        try:
            return super().main(*args, **kwargs)
        except OSError as exc:
            if exc.errno not in DISK_ERRORS:
                raise
            emit(sys.stdout, "")  # stdout set to /dev/null, the line said, SystemExit(2) (search.console.emit)
            raise


def resumed_options(storage: str, study_name: str, quiet: bool, **given: Any) -> dict[str, Any]:
    """The settings of a run of study `study_name` given on the command line (None: left out), the rest taken from
    the study where it exists (search.study.resumed_settings), with a line that says what was taken."""
    from search.study import resumed_settings

    data_dir = given["data_dir"]
    settings, said = resumed_settings(storage, study_name, {**given, "data_dir": data_dir and str(data_dir)})
    if said:
        Console(quiet).say(f"resuming study {study_name!r} with the options it was made with: {' '.join(said)}")
    return settings


def study_for_training(arch: str, storage: str, study_name: str | None, backend: str | None, *,
                       writes: bool = False) -> optuna.Study:
    """Check the architecture, load an existing study to retrain from, and start the Keras backend: --backend, else
    the one its trials (or its winner) trained on where it is installed, so a trial is retrained as it trained
    (`writes`: opened for writing too, once it is known to exist, so no storage is created where there was none)."""
    from search.records import require_arch
    from search.runtime import installed_backend, use_backend
    from search.storage import load_study, open_storage
    from search.winners import trained_backend

    spaces.require(arch)
    study = load_study(open_storage(storage, readonly=True), study_name or arch)
    require_arch(study, arch)  # the retraining would build the study's architecture, not ARCH's
    use_backend(backend if backend is not None else installed_backend(trained_backend(study)))
    return load_study(open_storage(storage), study.study_name) if writes else study
