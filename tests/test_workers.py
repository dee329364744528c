"""Many workers on real storages (journal, SQLite, PostgreSQL), killed and interrupted workers."""
from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import create_engine, make_url, text

from search.errors import UserError
from search.storage import open_storage
from search.tables import trials_frame
from tests.conftest import as_foreground_job, load

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def hpsearch(*args: str) -> list[str]:
    """The command line of a real hpsearch process."""
    return [sys.executable, "-m", "search", *args]


def _postgres_url() -> str:
    url = os.environ.get("HPSEARCH_TEST_POSTGRES")
    assert url, "set HPSEARCH_TEST_POSTGRES to a PostgreSQL URL (bash .ci/run starts a server and sets it)"
    return url


@pytest.fixture(params=["journal", "sqlite", "postgresql"])
def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL that several worker processes share."""
    return {"journal": lambda: f"journal:///{tmp_path / 'journal.log'}",
            "sqlite": lambda: f"sqlite:///{tmp_path / 'db.sqlite'}",
            "postgresql": _postgres_url}[request.param]()


def test_four_workers_times_two_trials(shared_storage: str, tiny_data: Path) -> None:
    """Four processes claim trials from one storage at once: each trial number once, every trial finished. (Two
    trials a worker: each trial here is ~2.5 s of tracing and fitting on a 2-core CPU, and more trials a worker
    only lengthened CI.)"""
    name = f"w{uuid.uuid4().hex[:8]}"
    done = subprocess.run(hpsearch("study", "lenet", "--trials", "8", "--workers", "4", "--epochs", "1",
                                   "--subset", "40", "--data", str(tiny_data), "--storage", shared_storage,
                                   "--study-name", name), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Error" not in done.stderr
    trials = optuna.load_study(study_name=name, storage=open_storage(shared_storage)).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == 8
    assert sum(t.state in FINISHED for t in trials) == 8
    assert {f"[w{i}]" for i in range(4)} <= {line[:4] for line in done.stderr.splitlines()}


def test_an_sqlite_transaction_holds_the_write_lock_from_its_first_read(tmp_path: Path) -> None:
    # Optuna claims a queued trial by reading WAITING, then writing RUNNING: between the two no other worker
    # may write, or two workers run the same trial (SQLite ignores SELECT ... FOR UPDATE).
    path = tmp_path / "db.sqlite"
    storage = open_storage(f"sqlite:///{path}")
    assert isinstance(storage, optuna.storages.RDBStorage)
    optuna.create_study(storage=storage, study_name="claims").enqueue_trial({"x": 1})
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with storage.scoped_session() as session:
        assert session.execute(text("SELECT state FROM trials")).scalars().all() == ["WAITING"]
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # free again once that transaction ended
    other.execute("ROLLBACK")
    other.close()


def _wait_for_running_trial(url: str, name: str, proc: subprocess.Popen, epochs: int = 2) -> optuna.trial.FrozenTrial:
    """Poll the storage until a trial is RUNNING and has reported `epochs` epochs."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the study ended before it could be stopped"
        try:
            study = optuna.load_study(study_name=name, storage=open_storage(url))
            running = study.get_trials(states=(TrialState.RUNNING,))
            if running and len(running[0].intermediate_values) >= epochs:
                return running[0]
        except KeyError:
            pass  # the study is not created yet
        time.sleep(0.2)
    raise AssertionError("no trial got under way")


