"""Studies end to end on tiny real data: attributes, resume, pruning, failures and seed models."""
from __future__ import annotations

import dataclasses
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import spaces
from search import owners
from search.data import load_dataset, prepare
from search.errors import UserError
from search.objective import make_objective
from search.runner import run_study
from search.storage import open_storage
from search.study import StudyConfig, enqueue_seed_models, enqueue_warm_start, open_study
from spaces.param_names import model_params, stored_params

HISTORY_KEYS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "ended_at"}


def _config(data: Path, url: str, arch: str = "lenet", **changes: object) -> StudyConfig:
    return dataclasses.replace(StudyConfig(arch=arch, data_dir=str(data), trials=2, epochs=1, storage=url,
                                           quiet=True, heartbeat_seconds=2), **changes)


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.mark.parametrize("arch", spaces.names())
def test_a_study_records_history_and_time(arch: str, tiny_data: Path, sqlite_url: str) -> None:
    """One trial, the architecture's DEFAULT (the warm start): sampled models of every architecture are built in
    tests/test_spaces.py and trained with every lever in tests/test_levers.py, so a second trial here (VGG-16's
    sampled models took up to 20 s on the 2-core CPU) only lengthened CI."""
    assert run_study(_config(tiny_data, sqlite_url, arch, subset=100, trials=1)) == 0
    study = _study(sqlite_url, arch)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 1 and finished[0].user_attrs.get("warm_start")
    for trial in finished:
        attrs = trial.user_attrs
        assert len(attrs["history"]) == 1 and set(attrs["history"][0]) == HISTORY_KEYS
        assert attrs["train_seconds"] > 0 and attrs["n_params"] > 0 and attrs["best_epoch"] == 1
        assert attrs["backend"] == "tensorflow" and attrs["device"] == "cpu"
        assert trial.value == pytest.approx(attrs["history"][0]["val_accuracy"])
    assert study.user_attrs["arch"] == arch and study.user_attrs["label_set"] == "fashion5"


def test_a_journal_study_resumes_with_another_heartbeat(tiny_data: Path, tmp_path: Path, sqlite_url: str) -> None:
    """A journal has no heartbeats, so --heartbeat changes nothing there: a resume with another one was refused
    ("was made with --heartbeat 2"), also for journal studies recorded before; SQLite still holds its runs to one."""
    data = load_dataset(tiny_data, subset=100)
    journal = f"journal:///{tmp_path / 'journal.log'}"
    open_study(_config(tiny_data, journal, subset=100), data)
    _study(journal, "lenet").set_user_attr("heartbeat_seconds", 2)  # as recorded before
    study = open_study(_config(tiny_data, journal, subset=100, heartbeat_seconds=30), data)
    assert study.user_attrs["heartbeat_seconds"] == 2
    open_study(_config(tiny_data, sqlite_url, subset=100), data)
    with pytest.raises(UserError, match="was made with --heartbeat 2, this run has --heartbeat 30"):
        open_study(_config(tiny_data, sqlite_url, subset=100, heartbeat_seconds=30), data)


