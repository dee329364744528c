"""Opening study storages from URLs: SQLite (default), PostgreSQL/MySQL, and Optuna's journal file."""
from __future__ import annotations

import contextlib
import json
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from search.config import DEFAULT_STORAGE, HEARTBEAT_SECONDS, JOURNAL_PREFIX
from search.console import Console
from search.errors import NoStudies, UserError, exception_chain
from search.journal import RepairingJournalBackend
from search.masking import display_url, password_span, redact

# Heartbeats and stale-trial retries are marked experimental in Optuna; we rely on them knowingly.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)

DEFAULT_FOLDER = Path("studies")  # the only storage folder hpsearch creates by itself
GRACE_PERIODS = 3
SQLITE_WAIT_SECONDS = 60  # how long an SQLite reader or writer waits for another process's lock
CREATION_ATTEMPTS = 3  # opening a new RDB storage: tries while other machines create its tables at the same moment
def first_line(exc: BaseException, url: str, *, root: bool = True) -> str:
    """The first line of the root cause's message (Optuna wraps driver errors; `root` False: of exc's own) with the
    storage's secrets masked; an OSError's is its strerror."""
    while root and (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    lines = text.strip().splitlines()
    return redact(lines[0], url) if lines else type(exc).__name__


def lost_reason(exc: BaseException, url: str) -> str | None:
    """Why the storage can no longer be written (a server stopped, a full disk, a write refused), where an error in
    exc's chain says so; else None."""
    chain = list(exception_chain(exc))
    lost = [link for link in chain
            if isinstance(link, (OperationalError, InterfaceError, optuna.exceptions.StorageInternalError))]
    if not lost:
        return None
    # The database driver's own words (SQLAlchemy keeps them as .orig), or a journal's failed write; not the root of
    # the whole chain, which may be what the failed write happened during (a pruned trial's records). Optuna's
    # StorageInternalError says only "An exception is raised during the commit ... e.g. exceeding max length".
    driver = next((link.orig for link in chain if isinstance(link, DBAPIError) and link.orig is not None), None)
    written = next((link.__cause__ for link in lost if isinstance(link.__cause__, OSError)), None)
    return first_line(driver or written or lost[0], url, root=False)


def _refused(exc: BaseException) -> bool:
    """Whether the database refused a statement (e.g. "permission denied for table ...": a role that may only
    read) rather than went away: an error of the driver other than a lost connection or a full disk."""
    return any(isinstance(link, DBAPIError) and not isinstance(link, (OperationalError, InterfaceError))
               for link in exception_chain(exc))


@contextlib.contextmanager
def storage_loss_said(url: str) -> Iterator[None]:
    """Turn losing the storage mid-run (a server stopped, a network cut), or a write it refuses, seen anywhere in an
    error's chain, into one line that says what is kept: Optuna's tracebacks ran to hundreds of lines, one set per
    worker."""
    try:
        yield
    except UserError:  # already one line (e.g. "cannot open"), whatever database error it came from
        raise
    except Exception as exc:
        reason = lost_reason(exc, url)
        if reason is None:
            raise
        if _refused(exc):  # waiting for the server would not help
            raise UserError(f"the storage {display_url(url)!r} refused a statement ({reason}); what finished before "
                            "is saved there: run the same command again once the database allows it") from None
        raise UserError(f"lost the storage {display_url(url)!r} ({reason}); finished trials are saved there: run "
                        "the same command again once it is back") from None


def check_url(url: str) -> None:
    """Reject a malformed storage URL with a one-line error before anything is written."""
    shown = display_url(url)
    if url.startswith("journal:") and not url.startswith(JOURNAL_PREFIX):  # e.g. journal://x.log
        raise UserError(f"storage {shown!r}: a journal URL is journal:/// and the file's path, e.g. "
                        "journal:///studies/hpsearch.log")
    if url.startswith(JOURNAL_PREFIX):
        if not url[len(JOURNAL_PREFIX):]:
            raise UserError(f"storage {shown!r}: a journal URL needs a file path, e.g. journal:///studies/hpsearch.log")
        return
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # A password's '@' or ':' can make the rest unreadable (a port of ''): say how to write them.
        encoded = ("; percent-encode the password's special characters (@ as %40, : as %3A, / as %2F, % as %25)"
                   if shown != url else "")
        raise UserError(f"storage {shown!r}: not a storage URL; expected e.g. {DEFAULT_STORAGE}, "
                        f"postgresql+psycopg://user:pw@host/db or journal:///path/file.log{encoded}") from None
    span = password_span(url)
    if span is not None and "@" in url[slice(*span)]:  # SQLAlchemy would cut the password at it
        raise UserError(f"storage {shown!r}: its password holds an '@'; write it as %40, e.g. "
                        "postgresql+psycopg://user:p%40ss@host/db")
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise UserError(f"storage {shown!r}: unsupported database {parsed.get_backend_name()!r}; "
                        "use sqlite, postgresql or journal")
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        raise UserError(f"storage {shown!r}: an SQLite URL needs a file, e.g. {DEFAULT_STORAGE}")


def _absolute_hint(path: Path, found: bool) -> str:
    """A hint where a relative storage path was meant absolute: journal:///tmp/x.log names tmp/x.log, as
    sqlite:/// does, and an absolute path takes a fourth slash. `found`: what the absolute path would name exists."""
    if path.is_absolute() or not found:
        return ""
    return f" (the path is relative to this folder; for /{path} write four slashes)"


def _storage_file(shown: str, path: Path, readonly: bool) -> None:
    """Check the storage file's folder; create it only when it is the default studies/ folder."""
    if readonly and not path.is_file():
        kind = "journal" if shown.startswith(JOURNAL_PREFIX) else "database"
        raise NoStudies(f"storage {shown!r}: no such {kind} file{_absolute_hint(path, (Path('/') / path).is_file())}")
    if path.parent.is_dir():
        return
    if path.parent.resolve() != DEFAULT_FOLDER.resolve():
        hint = _absolute_hint(path, (Path("/") / path.parent).is_dir())
        raise UserError(f"storage {shown!r}: folder {path.parent} does not exist{hint}; create it first")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"storage {shown!r}: cannot create {path.parent} ({exc.strerror})") from None


