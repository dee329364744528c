"""Worker processes and budgets: signals reach each worker once, no orphan outlives its parent, a dead worker's
RUNNING trial does not count, and --timeout must be positive."""
from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import typer
from optuna.trial import TrialState
from typer.testing import CliRunner

from search import owners
from search.cli import app
from search.cli_options import user_errors
from tests.conftest import as_foreground_job, load

runner = CliRunner()
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def children(parent: int) -> dict[int, bytes]:
    """parent's live child processes, pid -> command line, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
    return found


def process_group(pid: int) -> int:
    """The process group of pid (from /proc/PID/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(url: str, data: Path, *args: str) -> subprocess.Popen:
    """A long `hpsearch study` in its own session (as a shell's foreground job is in its own group)."""
    return subprocess.Popen([sys.executable, "-m", "search", "study", "lenet", "--epochs", "200", "--subset", "200",
                             "--pruner", "none", "--data", str(data), "--storage", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=as_foreground_job)


def _wait_until_running(url: str, proc: subprocess.Popen, trials: int, name: str = "lenet") -> None:
    """Poll until `trials` trials of study `name` are RUNNING and each has reported an epoch."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            running = load(url, name).get_trials(states=(TrialState.RUNNING,))
            if len(running) >= trials and all(t.intermediate_values for t in running):
                return
        except KeyError:
            pass  # the study is not created yet
        time.sleep(0.2)
    raise AssertionError("the trials did not get under way")


@pytest.mark.parametrize("how", ["sigterm", "terminal-ctrl-c"])
def test_signal_to_the_parent_reaches_each_worker_once(how: str, tiny_data: Path, tmp_path: Path) -> None:
    url = f"journal:///{tmp_path / 'journal.log'}"
    proc = _start(url, tiny_data, "--trials", "4", "--workers", "2")
    _wait_until_running(url, proc, 2)
    workers = children(proc.pid)
    assert len(workers) == 2 and all(b"worker" in line for line in workers.values())
    # Workers are outside the parent's process group: a terminal's Ctrl-C reaches only the parent.
    assert all(process_group(pid) != process_group(proc.pid) for pid in workers)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(process_group(proc.pid), signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    # The parent says what is kept, once; each worker says it stopped, once, under its own name.
    assert stderr.count("interrupted: finished trials are saved") == 1
    assert sorted(line for line in stderr.splitlines() if line.endswith(" interrupted")) == [
        "[w0] interrupted", "[w1] interrupted"], stderr[-3000:]
    assert not any(alive(pid) for pid in workers)
    trials = load(url).trials
    assert [t.user_attrs.get("fail_reason") for t in trials if t.state == TrialState.FAIL] == ["interrupted"] * 2
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_sigterm_stops_a_replay_as_ctrl_c_does(tiny_data: Path, tmp_path: Path) -> None:
    """SIGTERM (`timeout`, a batch scheduler) ended `replay` and `confirm` outright, saying nothing (exit 143): a
    replay left its trial RUNNING for good."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    proc = subprocess.Popen([sys.executable, "-m", "search", "replay", "lenet", "--models", "model5", "--subset", "200",
                             "--data", str(tiny_data), "--storage", url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_until_running(url, proc, 1, "lenet-notebook")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert "interrupted: finished models are saved; run the same command again to resume" in stderr
    [trial] = load(url, "lenet-notebook").trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "interrupted"


def test_every_command_takes_sigterm_as_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    """The commands' shared error rule (search.cli_options.user_errors) is where SIGTERM becomes Ctrl-C, for the
    block only."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(typer.Exit) as stopped, user_errors("what it left"):
        signal.raise_signal(signal.SIGTERM)
    assert stopped.value.exit_code == 130
    assert capsys.readouterr().err == "interrupted: what it left\n"
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupt_python_drops_is_noted_and_not_shown_as_a_traceback() -> None:
    """Raised in a garbage collector's callback, Python drops it with "Exception ignored in ..." and a traceback:
    noted, it is raised again where hpsearch checks (between epochs and trials); shown, it told a user nothing. In
    a fresh process: pytest takes such reports over in its own."""
    code = textwrap.dedent("""
        import gc, os, signal, weakref
        from search.signals import interrupt_received, raise_if_interrupted, sigterm_as_interrupt

        class Cycle:
            pass

        with sigterm_as_interrupt():
            node = Cycle()
            node.me = node
            ref = weakref.ref(node, lambda _: os.kill(os.getpid(), signal.SIGTERM))
            del node
            gc.collect()
            print("went on", interrupt_received())
            with sigterm_as_interrupt():  # a study's block in the command's, as a worker's Keras import in its own
                try:
                    raise_if_interrupted()
                except KeyboardInterrupt:
                    print("raised again")
        print("after the command:", interrupt_received())  # a test's next command trained on, or died at once
        raise_if_interrupted()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a script inherits it
        with sigterm_as_interrupt():
            print("ignored SIGINT:", signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
        ref = weakref.ref(Cycle(), lambda _: 1 / 0)  # outside the block, another error's report stays
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["went on True", "raised again", "after the command: False",
                                        "ignored SIGINT: True"], done.stderr
    assert "KeyboardInterrupt" not in done.stderr and "ZeroDivisionError" in done.stderr, done.stderr


def test_a_worker_whose_parent_stopped_before_sending_its_settings_ends_quietly() -> None:
    """An interrupt between starting a worker and writing its settings left it an empty stdin: a JSON traceback."""
    done = subprocess.run([sys.executable, "-m", "search", "worker"], input="", capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130 and done.stderr == "", done.stderr


@pytest.mark.parametrize("raised_meanwhile", [
    UnboundLocalError("cannot access local variable 'updated_state'"),  # Optuna recording a trial: exit 1
    FileNotFoundError(2, "No such file or directory", "j.log.lock"),  # a journal lock: "error: j.log.lock: ..."
])
def test_an_error_a_library_raised_while_taking_ctrl_c_is_ctrl_c(raised_meanwhile: Exception,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C or SIGTERM while Optuna told a finished trial ended in a 79-line traceback and exit code 1."""
    with pytest.raises(typer.Exit) as stopped, user_errors("what it left"):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            raise raised_meanwhile from None  # `from None` hides it from the traceback, not from __context__
    assert stopped.value.exit_code == 130 and capsys.readouterr().err == "interrupted: what it left\n"


def test_killed_parent_leaves_no_orphan_worker(tiny_data: Path, tmp_path: Path) -> None:
    url = f"journal:///{tmp_path / 'journal.log'}"
    proc = _start(url, tiny_data, "--trials", "4", "--workers", "2")
    _wait_until_running(url, proc, 2)
    workers = children(proc.pid)
    assert len(workers) == 2
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
    trials = load(url).trials
    assert [t.user_attrs.get("fail_reason") for t in trials if t.state == TrialState.FAIL] == ["interrupted"] * 2


def test_running_trial_of_a_dead_worker_does_not_count(tiny_data: Path, tmp_path: Path) -> None:
    """On a journal storage (no heartbeats) a killed worker's trial stays RUNNING: the next run still runs
    --trials finished trials, says so in one line, and --fail-orphans clears it."""
    url = f"journal:///{tmp_path / 'journal.log'}"
    proc = _start(url, tiny_data, "--trials", "2")
    _wait_until_running(url, proc, 1)
    proc.kill()
    proc.communicate(timeout=60)
    [orphan] = load(url).get_trials(states=(TrialState.RUNNING,))
    rerun = ["study", "lenet", "--trials", "2", "--epochs", "1", "--subset", "200", "--pruner", "none", "-q",
             "--data", str(tiny_data), "--storage", url]
    result = runner.invoke(app, rerun)
    assert result.exit_code == 0, result.output
    assert "still running" not in result.stderr
    assert f"found 1 RUNNING trial with no live worker (trial {orphan.number}): it does not count" in result.stderr
    assert "--fail-orphans" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "heartbeats" not in result.stderr  # a journal has none
    assert len(load(url).get_trials(states=FINISHED)) == 2
    result = runner.invoke(app, [*rerun, "--fail-orphans"])
    assert result.exit_code == 0 and "no live worker" not in result.stderr, result.output
    cleared = load(url).trials[orphan.number]
    assert cleared.state == TrialState.FAIL and "orphaned" in cleared.user_attrs["fail_reason"]


@pytest.mark.parametrize("value", ["0", "-5"])
def test_timeout_must_be_positive(value: str, tiny_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    result = runner.invoke(app, ["study", "lenet", "--timeout", value, "--workers", "2", "--data", str(tiny_data),
                                 "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2 and "--timeout must be more than 0 seconds" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not db.exists()


def test_a_worker_is_alive_while_its_process_runs_even_where_proc_hides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """--fail-orphans must not fail a live worker whose /proc entry this user cannot read (hidepid)."""
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid is free
    assert owners._alive(os.getpid()) and not owners._alive(finished.pid)
    read_text = Path.read_text

    def hidden(path: Path, *args: object, **kwargs: object) -> str:
        """/proc/<pid>/stat of a live process of another user, under hidepid=2: not there."""
        if str(path).startswith("/proc/") and str(path) != "/proc/self/stat":
            raise FileNotFoundError(path)
        return read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", hidden)
    assert owners._alive(os.getpid()) and not owners._alive(finished.pid)


def test_a_dead_worker_is_an_orphan_only_on_its_own_machine_and_pid_namespace() -> None:
    """Containers sharing the host's name (host networking) each number their processes: a pid of another PID
    namespace is not one of ours, so its trial must not be taken for an orphan and failed."""
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid is free here

    def running_trial(worker: str) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={"worker": worker})

    assert owners.owner() == f"{owners.machine()}:{os.getpid()}" and "pidns" in owners.machine()
    assert owners.is_orphan(running_trial(f"{owners.machine()}:{finished.pid}"))
    assert not owners.is_orphan(running_trial(owners.owner()))
    assert not owners.is_orphan(running_trial(f"{socket.gethostname()}/pidns1:{finished.pid}"))
    assert not owners.is_orphan(running_trial(f"elsewhere/pidns1:{finished.pid}"))
    assert owners.is_orphan(running_trial(f"{socket.gethostname()}:{finished.pid}"))  # recorded before namespaces
    unclaimed = running_trial("")  # no hpsearch worker recorded itself
    assert not owners.is_orphan(unclaimed)  # yet: Optuna's ask made it RUNNING, and its worker writes next
    unclaimed.datetime_start -= datetime.timedelta(seconds=owners.UNCLAIMED_SECONDS + 1)
    assert owners.is_orphan(unclaimed)  # a worker that died before its first write, or not an hpsearch one


def test_a_worker_honours_sigint_from_its_first_line_even_when_inherited_ignored() -> None:
    """The parent stops its workers with SIGINT; a worker still importing Keras must not lose it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a script passes it on
    try:
        result = runner.invoke(app, ["worker"], input="")  # no settings: it fails before reading them
        assert result.exit_code != 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_reader_that_goes_away_stops_the_output_not_the_search(tiny_data: Path, tmp_path: Path) -> None:
    """`hpsearch study ... | head -1`: a BrokenPipeError failed the trial being trained and stopped the study (the
    warm start lost); now output stops, every trial still runs and the exit code is 0. Two workers, a trial each:
    each writes to the same closed pipe."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    proc = subprocess.Popen([sys.executable, "-m", "search", "study", "lenet", "--trials", "2", "--workers", "2",
                             "--epochs", "1", "--subset", "60", "--data", str(tiny_data), "--storage", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"study 'lenet'")
    proc.stdout.close()  # the reader is gone before any trial has finished
    assert proc.wait(timeout=300) == 0
    trials = load(url).trials
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials), [t.user_attrs for t in trials]
    assert trials[0].user_attrs.get("warm_start")  # the default configuration ran, as the first trial


def test_an_orphan_on_a_storage_with_heartbeats_is_said_to_be_retried_too(tiny_data: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite a killed worker's trial is also failed and retried once its heartbeats are stale: the line named
    only --fail-orphans, which the README gives as the journal's way (a rerun within the grace period)."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    rerun = ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "100", "-q", "--data", str(tiny_data),
             "--storage", url, "--heartbeat", "5"]
    assert runner.invoke(app, rerun).exit_code == 0
    orphan = load(url).ask()  # RUNNING, and no hpsearch worker recorded itself
    monkeypatch.setattr(owners, "UNCLAIMED_SECONDS", 0)  # as if it had been so for five minutes
    result = runner.invoke(app, rerun)
    assert result.exit_code == 0 and result.stderr.strip().endswith(
        f"(trial {orphan.number}): it does not count toward --trials; run the same command with --fail-orphans to "
        "mark it failed (on this storage, a trial whose worker's heartbeats stopped is also failed and retried by a "
        "run from 15 s after its last beat)"), result.stderr


def test_a_worker_that_does_not_stop_is_killed_after_the_grace_period() -> None:
    """The parent waited for ever on a worker that could not record its interrupt (a storage that hangs), with
    Ctrl-C and SIGTERM ignored: only SIGKILL ended it."""
    from search.workers import stop_workers

    # A worker stops on SIGINT (set as the worker sets it: it may be inherited ignored); a hung one ignores it.
    # Both say when their handler is set, then wait on their open stdin, as workers do.
    code = "import signal, sys; signal.signal(signal.SIGINT, signal.{}); print(flush=True); sys.stdin.read()"
    procs = [subprocess.Popen([sys.executable, "-c", code.format(handler)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) for handler in ("default_int_handler", "SIG_IGN")]
    assert all(proc.stdout is not None and proc.stdout.readline() == b"\n" for proc in procs)
    assert stop_workers(procs, grace=1.0) == [1]
    assert procs[0].returncode == -signal.SIGINT  # Python's exit on an uncaught KeyboardInterrupt
    assert procs[1].returncode == -signal.SIGKILL
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close(), proc.stdout.close()
