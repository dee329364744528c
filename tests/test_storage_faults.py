"""A storage that fails under a study (a full disk, a write cut short, a lock held elsewhere): one line that says
why, the study stopped rather than failing trial after trial, and a journal that stays readable."""
from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
import typer
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._storage import JournalOperation  # the op codes of its records
from optuna.trial import TrialState
from typer.testing import CliRunner

import search.storage
from search.cli import app
from search.cli_options import user_errors
from search.console import Console, emit
from search.errors import UserError
from search.export_files import current_umask, written_whole
from search.journal import TAIL_BYTES, RepairingJournalBackend, RepairingLock, broken_tail
from search.records import confirmations
from search.storage import open_storage, storage_loss_said
from tests.conftest import load

runner = CliRunner()
RECORD = b'{"op_code":0,"worker_id":"w"}\n'


@pytest.mark.parametrize(("tail", "whole", "cut"), [
    (RECORD * 2, True, 0),
    (RECORD + RECORD[:7], True, 7),  # a write cut short: no newline
    (RECORD + b"garbage\n", True, 8),  # a whole line, but no record
    (RECORD + b"garbage\n" + RECORD[:3], True, 11),
    (RECORD[:5], True, 5),
    (RECORD[:5], False, 0),  # the line may begin before the tail read: Optuna's reader skips it
    (b"", True, 0),
])
def test_the_broken_tail_is_what_follows_the_last_whole_record(tail: bytes, whole: bool, cut: int) -> None:
    assert broken_tail(tail, whole) == cut


def test_a_record_cut_short_is_dropped_however_long(tmp_path: Path) -> None:
    """Longer than the tail that is read to check the last record, it was left, and the next record appended to it."""
    journal = tmp_path / "j.log"
    journal.write_bytes(RECORD + b'{"op_code":8,"value":"' + b"x" * (2 * TAIL_BYTES))
    RepairingJournalBackend(str(journal)).append_logs([{"op_code": 0, "worker_id": "w"}])
    assert journal.read_bytes() == RECORD * 2  # Optuna writes its record as RECORD is written


def test_the_end_is_mended_and_written_in_one_hold_of_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mended in one hold and written in another, a record another worker cut short between the two took this
    worker's record with it (a line of both, no JSON, dropped by the next append)."""
    journal = tmp_path / "j.log"
    journal.write_bytes(RECORD)
    acquire, holds = RepairingLock.acquire, []

    def cut_short_just_before(lock: RepairingLock) -> bool:
        """Another worker's write, cut short by a full disk just before this hold of the lock."""
        with open(journal, "ab") as file:
            file.write(RECORD[:9])
        holds.append(lock)
        return acquire(lock)

    monkeypatch.setattr(RepairingLock, "acquire", cut_short_just_before)
    RepairingJournalBackend(str(journal)).append_logs([{"op_code": 0, "worker_id": "w"}])
    assert journal.read_bytes() == RECORD * 2 and len(holds) == 1


def test_a_lock_left_on_a_relative_journal_path_is_broken_after_its_grace_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock, a symlink to the journal, dangled for a relative path (`journal:///studies/cnn.log`): Optuna's check
    of a lock a killed worker left could not read it, and every later run spun on one core for ever."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "cnn.log").write_bytes(RECORD)
    left = RepairingLock("studies/cnn.log")
    assert left.acquire()  # and never released: its worker was killed
    assert os.stat(left._lock_file).st_mtime > 0  # the link leads to the journal
    waiting = RepairingLock("studies/cnn.log")
    waiting.grace_period = 0.05  # 30 s in use
    acquired = threading.Thread(target=waiting.acquire, daemon=True)
    acquired.start()
    acquired.join(timeout=20)
    assert not acquired.is_alive()  # the lock was broken and taken
    waiting.release()
    # One that an earlier hpsearch left, relative and so dangling: broken too once past its grace period.
    os.symlink("studies/cnn.log", "studies/cnn.log.lock")
    os.utime("studies/cnn.log.lock", (0, 0), follow_symlinks=False)
    acquired = threading.Thread(target=waiting.acquire, daemon=True)
    acquired.start()
    acquired.join(timeout=20)
    assert not acquired.is_alive() and os.path.exists("studies/cnn.log.lock")  # taken: a link that leads somewhere
    waiting.release()


