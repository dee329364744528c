"""Opening study storages from URLs: SQLite (default), PostgreSQL/MySQL, and Optuna's journal file."""
from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.errors import UserError

# Heartbeats and stale-trial retries are marked experimental in Optuna; we rely on them knowingly.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)

DEFAULT_STORAGE = "sqlite:///studies/hpsearch.db"
JOURNAL_PREFIX = "journal:///"
# A worker that stops beating for this long is dead: its trial is failed and retried once.
HEARTBEAT_SECONDS = 10
GRACE_PERIODS = 3


def check_url(url: str) -> None:
    """Reject a malformed storage URL with a one-line error before anything is written."""
    if url.startswith(JOURNAL_PREFIX):
        if not url[len(JOURNAL_PREFIX):]:
            raise UserError(f"storage {url!r}: a journal URL needs a file path, e.g. journal:///studies/hpsearch.log")
        return
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"storage {url!r}: not a storage URL; expected e.g. {DEFAULT_STORAGE}, "
                        "postgresql+psycopg://user:pw@host/db or journal:///path/file.log") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise UserError(f"storage {url!r}: unsupported database {parsed.get_backend_name()!r}; "
                        "use sqlite, postgresql or journal")
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        raise UserError(f"storage {url!r}: an SQLite URL needs a file, e.g. {DEFAULT_STORAGE}")


def display_url(url: str) -> str:
    """The URL with any password masked, for printing."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    return make_url(url).render_as_string(hide_password=True)


def open_storage(url: str, heartbeat_seconds: int = HEARTBEAT_SECONDS, *, readonly: bool = False) -> BaseStorage:
    """The storage behind url; RDB storages get heartbeats so a killed worker's trial is failed and retried."""
    check_url(url)
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):])
        if readonly and not path.is_file():
            raise UserError(f"storage {url!r}: no such journal file")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    parsed = make_url(url)
    engine_kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        if readonly and not path.is_file():
            raise UserError(f"storage {url!r}: no such database file")
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for other writers instead of failing
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds,
                          grace_period=heartbeat_seconds * GRACE_PERIODS,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    except Exception as exc:  # noqa: BLE001 - driver errors differ per database; say it in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"storage {url!r}: cannot open ({first})") from None


def study_names(storage: BaseStorage) -> list[str]:
    """Names of every study in a storage."""
    return [summary.study_name for summary in optuna.get_all_study_summaries(storage)]


def load_study(storage: BaseStorage, name: str) -> optuna.Study:
    """An existing study, or a one-line error listing the studies that do exist."""
    names = study_names(storage)
    if name not in names:
        raise UserError(f"no study {name!r} in this storage; studies: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)