def test_a_resume_says_when_the_architecture_changed_since_its_trials(tiny_data: Path, sqlite_url: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A study made before an architecture's code changed (the pooled dense head of large images) went on with
    other models than its old trials without a word; a resume without such a change says nothing."""
    import sqlite3

    run_study(_config(tiny_data, sqlite_url, subset=100, trials=1))
    run_study(_config(tiny_data, sqlite_url, subset=100, trials=2))
    assert "rebuilt" not in capsys.readouterr().err
    first = _study(sqlite_url, "lenet").trials[0]
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:  # as an older hpsearch built it
        connection.execute("UPDATE trial_user_attributes SET value_json = '123' WHERE trial_id = ? AND key = ?",
                           (first._trial_id, "n_params"))
    run_study(_config(tiny_data, sqlite_url, subset=100, trials=3))
    assert (f"note: trial 0 trained a model of 123 parameters; rebuilt by this hpsearch it has "
            f"{first.user_attrs['n_params']:,}, as the architecture changed since: this study's new trials are other "
            "models than its old ones") in capsys.readouterr().err
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:  # params an older space had
        connection.execute("DELETE FROM trial_params WHERE trial_id = ? AND param_name = 'variant'", (first._trial_id,))
    assert run_study(_config(tiny_data, sqlite_url, subset=100, trials=4)) == 0  # the resume goes on
    assert ("note: trial 0 no longer builds with this hpsearch (KeyError: 'variant'): the architecture changed "
            "since") in capsys.readouterr().err


def test_rerun_resumes_without_repeating_finished_trials(tiny_data: Path, sqlite_url: str) -> None:
    config = _config(tiny_data, sqlite_url, subset=100)
    run_study(config)
    before = {t.number: t.params for t in _study(sqlite_url, "lenet").trials}
    run_study(config)  # the same command: nothing left to do
    assert len(_study(sqlite_url, "lenet").trials) == 2
    run_study(dataclasses.replace(config, trials=4))
    after = _study(sqlite_url, "lenet").trials
    assert len(after) == 4 and {t.number: t.params for t in after[:2]} == before
    assert after[2].params != after[0].params  # the resumed sampler does not replay its first draws


def test_seed_models_run_first(tiny_data: Path, sqlite_url: str) -> None:
    seeds = spaces.get("lenet").SEED_MODELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_study(_config(tiny_data, sqlite_url, trials=len(seeds), subset=100, enqueue_seed_models=True))
    # The notebook's rates outside the search's ranges are intended: Optuna's warning about each reached the user.
    assert not [w for w in caught if "out of range" in str(w.message)]
    trials = _study(sqlite_url, "lenet").trials
    assert [t.user_attrs["seed_model"] for t in trials] == list(seeds)
    assert [model_params(t.params) for t in trials] == list(seeds.values())
    assert trials[0].user_attrs["n_params"] == 245_601
    run_study(_config(tiny_data, sqlite_url, trials=len(seeds), subset=100, enqueue_seed_models=True))
    assert len(_study(sqlite_url, "lenet").trials) == len(seeds)  # not queued twice


def test_an_interrupted_warm_start_is_queued_again_and_runs_first(tiny_data: Path, sqlite_url: str) -> None:
    study = optuna.create_study(study_name="lenet", storage=sqlite_url, direction="maximize")
    study.set_user_attr("arch", "lenet")  # as `study` records before its first trial
    enqueue_warm_start(study, "lenet")
    first = study.ask()  # the warm start, then Ctrl-C (as the objective records it)
    first.set_user_attr("fail_reason", "interrupted")
    study.tell(first, state=TrialState.FAIL)
    run_study(_config(tiny_data, sqlite_url, trials=1, subset=100))
    trials = _study(sqlite_url, "lenet").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["warm_start"] and model_params(trials[1].params) == spaces.get("lenet").DEFAULT
    enqueue_warm_start(_study(sqlite_url, "lenet"), "lenet")  # a study with a finished trial gets none
    assert len(_study(sqlite_url, "lenet").trials) == 2


def test_an_interrupt_while_the_params_are_sampled_is_recorded(tiny_data: Path, sqlite_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C can land before training starts: the trial still says it was interrupted and who ran it, so an
    interrupted warm start is queued again (it was lost: no fail_reason, and the resumed study sampled instead)."""
    lenet = spaces.get("lenet")

    def interrupted(trial: optuna.Trial, levers: bool = True) -> dict:
        raise KeyboardInterrupt

    study = optuna.create_study(study_name="lenet", storage=sqlite_url, direction="maximize")
    enqueue_warm_start(study, "lenet")
    monkeypatch.setattr(lenet, "suggest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(make_objective(lenet, load_dataset(tiny_data, subset=100), epochs=1, seed=1), n_trials=1)
    [trial] = study.trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "interrupted"
    assert trial.user_attrs["worker"] == owners.owner() and trial.user_attrs["warm_start"]
    enqueue_warm_start(study, "lenet")
    assert [t.user_attrs["warm_start"] for t in study.get_trials(states=(TrialState.WAITING,))] == [True]


def test_a_failed_seed_model_is_queued_again_by_the_same_command() -> None:
    seeds = spaces.get("lenet").SEED_MODELS
    study = optuna.create_study(direction="maximize")
    enqueue_seed_models(study, "lenet")
    first = study.ask()  # claims model1, which then fails (e.g. the run was interrupted)
    study.tell(first, state=TrialState.FAIL)
    enqueue_seed_models(study, "lenet")
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["seed_model"] for t in waiting) == sorted(seeds)  # model1 again, the rest once


def test_a_study_of_another_direction_is_not_taken_over(tiny_data: Path, sqlite_url: str) -> None:
    """A plain Optuna study minimizing something, under the architecture's name, is refused, not resumed."""
    optuna.create_study(study_name="lenet", storage=sqlite_url, direction="minimize")
    with pytest.raises(UserError, match="'lenet' optimizes minimize, not the maximize of --objective accuracy"):
        run_study(_config(tiny_data, sqlite_url, subset=100))
    assert "arch" not in _study(sqlite_url, "lenet").user_attrs


def test_pruner_stops_a_trial_after_its_report(tiny_data: Path) -> None:
    """A pruner that prunes everything below 101% accuracy stops the trial after epoch 1 of 3."""
    data = load_dataset(tiny_data, subset=100)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01))
    study.optimize(make_objective(spaces.get("lenet"), data, epochs=3, seed=1), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert len(trial.user_attrs["history"]) == 1 and list(trial.intermediate_values) == [1]


def test_a_trial_that_trained_all_its_epochs_is_complete_whatever_the_pruner(tiny_data: Path) -> None:
    """Pruned after its last epoch, a trial would keep its last epoch's accuracy, not its best, and be passed over."""
    data = load_dataset(tiny_data, subset=100)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01))
    study.optimize(make_objective(spaces.get("lenet"), data, epochs=1, seed=1), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and list(trial.intermediate_values) == [1]


def test_the_default_pruner_prunes_in_a_real_study(tiny_data: Path, sqlite_url: str) -> None:
    run_study(_config(tiny_data, sqlite_url, trials=5, epochs=3, subset=100, sampler="random"))
    states = [t.state for t in _study(sqlite_url, "lenet").trials]
    assert states.count(TrialState.PRUNED) >= 1 and states.count(TrialState.COMPLETE) >= 1


def test_nan_loss_fails_the_trial_within_the_first_epoch(tiny_data: Path) -> None:
    data = load_dataset(tiny_data, subset=100)
    data.x_train[0] = np.nan  # poisons the first batch's loss (tanh and average pooling keep the NaN)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(stored_params(spaces.get("lenet").SEED_MODELS["model1"]))
    study.optimize(make_objective(spaces.get("lenet"), data, epochs=5, seed=1), n_trials=1, catch=(Exception,))
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "TrialFailed: loss became nan in epoch 1"
    assert len(trial.user_attrs["history"]) == 1 and math.isnan(trial.user_attrs["history"][0]["loss"])


def test_no_training_callback_has_a_batch_hook() -> None:
    # Any batch hook (Keras' TerminateOnNaN has one) makes Keras 3 run every callback in step with training: on
    # JAX a host sync per step, which left hpsearch's model.fit path at 0.61x plain model.fit on an H200.
    import keras

    from search.callbacks import EpochHistory, EpochProgress, PruneDominated, PruneOnValAccuracy
    from search.objective import training_callbacks

    trial, history = optuna.create_study().ask(), EpochHistory()
    extras = [EpochProgress(history, lambda *args: None, 0, 1), PruneOnValAccuracy(trial, 1),
              PruneDominated(trial, history, 1)]
    callbacks = training_callbacks({"reduce_lr": True}, history, extras)
    assert len(callbacks) == 7  # history, the NaN and interrupt stops, the three above, ReduceLROnPlateau
    for callback in callbacks:
        for hook in ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end"):
            assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook), (callback, hook)