@pytest.mark.parametrize("lost_race", [
    "UNIQUE constraint failed: alembic_version.version_num",  # two commands started at once on a new SQLite file
    'duplicate key value violates unique constraint "pg_type_typname_nsp_index"',  # as on a new PostgreSQL database
])
def test_the_process_that_loses_the_race_to_make_the_tables_opens_them_again(
        lost_race: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make, tries = search.storage.SteadyHeartbeatStorage, []

    def another_made_them_first(*args: object, **kwargs: object) -> object:
        tries.append(1)
        if len(tries) == 1:
            raise sqlalchemy.exc.IntegrityError("INSERT ...", {}, sqlite3.IntegrityError(lost_race))
        return make(*args, **kwargs)

    monkeypatch.setattr(search.storage, "SteadyHeartbeatStorage", another_made_them_first)
    storage = open_storage(f"sqlite:///{tmp_path / 'new.db'}")
    assert len(tries) == 2 and optuna.get_all_study_names(storage) == []


def test_a_journal_whose_first_record_was_cut_short_is_mended_not_refused(
        tiny_data: Path, tmp_path: Path) -> None:
    """A crash during a new journal's very first write: every command said "not an Optuna journal file"."""
    journal = tmp_path / "j.log"
    journal.write_bytes(RECORD[:12])
    url = f"journal:///{journal}"
    assert runner.invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "r.html")]).exit_code == 2
    result = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "40", "--data",
                                 str(tiny_data), "--storage", url, "-q"])
    assert result.exit_code == 0 and "not an Optuna journal" not in result.stderr, result.output
    assert len(optuna.load_study(study_name="lenet", storage=open_storage(url)).trials) == 1