def _require_optuna_sqlite(shown: str, path: Path) -> None:
    """Refuse an existing SQLite file of another program (Optuna would add its tables to it)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True,
                                                timeout=SQLITE_WAIT_SECONDS)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        if "locked" in str(exc):  # another program holds it, longer than a study's writers ever do
            raise UserError(f"storage {shown!r}: locked by another process for over {SQLITE_WAIT_SECONDS} s; "
                            "try again once it is done") from None
        raise UserError(f"storage {shown!r}: not an SQLite database ({exc})") from None
    if tables and "studies" not in tables:
        raise UserError(f"storage {shown!r}: {path} is an SQLite file of another program, not an Optuna storage")


def _require_optuna_journal(shown: str, path: Path) -> None:
    """Refuse an existing file that is not an Optuna journal: Optuna skips a last line without a newline, so it
    would append its records to a one-line text file (and then fail on reading it back)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as journal:
        first = journal.readline(1 << 16)  # a journal's records are short lines of JSON
    if first.startswith(b'{"op_code":') and not first.endswith(b"\n"):
        return  # its first record, cut short by a crash or a full disk: the first write mends it (search.journal)
    try:
        record = json.loads(first)
    except ValueError:  # also UnicodeDecodeError
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise UserError(f"storage {shown!r}: {path} is not an Optuna journal file")


def _no_table(reason: str, table: str) -> bool:
    """Whether a driver's error says that Optuna's `table` is missing (SQLite: "no such table", PostgreSQL:
    "does not exist"), rather than e.g. that this user may not read it."""
    return table in reason and any(word in reason for word in ("no such", "not exist"))


def _begin_immediate(connection: Connection) -> None:
    """Start every SQLite transaction holding the write lock. Optuna claims a queued trial by reading that it
    is WAITING and then writing RUNNING; SQLite ignores SELECT ... FOR UPDATE and Python's sqlite3 runs the read
    outside a transaction, so two workers could both claim the same enqueued trial (seen: both ran the warm
    start, and the second crashed on telling a finished trial)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class SteadyHeartbeatStorage(RDBStorage):
    """Optuna's RDBStorage, whose heartbeat outlives a failed beat.

    Optuna's heartbeat thread catches nothing: one failed write (a dropped connection, a lock held past the wait)
    ended it with a traceback, the trial trained on without beats, and another process failed it as stale and
    retried it, throwing its training away. A failed beat is said in one line and tried again an interval later; a
    storage that stays lost is said by the trial's next write."""

    def record_heartbeat(self, trial_id: int) -> None:
        """Record a beat of a running trial; a failure is a warning, not the end of its heartbeat thread."""
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # noqa: BLE001 - each driver raises its own errors
            Console().warn(f"warning: a heartbeat of a running trial was not recorded ({first_line(exc, self.url)});"
                           f" the next is tried in {self.heartbeat_interval} s")


