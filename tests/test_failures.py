"""Failure isolation, the failure limit, memory across trials, reproducibility, and bad input at the CLI."""
from __future__ import annotations

import dataclasses
import gc
import os
import signal
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import keras
import optuna
import pytest
import tensorflow as tf
from optuna.trial import TrialState
from typer.testing import CliRunner

import search.objective
import search.signals
import spaces
from search.cli import app
from search.runner import TRIALS_PER_PROCESS, run_study
from search.storage import open_storage
from search.study import StudyConfig
from spaces.param_names import model_params
from tests.test_data import BAD_TRAIN

runner = CliRunner()


def _config(data: Path, url: str, **changes: object) -> StudyConfig:
    return dataclasses.replace(StudyConfig(arch="lenet", data_dir=str(data), trials=3, epochs=1, subset=60,
                                           storage=url, quiet=True, pruner="none"), **changes)


def _trials(url: str, name: str = "lenet") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url)).trials


def test_out_of_memory_fails_one_trial_and_the_study_goes_on(tiny_data: Path, sqlite_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real_train, calls = search.objective.train, []

    def oom_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4096,4096]")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(search.objective, "train", oom_once)
    assert run_study(_config(tiny_data, sqlite_url)) == 0
    trials = _trials(sqlite_url)
    assert [t.state for t in trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3
    assert trials[0].user_attrs["fail_reason"] == ("ResourceExhaustedError: OOM when allocating tensor "
                                                   "with shape[4096,4096]")


class _Cycle:
    """An object in a reference cycle: only the garbage collector frees it."""


def _interrupt_in_the_garbage_collector() -> None:
    """Ctrl-C delivered inside a weakref callback that a garbage collection runs, as it landed in Keras'
    clear_session: Python prints "Exception ignored in ..." and drops the KeyboardInterrupt."""
    node = _Cycle()
    node.me = node  # type: ignore[attr-defined]
    _Cycle.ref = weakref.ref(node, lambda _: os.kill(os.getpid(), signal.SIGINT))  # type: ignore[attr-defined]
    del node
    gc.collect()


def test_an_interrupt_a_library_swallowed_still_stops_the_study(tiny_data: Path, sqlite_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Lost in clear_session's garbage collection, the Ctrl-C (or SIGTERM) went unheeded: the study trained on."""
    assert threading.current_thread() is threading.main_thread()  # where signal handlers run
    clear_session, calls = keras.backend.clear_session, []

    def interrupted_in_the_second(*args: object, **kwargs: object) -> None:
        calls.append(1)
        clear_session(*args, **kwargs)
        if len(calls) == 2:
            _interrupt_in_the_garbage_collector()

    monkeypatch.setattr(keras.backend, "clear_session", interrupted_in_the_second)
    result = runner.invoke(app, ["study", "lenet", "--trials", "4", "--epochs", "1", "--subset", "60", "--pruner",
                                 "none", "--data", str(tiny_data), "--storage", sqlite_url, "-q"])
    assert result.exit_code == 130 and "interrupted: finished trials are saved" in result.stderr, result.output
    trials = _trials(sqlite_url)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs["fail_reason"] == "interrupted"


def test_a_trial_failed_meanwhile_by_another_process_is_dropped_and_the_worker_goes_on(
        tiny_data: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Another machine fails a trial whose heartbeats it judged stale (a network cut longer than the grace period)
    and retries it; the worker, back, could not tell its result ("Cannot tell a FAIL trial"), crashed with a
    traceback, and its run stopped short."""
    real_train, calls = search.objective.train, []

    def failed_meanwhile(*args, **kwargs):
        calls.append(1)
        run = real_train(*args, **kwargs)
        if len(calls) == 1:  # as fail_stale_trials in another process does
            study = optuna.load_study(study_name="lenet", storage=open_storage(sqlite_url))
            (running,) = study.get_trials(states=(TrialState.RUNNING,))
            study._storage.set_trial_state_values(running._trial_id, TrialState.FAIL)
        return run

    monkeypatch.setattr(search.objective, "train", failed_meanwhile)
    assert run_study(_config(tiny_data, sqlite_url, trials=2)) == 0
    assert [t.state for t in _trials(sqlite_url)] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "failed meanwhile by another process" in capsys.readouterr().err


def test_max_failures_stops_a_study_that_keeps_failing(tiny_data: Path, sqlite_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("the GPU fell off the bus")

    monkeypatch.setattr(search.objective, "train", broken)
    assert run_study(_config(tiny_data, sqlite_url, trials=10, max_failures=3)) == 1
    trials = _trials(sqlite_url)
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert trials[-1].user_attrs["fail_reason"] == "RuntimeError: the GPU fell off the bus"
    # The limit is per run: a rerun gets its own 3 failures, the first run's do not count.
    assert run_study(_config(tiny_data, sqlite_url, trials=10, max_failures=3)) == 1
    assert [t.state for t in _trials(sqlite_url)] == [TrialState.FAIL] * 6


def test_an_interrupt_a_library_turned_into_another_error_still_stops_the_study(
        tiny_data: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_in_a_lock(*args: object, **kwargs: object) -> None:
        try:
            raise KeyboardInterrupt  # as Ctrl-C landing in Optuna's journal lock release
        except BaseException:
            raise FileNotFoundError("journal.log.lock1234.rename")  # noqa: B904 - as Optuna raises it

    monkeypatch.setattr(search.objective, "train", interrupted_in_a_lock)
    with pytest.raises(KeyboardInterrupt):
        run_study(_config(tiny_data, sqlite_url))
    trials = _trials(sqlite_url)
    assert [(t.state, t.user_attrs["fail_reason"]) for t in trials] == [(TrialState.FAIL, "interrupted")]


def _raised_while_interrupted(cause: BaseException | None) -> BaseException:
    """An error raised `from cause` while a KeyboardInterrupt was being handled."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("did not possess lock") from cause
    except RuntimeError as exc:
        return exc


def test_an_interrupt_is_found_anywhere_in_an_error_chain() -> None:
    assert search.signals.interrupted(_raised_while_interrupted(OSError("rename failed")))  # cause and context
    assert search.signals.interrupted(_raised_while_interrupted(None))
    assert not search.signals.interrupted(RuntimeError("the GPU fell off the bus"))


def test_memory_does_not_grow_across_trials(tiny_data: Path, tmp_path: Path) -> None:
    """Resident memory grows by at most 20 MB a trial within a process (from its second trial to its last), and
    after a round of trials a fresh process takes over, starting lower.

    Every trial trains LeNet's default configuration (the warm start): resident memory also follows the size of
    the model a trial builds (sampled LeNets moved it by up to 52 MB from one trial to the next, and the bound was
    met or missed by which models the sampler drew), so only a repeated configuration shows what trials leave
    behind. That is TensorFlow's per-model memory (search.runner): 14-15 MB a trial for this configuration, 25 MB
    for the larger variant with augmentation, batch norm and a schedule, which is why processes are recycled.
    Rounds of 4 trials instead of TRIALS_PER_PROCESS (15): the same code path in 8 trials."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    per_process = 4
    assert TRIALS_PER_PROCESS > per_process
    trials = 2 * per_process
    config = spaces.get("lenet").DEFAULT
    program = ("import optuna, search.runner; from spaces.param_names import stored_params; "
               f"study = optuna.create_study(storage={url!r}, study_name='lenet', direction='maximize'); "
               f"[study.enqueue_trial(stored_params({config!r})) for _ in range({trials})]; "
               f"search.runner.TRIALS_PER_PROCESS = {per_process}; import search.__main__")
    done = subprocess.run([sys.executable, "-c", program, "study", "lenet", "--trials", str(trials), "--epochs", "1",
                           "--subset", "60", "--pruner", "none", "--no-warm-start", "--data", str(tiny_data),
                           "--storage", url, "-q"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ran = _trials(url)
    assert all(model_params(t.params) == config for t in ran)
    rss = [t.user_attrs["rss_mb"] for t in ran]
    assert len(rss) == trials and rss[1] > 0
    for start in (0, per_process):  # each process, from its second trial (the first builds more) on
        process = rss[start + 1:start + per_process]
        assert max(process) - process[0] <= 20 * (len(process) - 1), rss
    assert rss[per_process] < rss[per_process - 1], rss  # the fresh process starts lower


def test_same_seed_same_params_and_first_epoch(tiny_data: Path, sqlite_url: str) -> None:
    """Same seed: the same sampled params in order, and the same first-epoch validation accuracy. Two sampled
    trials a study, without the warm start, whose params are fixed anyway."""
    runs = []
    for name in ("first", "second"):
        run_study(_config(tiny_data, sqlite_url, study_name=name, trials=2, subset=100, seed=7, pruner="none",
                          warm_start=False))
        runs.append(_trials(sqlite_url, name))
    assert [t.params for t in runs[0]] == [t.params for t in runs[1]]
    for a, b in zip(*runs, strict=True):
        # measured on this 2-core CPU with TensorFlow: identical; 1e-6 allows for float printing only
        assert a.user_attrs["history"][0]["val_accuracy"] == pytest.approx(
            b.user_attrs["history"][0]["val_accuracy"], abs=1e-6)
    run_study(_config(tiny_data, sqlite_url, study_name="other", trials=2, subset=100, seed=8, pruner="none",
                      warm_start=False))
    assert [t.params for t in _trials(sqlite_url, "other")] != [t.params for t in runs[0]]


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_train_csv_at_the_cli(case: str, tmp_path: Path) -> None:
    """One line on stderr, exit 2, and nothing written: no cache, no storage."""
    lines, expected = BAD_TRAIN[case]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("\n".join(lines) + ("\n" if lines else ""))
    db = tmp_path / "studies" / "db.sqlite"
    result = runner.invoke(app, ["study", "lenet", "--data", str(data), "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in data.iterdir()) == ["train.csv"] and not db.parent.exists()


def test_bad_train_csv_found_in_the_forked_start_is_one_line(tmp_path: Path) -> None:
    """Started from a shell, a study checks its data in a forked process while it imports Keras
    (search.overlap): the error still reaches the user as one line and exit code 2, with nothing written."""
    lines, expected = BAD_TRAIN["extra column"]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    db = tmp_path / "studies" / "db.sqlite"
    done = subprocess.run([sys.executable, "-m", "search", "study", "lenet", "--data", str(data), "--storage",
                           f"sqlite:///{db}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and expected in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout
    assert sorted(p.name for p in data.iterdir()) == ["train.csv"] and not db.parent.exists()


def test_testx_with_other_pixel_count_is_refused_before_the_study(tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_bytes((tiny_data / "train.csv").read_bytes())
    (data / "testX.csv").write_text("Id," + ",".join(f"pixel{i}" for i in range(100)) + "\n0" + ",0" * 100 + "\n")
    db = tmp_path / "db.sqlite"
    result = runner.invoke(app, ["study", "lenet", "--data", str(data), "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2 and "testX.csv: 100 pixel columns, expected 784 as in train.csv" in result.stderr
    assert not db.exists()