def test_a_full_disk_stops_the_study_in_one_line_and_the_journal_stays_readable(
        tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It went on failing trials with no reason recorded, or ended in a traceback; and the record it cut short, once
    appended to, made the whole journal unreadable (every command: "not an Optuna journal file")."""
    journal = tmp_path / "j.log"
    args = ["study", "lenet", "--epochs", "1", "--subset", "100", "--data", str(tiny_data), "--storage",
            f"journal:///{journal}", "-q"]
    assert runner.invoke(app, [*args, "--trials", "1"]).exit_code == 0
    append, writes = JournalFileBackend.append_logs, []

    def full_after_three(backend: JournalFileBackend, logs: list[dict]) -> None:
        """Optuna's append, until the disk is full: then part of a record, and the error. Trials can still be
        created and their states set, as in an SQLite file on a full disk (such a small write fits in a page it
        holds), so Optuna's catch=(Exception,) would go on from trial to trial."""
        writes.append(logs)
        if len(writes) <= 3 or logs[0]["op_code"] in (JournalOperation.CREATE_TRIAL,
                                                      JournalOperation.SET_TRIAL_STATE_VALUES):
            return append(backend, logs)
        with open(journal, "ab") as file:
            file.write(RECORD[:9])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(JournalFileBackend, "append_logs", full_after_three)
    result = runner.invoke(app, [*args, "--trials", "5"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: lost the storage 'journal:///{journal}' (No space left on device); finished trials are saved there: "
        "run the same command again once it is back")
    assert len(load(f"journal:///{journal}").trials) == 2  # stopped at once, not after trial after trial failed
    assert "bytes, a record cut short" in result.stderr  # mended before Optuna's state write went on
    monkeypatch.setattr(JournalFileBackend, "append_logs", append)  # space again
    result = runner.invoke(app, [*args, "--trials", "3", "--fail-orphans"])
    assert result.exit_code == 0, result.output
    states = [t.state for t in load(f"journal:///{journal}").trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert journal.read_bytes().endswith(b"\n")


def test_a_database_role_that_may_only_read_is_said_so_by_study_and_confirm(postgres_database: sqlalchemy.URL,
                                                                           tiny_data: Path) -> None:
    """A PostgreSQL role with SELECT alone: `study` said "lost the storage (An exception is raised during the commit
    ... e.g. exceeding max length); ... once it is back", and `confirm` printed a traceback."""
    owner = postgres_database.render_as_string(hide_password=False)
    data = ["--data", str(tiny_data)]
    made = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "50", "--storage",
                               owner, "-q", *data])
    assert made.exit_code == 0, made.output
    role = f"reader_{postgres_database.database}"
    admin = sqlalchemy.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(sqlalchemy.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    reader = postgres_database.set(username=role).render_as_string(hide_password=False)
    try:
        for command in (["study", "lenet", "--study-name", "new", "--trials", "1", "--epochs", "1"],
                        ["confirm", "lenet", "--top", "1", "--seeds", "2"]):
            result = runner.invoke(app, [*command, "--storage", reader, *data])
            assert result.exit_code == 2 and "Traceback" not in result.output, result.output
            assert result.stderr.startswith(f"error: the storage '{reader}' refused a statement (permission denied "
                                            "for table "), result.stderr
            assert "once the database allows it" in result.stderr
        assert not confirmations(load(owner))
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP OWNED BY {role}"))
            connection.execute(sqlalchemy.text(f"DROP ROLE {role}"))
        admin.dispose()


def test_a_lost_database_is_said_in_its_driver_s_words_not_in_those_of_the_error_it_interrupted() -> None:
    """A full disk while a pruned trial's records were written was said as "(pruned after epoch 1)"; SQLite's
    read-only file as Optuna's "An exception is raised during the commit ... e.g. exceeding max length"."""
    url = "sqlite:///x.db"
    with pytest.raises(UserError) as raised, storage_loss_said(url):
        try:
            raise optuna.TrialPruned("pruned after epoch 1")
        except optuna.TrialPruned:
            try:
                full = sqlite3.OperationalError("database or disk is full")
                raise sqlalchemy.exc.OperationalError("UPDATE", {}, full)
            except sqlalchemy.exc.OperationalError:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from None
    assert str(raised.value).startswith(f"lost the storage '{url}' (database or disk is full); ")


def test_a_database_locked_by_another_program_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was "not an SQLite database (database is locked)", after 5 s instead of a study's 60."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    open_storage(url).get_all_studies()  # Optuna's tables
    monkeypatch.setattr(search.storage, "SQLITE_WAIT_SECONDS", 0.1)
    with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(UserError, match=r"locked by another process for over 0.1 s; try again once it is done"):
            open_storage(url, readonly=True)


def test_a_full_disk_under_a_file_or_the_output_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A write to an open file names no file: such an OSError was kept as a traceback (`report`, `data prepare` and
    `export-best` on a full disk), and so was a result written to a full or closed stdout."""
    with pytest.raises(typer.Exit) as ended, user_errors():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert ended.value.exit_code == 2 and capsys.readouterr().err == "error: No space left on device\n"
    with pytest.raises(OSError), user_errors():  # not the disk, not a named file: a bug's traceback stays
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    with open("/dev/full", "w") as full:  # noqa: PTH123 - a stream, as sys.stdout is
        monkeypatch.setattr(sys, "stdout", full)
        with pytest.raises(SystemExit) as exited:
            Console().result("the table")
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: cannot write the output: No space left on device\n"
    emit(None, "nowhere")  # stdout closed (`>&-`): nothing to say it to, and no AttributeError
    monkeypatch.setattr(sys, "stderr", None)  # stderr closed (`2>&-`): Console() itself asked it isatty()
    Console().warn("nowhere")


@pytest.mark.parametrize("args", [["--help"], ["study", "--help"]])
def test_help_that_stdout_cannot_take_is_one_line(args: list[str]) -> None:
    """click writes the help itself, outside the commands' error rule: `--help > /dev/full` was a traceback."""
    with open("/dev/full", "w") as full:  # noqa: PTH123 - a stream for the child's stdout
        done = subprocess.run([sys.executable, "-m", "search", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == "error: cannot write the output: No space left on device\n"


def test_a_report_file_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    """A full disk left a report cut off mid-script, which the next run then refused to replace without --force."""
    report = tmp_path / "report.html"
    report.write_text("old")
    with pytest.raises(OSError), written_whole(report) as temporary:
        temporary.write_text("half a")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert report.read_text() == "old" and list(tmp_path.iterdir()) == [report]
    with written_whole(report) as temporary:
        temporary.write_text("new")
    assert report.read_text() == "new" and list(tmp_path.iterdir()) == [report]
    assert report.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # an ordinary file, not mkstemp's private one


@pytest.mark.parametrize("worker", [None, 3])
def test_a_failed_heartbeat_is_one_line_and_the_next_beat_is_recorded(worker: int | None, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Optuna's heartbeat thread ended at the first failed beat (a dropped connection), with a traceback: the trial
    trained on without beats, and another process failed it as stale and retried it, its training lost. In one of
    several workers the line says which (it showed without [wN], as no one passed the number to the storage)."""
    from optuna.storages._heartbeat import HeartbeatThread  # the loop each running trial's thread runs

    monkeypatch.setattr(Console, "worker", worker)  # as the worker command sets it

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    storage = open_storage(url, heartbeat_seconds=1)
    trial = optuna.create_study(storage=storage).ask()
    beats: list[int] = []
    record = optuna.storages.RDBStorage.record_heartbeat

    def dropped_once(self: optuna.storages.RDBStorage, trial_id: int) -> None:
        beats.append(trial_id)
        if len(beats) == 1:
            driver = Exception("server closed the connection unexpectedly")
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, driver) from driver  # as SQLAlchemy wraps them
        record(self, trial_id)

    class TwoIntervals:
        """The thread's stop event, set after its second interval (no waiting)."""

        waits = 0

        def wait(self, timeout: float) -> bool:
            self.waits += 1
            return self.waits == 2

    monkeypatch.setattr(optuna.storages.RDBStorage, "record_heartbeat", dropped_once)
    HeartbeatThread._record_heartbeat(trial._trial_id, storage, TwoIntervals())  # type: ignore[arg-type]
    assert beats == [trial._trial_id] * 2
    prefix = "" if worker is None else f"[w{worker}] "
    assert capsys.readouterr().err == (f"{prefix}warning: a heartbeat of a running trial was not recorded (server "
                                       "closed the connection unexpectedly); the next is tried in 1 s\n")
    with storage.engine.connect() as connection:  # the second beat is in the storage
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM trial_heartbeats")).scalar_one() == 1


def test_a_database_connection_dropped_while_idle_is_opened_again(postgres_database: sqlalchemy.URL) -> None:
    """A server that drops an idle connection (idle_session_timeout, a NAT) while the workers of a round train: the
    parent's next count of the study said "lost the storage", though the database was there."""
    url = postgres_database.render_as_string(hide_password=False)
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="s")
    admin = sqlalchemy.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # every connection to the test database but this one ends, as on a timeout
        ended = connection.execute(sqlalchemy.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name AND pid <> "
            "pg_backend_pid()"), {"name": postgres_database.database}).scalar_one()
    admin.dispose()
    assert ended >= 1  # the storage's pooled connection was among them
    assert optuna.get_all_study_names(storage) == ["s"]