def test_killed_worker_trial_is_failed_and_retried_and_rerun_completes(tiny_data: Path, tmp_path: Path) -> None:
    url, name = f"sqlite:///{tmp_path / 'db.sqlite'}", "lenet"
    command = hpsearch("study", "lenet", "--trials", "2", "--epochs", "20", "--subset", "200", "--pruner", "none",
                       "--heartbeat", "1", "--data", str(tiny_data), "--storage", url, "-q")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = _wait_for_running_trial(url, name, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Watch it with the workers' heartbeat settings (1 s beats, 3 s grace period).
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_seconds=1))
    assert study.trials[victim.number].state == TrialState.RUNNING  # a zombie until the grace period passes
    deadline = time.monotonic() + 60  # polled: the grace period runs on the storage's clock
    while study.trials[victim.number].state == TrialState.RUNNING and time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        time.sleep(0.2)
    assert study.trials[victim.number].state == TrialState.FAIL
    assert not study.get_trials(states=(TrialState.RUNNING,))
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    assert sum(t.state in FINISHED for t in trials) == 2
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].params == victim.params and retries[0].state in FINISHED
    # Failed by another process, the trial cannot be given a fail_reason; the table says what happened.
    table = trials_frame(optuna.load_study(study_name=name, storage=open_storage(url))).set_index("number")
    assert table.loc[victim.number, "fail_reason"] == ("stale: its worker stopped sending heartbeats (retried as "
                                                       f"trial {retries[0].number})")


def test_ctrl_c_records_interrupted_trial_and_rerun_resumes(tiny_data: Path, tmp_path: Path) -> None:
    url, name = f"sqlite:///{tmp_path / 'db.sqlite'}", "lenet"
    command = hpsearch("study", "lenet", "--trials", "1", "--epochs", "20", "--subset", "200", "--pruner", "none",
                       "--data", str(tiny_data), "--storage", url)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_foreground_job)
    victim = _wait_for_running_trial(url, name, proc, epochs=1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert "interrupted: finished trials are saved" in stderr
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    stopped = study.trials[victim.number]
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["fail_reason"] == "interrupted"
    assert not study.get_trials(states=(TrialState.RUNNING,))
    rerun = subprocess.run(command + ["-q"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(states=FINISHED)) == 1


def test_machines_running_the_same_command_stop_together_at_the_target(tiny_data: Path, tmp_path: Path) -> None:
    """Two independent commands (two machines) on one storage: together they stop at --trials, give or take
    the one trial the other was running at that moment."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    command = hpsearch("study", "lenet", "--trials", "6", "--epochs", "10", "--subset", "100", "--pruner", "none",
                       "--data", str(tiny_data), "--storage", url, "-q")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_running_trial(url, "lenet", first, epochs=0)  # the second sees 6 trials to go as well
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, first_err[-2000:] + second.stderr[-2000:]
    finished = [t for t in load(url).trials
                if t.state in FINISHED]
    assert 6 <= len(finished) <= 7


def _open_when_all_are_ready(url: str, barrier: multiprocessing.synchronize.Barrier,
                             said: multiprocessing.queues.Queue) -> None:
    """A machine's first step: open the storage, at the same moment as the others; put 'ok' or the error."""
    barrier.wait()
    try:
        open_storage(url)
        said.put("ok")
    except UserError as exc:
        said.put(str(exc))


def test_machines_starting_on_a_new_postgresql_database_at_once_all_open_it() -> None:
    """Machines that start on an empty database at the same moment race to create Optuna's tables: all but one
    failed ("duplicate key value violates unique constraint"). And a user who may not read those tables is told
    so, not that the database is empty."""
    server = _postgres_url()
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    database, reader = f"new{uuid.uuid4().hex[:8]}", f"reader{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {database}")
        connection.exec_driver_sql(f"CREATE ROLE {reader} LOGIN")
    url = make_url(server).set(database=database)
    try:
        context = multiprocessing.get_context("fork")  # the children only open a storage: no Keras in them
        barrier, said = context.Barrier(4), context.Queue()
        machines = [context.Process(target=_open_when_all_are_ready,
                                    args=(url.render_as_string(hide_password=False), barrier, said))
                    for _ in range(4)]
        for machine in machines:
            machine.start()
        for machine in machines:
            machine.join(timeout=120)
        assert [said.get(timeout=10) for _ in machines] == ["ok"] * 4
        with pytest.raises(UserError, match="cannot open .*permission denied for table version_info"):
            open_storage(url.set(username=reader).render_as_string(hide_password=False), readonly=True)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {database} WITH (FORCE)")
            connection.exec_driver_sql(f"DROP ROLE {reader}")
        admin.dispose()