def open_storage(url: str, heartbeat_seconds: int = HEARTBEAT_SECONDS, *, readonly: bool = False,
                 checked: bool = False) -> BaseStorage:
    """The storage behind url; RDB storages get heartbeats so a killed worker's trial is failed and retried.

    readonly: for commands that only read a study; they never create files, tables or folders.
    checked: skip creating the tables and checking their schema version (Optuna's check loads alembic's
    migration scripts: 0.3-0.5 s on the 2-core CPU): this process's run has just done both, or will.
    A reader finding no file or no tables raises NoStudies."""
    check_url(url)
    shown = display_url(url)
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):])
        _storage_file(shown, path, readonly)
        _require_optuna_journal(shown, path)
        try:
            return JournalStorage(RepairingJournalBackend(str(path)))
        except OSError as exc:
            raise UserError(f"storage {shown!r}: cannot open ({exc.strerror})") from None
        except Exception:  # noqa: BLE001 - its lines are not journal records (JSON of Optuna's operations)
            raise UserError(f"storage {shown!r}: {path} is not an Optuna journal file") from None
    parsed = make_url(url)
    # A server's connection that sat idle through a long trial may have been dropped (idle_session_timeout, a NAT):
    # tested before use, as Optuna does for MySQL only.
    engine_kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")  # check_url refused an SQLite URL without a file
        _storage_file(shown, path, readonly)
        _require_optuna_sqlite(shown, path)
        # Wait for other writers instead of failing; no implicit BEGIN of Python's sqlite3 (see _begin_immediate).
        engine_kwargs = {"connect_args": {"timeout": SQLITE_WAIT_SECONDS, "isolation_level": None}}
    for attempt in range(CREATION_ATTEMPTS):
        try:
            storage = SteadyHeartbeatStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds,
                                 grace_period=heartbeat_seconds * GRACE_PERIODS,
                                 skip_table_creation=readonly or checked, skip_compatibility_check=checked,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
            break
        except Exception as exc:  # noqa: BLE001 - driver errors differ per database; say it in one line
            reason = first_line(exc, url)
            # Machines that start on a new database at once race to create Optuna's tables, and all but one fail
            # ("duplicate key value", "already exists"; SQLite's "UNIQUE constraint failed" where two commands
            # start on a new file); the tables are there now, so opening again succeeds.
            if not readonly and attempt + 1 < CREATION_ATTEMPTS and any(
                    race in reason for race in ("duplicate key value", "already exists", "UNIQUE constraint failed")):
                continue
            # A new, empty database: every driver's error names the table Optuna's check reads first, as missing
            # (not as one this user may not read: "permission denied for table version_info").
            if readonly and _no_table(reason, "version_info"):
                raise NoStudies(f"no hpsearch studies in {shown} (no Optuna tables yet); run `hpsearch study ARCH` "
                                "first") from None
            # The URL names no password and the server asks for one: where hpsearch expects it.
            hint = ("; give the password in $HPSEARCH_STORAGE's URL or in ~/.pgpass (README: many machines)"
                    if "no password supplied" in reason else "")
            raise UserError(f"storage {shown!r}: cannot open ({reason}){hint}") from None
    if storage.engine.dialect.name == "sqlite" and not readonly:  # a reader takes no lock: it may not write
        event.listen(storage.engine, "begin", _begin_immediate)
    if readonly:
        try:
            storage.get_all_studies()  # without Optuna's tables this fails: say so now, in one line
        except Exception as exc:  # noqa: BLE001
            reason = first_line(exc, url)
            if checked and _no_table(reason, "studies"):  # the table check was skipped: this is where it shows
                raise NoStudies(f"no hpsearch studies in {shown} (no Optuna tables yet)") from None
            raise UserError(f"storage {shown!r}: not an Optuna storage ({reason})") from None
    return storage


def load_all(storage: BaseStorage) -> list[optuna.Study]:
    """Every study in a storage."""
    return [optuna.load_study(study_name=name, storage=storage) for name in optuna.get_all_study_names(storage)]


def load_study(storage: BaseStorage, name: str) -> optuna.Study:
    """An existing study, or a one-line error listing the studies that do exist."""
    names = optuna.get_all_study_names(storage)
    if name not in names:
        # Quoted: a name may hold spaces, a newline or a terminal escape (shown as Python writes them).
        raise UserError(f"no study {name!r} in this storage; studies: {', '.join(map(repr, names)) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)