def test_study_name_holding_another_architecture_is_refused(tiny_data: Path, sqlite_url: str) -> None:
    run_study(_config(tiny_data, sqlite_url, trials=1, subset=50))
    with pytest.raises(UserError, match="holds arch 'lenet', not 'cnn'"):
        run_study(_config(tiny_data, sqlite_url, "cnn", trials=1, subset=50, study_name="lenet"))
    with pytest.raises(UserError, match="was made with --subset 50, this run has --subset 60; pass --subset 50 to"):
        run_study(_config(tiny_data, sqlite_url, trials=1, subset=60))


def test_study_name_holding_another_dataset_is_refused(tiny_data: Path, tiny_source: Path, tmp_path: Path,
                                                       sqlite_url: str) -> None:
    run_study(_config(tiny_data, sqlite_url, trials=1, subset=50))
    other = tmp_path / "fashion10"
    prepare(tiny_source, other, "fashion10")
    with pytest.raises(UserError, match="holds label_set 'fashion5', not 'fashion10'"):
        run_study(_config(other, sqlite_url, trials=2, subset=50))
    changed = tmp_path / "changed"
    shutil.copytree(tiny_data, changed)
    train = pd.read_csv(tiny_data / "train.csv")
    train.loc[0, "pixel0"] = 255 - train.loc[0, "pixel0"]  # one pixel of the first (training) image
    train.to_csv(changed / "train.csv", index=False)
    with pytest.raises(UserError, match=r"'lenet' ran on other training data \(fingerprint [0-9a-f]+; --data gives"):
        run_study(_config(changed, sqlite_url, trials=2, subset=50))
    assert len(_study(sqlite_url, "lenet").trials) == 1


def test_new_study_starts_from_the_default_configuration(tiny_data: Path, sqlite_url: str) -> None:
    run_study(_config(tiny_data, sqlite_url, trials=1, subset=50))
    first = _study(sqlite_url, "lenet").trials[0]
    assert model_params(first.params) == spaces.get("lenet").DEFAULT and first.user_attrs["warm_start"] is True
    run_study(_config(tiny_data, sqlite_url, trials=2, subset=50))  # a resumed study is not warm-started again
    assert "warm_start" not in _study(sqlite_url, "lenet").trials[1].user_attrs
    run_study(_config(tiny_data, sqlite_url, trials=1, subset=50, study_name="cold", warm_start=False))
    assert "warm_start" not in _study(sqlite_url, "cold").trials[0].user_attrs
