"""The study and trial records, the winner, the retrain plan, the worker stop rule, the split of trials
over workers, how many there are and why a round of them stopped: plain logic on in-memory Optuna studies, no Keras."""
from __future__ import annotations

import dataclasses
import io
import json
import math
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

import search.owners
import search.runner
import search.workers
from search import records, winners
from search.config import StudyConfig
from search.errors import UserError
from search.records import Confirmation, StudyRecord, TrialRecord, confirmations, retrain_plan, save_confirmation
from search.study import WorkerQuota, worker_done
from search.tables import trials_frame
from search.winners import winner
from search.workers import (
    STOPPED_ON_FAILURES,
    _shares,
    default_workers,
    gpu_memory_mib,
    read_share,
    worker_environment,
)

HISTORY = [{"epoch": 1, "loss": 1.0, "val_accuracy": 0.5, "learning_rate": 0.01, "seconds": 2.0},
           {"epoch": 2, "loss": 0.5, "val_accuracy": 0.7, "learning_rate": 0.01, "seconds": 1.0},
           {"epoch": 3, "loss": 0.4, "val_accuracy": 0.6, "learning_rate": 0.005, "seconds": 1.0}]


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(direction="maximize")


def _trial(study: optuna.Study, value: float | None, state: TrialState = TrialState.COMPLETE, **record: object
           ) -> int:
    """Add a trial with params {"x": value} and the given record fields; return its number."""
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    records.update(trial, **record)
    study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    return trial.number


def test_trial_record_round_trips_through_a_study() -> None:
    study = _study()
    written = TrialRecord(history=HISTORY, train_seconds=4.0, n_params=123, layers={"conv": 2, "pooling": 1,
                          "dense": 2}, best_epoch=2, seed=7, backend="jax", device="cpu", device_loop=True,
                          rss_mb=512.5, fail_reason="", worker="host:1", seed_model="model1", warm_start=True, epochs=9)
    fields = {name: value for name, value in vars(written).items()}
    number = _trial(study, 0.7, **fields)
    read = TrialRecord.of(study.get_trials(deepcopy=False)[number])
    assert read == written


def test_a_trial_without_a_record_reads_the_defaults_and_foreign_attributes_are_ignored() -> None:
    study = _study()
    trial = study.ask()
    trial.set_user_attr("someone_elses", 1)
    study.tell(trial, 0.5)
    assert TrialRecord.of(study.trials[0]) == TrialRecord()


def test_writing_an_unknown_field_is_refused() -> None:
    trial = _study().ask()
    with pytest.raises(KeyError, match="histroy"):
        records.update(trial, histroy=[])
    with pytest.raises(KeyError):
        records.enqueued(seed_modle="model1")


def test_study_record_round_trips_and_a_resumed_study_must_match() -> None:
    study = _study()
    record = StudyRecord(arch="cnn", data_fingerprint="abc", label_set="fashion5", subset=300, image_size="28x28",
                         class_names=("a", "b"), data_dir="/srv/fashion", heartbeat_seconds=10)
    record.attach(study)
    assert StudyRecord.of(study) == record
    record.attach(study)  # the same search again: fine
    StudyRecord(**{**vars(record), "class_names": ("renamed",)}).attach(study)  # names are not identity
    StudyRecord(**{**vars(record), "data_dir": "/elsewhere"}).attach(study)  # the same data in another folder
    assert StudyRecord.of(study).data_dir == "/srv/fashion"  # the folder it was made with
    resume = "to resume it, or choose another --study-name"
    with pytest.raises(UserError, match=r"other training data \(fingerprint abc; --data gives xyz\); pass --data "
                       rf"/srv/fashion \(its folder\) {resume}"):  # from another folder
        StudyRecord(**{**vars(record), "data_fingerprint": "xyz", "data_dir": "/elsewhere"}).attach(study)
    for field, other, said in (
            ("arch", "lenet", "holds arch 'cnn', not 'lenet'"),
            # From its own folder: "pass --data" would name the very folder the run used.
            ("data_fingerprint", "xyz", r"other training data \(fingerprint abc; --data gives xyz\); its folder "
             "/srv/fashion now holds other data: restore that, or choose another --study-name"),
            ("subset", None, f"was made with --subset 300, this run has no --subset; pass --subset 300 {resume}"),
            ("subset", 50, "was made with --subset 300, this run has --subset 50; pass --subset 300"),
            ("image_size", "32x32", f"made with --image-size 28x28, this run has --image-size 32x32; pass "
             f"--image-size 28x28 {resume}"),
            # A run judging heartbeats by 10 s failed the live trials of a run beating every 60 s.
            ("heartbeat_seconds", 60, f"made with --heartbeat 10, this run has --heartbeat 60; pass --heartbeat 10 "
             f"{resume}"),
            # Resumed without --no-levers, a study got the levers back without a word.
            ("levers", False, "searched with the accuracy levers; pass --levers, or choose")):
        with pytest.raises(UserError, match=said):
            StudyRecord(**{**vars(record), field: other}).attach(study)


def test_a_study_without_a_record_reads_its_name_as_the_architecture() -> None:
    study = optuna.create_study(study_name="lenet")
    assert StudyRecord.of(study).arch == "lenet" and records.replay_scale(study) is None


def test_replays_are_not_searches() -> None:
    search, replay = _study(), _study()
    for study in (search, replay):
        study.set_user_attr("arch", "cnn")
    records.mark_replay(replay, 0.5)
    assert records.is_search(search, ["cnn"]) and not records.is_search(replay, ["cnn"])
    assert records.replay_scale(replay) == 0.5 and not records.is_search(search, ["lenet"])


def test_winner_is_the_best_trial_until_confirm_then_the_best_mean() -> None:
    study = _study()
    assert winner(study) is None
    with pytest.raises(UserError, match="no complete trial"):
        winners.require_winner(study)
    lucky = _trial(study, 0.9)
    steady = _trial(study, 0.85)
    _trial(study, None, TrialState.PRUNED)
    assert winner(study).number == lucky == study.best_trial.number
    for number, scores in ((lucky, (0.9, 0.7)), (steady, (0.85, 0.84))):
        for seed, score in enumerate(scores, start=1):
            save_confirmation(study, number, seed, score)
    assert winner(study).number == steady
    assert confirmations(study)[steady].mean == pytest.approx(0.845)
    assert confirmations(study)[lucky].std == pytest.approx(0.1414, abs=1e-4)
    assert math.isnan(records.Confirmation([1], [0.9]).std)  # one run: its spread is unknown, not 0


def test_studies_are_compared_by_their_winners_confirmed_mean() -> None:
    """After confirm a study's winner is its best mean over seeds, whose single run may be below another study's
    winner: the report's comparison ranked, and the glance chose, studies by that single run."""
    from search.notebook import _search_columns
    from search.report import comparison

    confirmed, plain = (optuna.create_study(direction="maximize", study_name=name) for name in ("confirmed", "plain"))
    for study in (confirmed, plain):
        study.set_user_attr("arch", "lenet")
    number = _trial(confirmed, 0.80)
    for seed, score in enumerate((0.80, 0.84, 0.86), start=1):
        save_confirmation(confirmed, number, seed, score)
    _trial(plain, 0.82)
    assert winners.judged_value(confirmed, winner(confirmed)) == pytest.approx(0.8333, abs=1e-4)
    assert winners.judged_value(plain, winner(plain)) == 0.82
    table = comparison([plain, confirmed])
    assert list(table["study"]) == ["confirmed", "plain"] and "judged" not in table
    assert _search_columns([plain, confirmed])["search_study"] == "confirmed"


def test_trials_that_beat_the_confirmed_mean_unconfirmed_are_named() -> None:
    study = _study()
    assert winners.unconfirmed_note(study) == ""  # nothing confirmed: the winner is the best single run
    confirmed = _trial(study, 0.85)
    save_confirmation(study, confirmed, 1, 0.85)
    save_confirmation(study, confirmed, 2, 0.83)
    _trial(study, 0.835)  # below the confirmed mean, 0.84: not ahead
    assert winners.unconfirmed_note(study) == ""
    later = _trial(study, 0.86)  # ran after the confirm
    note = winners.unconfirmed_note(study)
    assert f"trial {later} beat it" in note and "(0.8400)" in note and "is not confirmed" in note
    study.set_user_attr("arch", "cnn")  # the command to run names the study: its architecture, and its name
    assert f"run `hpsearch confirm cnn --study-name {study.study_name}` again to judge it by its mean" in \
        winners.unconfirmed_note(study)
    assert winner(study).number == confirmed  # the note says why the winner stays


def test_two_confirms_on_one_study_keep_each_others_runs(tmp_path: Path) -> None:
    """Two `confirm` processes (two handles on one storage, each opened before the other wrote) add their runs
    side by side; each trial's seeds come back in order, the trial's own run first."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = optuna.create_study(storage=url, study_name="s", direction="maximize")
    second = optuna.load_study(storage=url, study_name="s")
    save_confirmation(first, 0, 1, 0.80)
    save_confirmation(second, 3, 1, 0.70)
    save_confirmation(second, 0, 3, 0.78)
    save_confirmation(first, 0, 2, 0.82)
    assert confirmations(optuna.load_study(storage=url, study_name="s")) == {
        0: Confirmation([1, 2, 3], [0.80, 0.82, 0.78]), 3: Confirmation([1], [0.70])}


def test_confirmations_stored_in_one_attribute_before_still_read() -> None:
    study = _study()
    study.set_user_attr("confirmed", {"4": {"seeds": [7, 8], "scores": [0.6, 0.62]}})  # as confirm stored them
    save_confirmation(study, 4, 9, 0.64)  # a later confirm adds a seed
    assert confirmations(study) == {4: Confirmation([7, 8, 9], [0.6, 0.62, 0.64])}


def test_retrain_plan_uses_the_best_epoch_seed_precision_and_the_device_loop_only_on_jax() -> None:
    study = _study()
    study.set_user_attr("arch", "lenet")
    number = _trial(study, 0.7, history=HISTORY, best_epoch=2, seed=11, device_loop=True, precision="bfloat16")
    trial = study.get_trials(deepcopy=False)[number]
    plan = retrain_plan(study, trial, "jax")
    assert (plan.arch, plan.seed, plan.epochs, plan.device_loop, plan.precision) == ("lenet", 11, 2, True, "bfloat16")
    assert plan.params == trial.params
    assert not retrain_plan(study, trial, "tensorflow").device_loop  # the loop exists only on JAX
    assert retrain_plan(study, trial, "jax", epochs=5).epochs == 5
    assert not plan.shuffle  # a trial recorded before shuffling was recorded did not shuffle
    shuffled = _trial(study, 0.7, history=HISTORY, best_epoch=2, shuffle=True)
    assert retrain_plan(study, study.get_trials(deepcopy=False)[shuffled], "jax").shuffle  # --shuffle retrains so


def test_retrain_plan_keeps_the_trials_schedule_span() -> None:
    """Stopping at the best epoch must not squeeze a cosine or one-cycle schedule into fewer epochs."""
    study = _study()
    study.set_user_attr("arch", "lenet")
    number = _trial(study, 0.7, history=[*HISTORY, *HISTORY], best_epoch=2)
    trial = study.get_trials(deepcopy=False)[number]
    plan = retrain_plan(study, trial, "tensorflow")
    assert (plan.epochs, plan.schedule_epochs) == (2, 2 * len(HISTORY))
    assert (retrain_plan(study, trial, "tensorflow", epochs=7).schedule_epochs) == 7


@pytest.mark.parametrize(("finished", "failed", "done"), [(0, 0, False), (2, 0, False), (3, 0, True), (0, 4, True),
                                                          (2, 3, False), (5, 9, True)])
def test_worker_stops_after_its_quota_or_too_many_failures(finished: int, failed: int, done: bool) -> None:
    assert worker_done(finished, failed, quota=3, max_failures=4) is done


def test_failures_of_every_worker_since_the_run_began_count_toward_the_limit() -> None:
    study = _study()
    for _ in range(2):  # failed before this run: not counted
        _trial(study, None, TrialState.FAIL)
    quota = WorkerQuota(quota=10, max_failures=3, failed_before=2)
    _trial(study, None, TrialState.FAIL)  # another worker's failure in this run

    def broken(trial: optuna.Trial) -> float:
        raise RuntimeError("broken")

    study.optimize(broken, n_trials=10, catch=(RuntimeError,), callbacks=[quota])
    # With only its own failures counted, this worker would have run 3 (and K workers 3 each).
    assert len(study.trials) == 2 + 1 + 2 and quota.stopped_on_failures
    # A worker whose trials go well stops too once the others' failures reach the limit: it ran its whole share.
    study = _study()
    quota = WorkerQuota(quota=10, max_failures=3)

    def fine_while_others_fail(trial: optuna.Trial) -> float:
        if trial.number == 1:  # meanwhile the other workers' trials failed, three in all
            for _ in range(3):
                _trial(study, None, TrialState.FAIL)
        return 0.5

    study.optimize(fine_while_others_fail, n_trials=10, callbacks=[quota])
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2 and quota.stopped_on_failures


@pytest.mark.parametrize(("total", "workers", "shares"), [(10, 3, [4, 3, 3]), (2, 4, [1, 1]), (6, 1, [6]),
                                                          (0, 2, [])])
def test_trials_are_split_evenly_over_workers_with_no_empty_share(total: int, workers: int, shares: list[int]) -> None:
    assert _shares(total, workers) == shares and sum(shares) == total


def test_each_worker_gets_its_share_of_gpu_memory_unless_the_user_set_one() -> None:
    assert worker_environment(4, {"PATH": "/bin"}) == {"PATH": "/bin", "XLA_CLIENT_MEM_FRACTION": "0.225"}
    for name in ("XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION"):  # JAX refuses both names at once
        assert worker_environment(4, {name: "0.5"}) == {name: "0.5"}


@pytest.mark.parametrize(("memory_mib", "data_mib", "workers"), [
    (143_771, 0, 4), (81_559, 0, 4), (24_576, 0, 2), (16_384, 0, 1), (None, 0, 1),
    (81_559, 10_000, 4), (81_559, 20_000, 2), (24_576, 20_000, 1)])  # the on-device loop keeps the data there too
def test_a_jax_gpu_gets_as_many_workers_as_its_memory_holds(memory_mib: int | None, data_mib: float, workers: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search.workers, "gpu_memory_mib", lambda: memory_mib)
    assert default_workers(jax_gpu=True, data_mib=data_mib) == workers
    assert default_workers(jax_gpu=False, data_mib=data_mib) == 1  # CPU cores are not shared the same way


def test_gpu_memory_is_the_visible_cards_from_nvidia_smi_or_unknown(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    monkeypatch.setenv("PATH", str(tmp_path))
    # Card 1 is a 24-GB one; the others answer as an H200 does, or a card split into MIG slices.
    for script, visible, memory in (
            ('[ "$2" = 1 ] && echo "24576, Disabled" || echo "143771, [N/A]"', None, 143_771),
            ('[ "$2" = 1 ] && echo "24576, Disabled" || echo "143771, [N/A]"', "1,0", 24_576),
            ('echo "81559, Enabled"', None, None),
            ("echo 'No devices were found'; exit 6", None, None),
            ("echo garbage", None, None)):
        fake.write_text(f"#!/bin/sh\n{script}\n")
        fake.chmod(0o755)
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert gpu_memory_mib() == memory, script
    for hidden in ("", "MIG-4f1c2d3e-0000-0000-0000-000000000000"):  # no GPU; a MIG slice
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert gpu_memory_mib() is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    fake.unlink()
    assert gpu_memory_mib() is None  # no nvidia-smi at all


@pytest.mark.parametrize(("backend", "device", "asked", "chosen"), [
    ("jax", "NVIDIA H200", {}, {"device_loop": True, "workers": 4}),
    ("jax", "NVIDIA H200", {"device_loop": False, "workers": 1}, {"device_loop": False, "workers": 1}),
    ("jax", "cpu", {}, {"device_loop": False, "workers": 1}),
    ("tensorflow", "NVIDIA H200", {}, {"device_loop": False, "workers": 1}),  # TensorFlow would take the card
    ("tensorflow", "cpu", {"workers": 2}, {"device_loop": False, "workers": 2}),
])
def test_what_a_study_leaves_open_is_chosen_for_the_device(backend: str, device: str, asked: dict[str, object],
                                                           chosen: dict[str, object],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search.workers, "gpu_memory_mib", lambda: 143_771)
    config = search.runner.for_device(StudyConfig(arch="cnn", **asked), backend, device)  # type: ignore[arg-type]
    assert (config.backend, config.device_loop, config.workers) == (backend, chosen["device_loop"], chosen["workers"])


def test_the_card_is_split_over_the_worker_processes_that_start(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, str]] = []

    class Started:
        """A worker process that does nothing; its environment is kept."""

        def __init__(self, command: list[str], env: dict[str, str], **options: object) -> None:
            started.append(env)
            self.stdin = io.BytesIO()

        def wait(self) -> int:
            """Finished at once."""
            return 0

    for name in search.workers.GPU_MEMORY_FRACTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(search.workers.subprocess, "Popen", Started)
    assert search.workers.run_workers(StudyConfig(arch="lenet", workers=4), remaining=2) == [0, 0]
    # 2 trials left for 4 workers: 2 processes, each with half of the 0.9 (not a quarter, leaving half idle)
    assert [env["XLA_CLIENT_MEM_FRACTION"] for env in started] == ["0.450", "0.450"]


def test_the_timeout_is_one_deadline_from_the_commands_start_for_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each worker counted --timeout from its own start, after importing Keras and loading the data, and each round
    of workers from the round's: `--workers 2 --timeout 3` started its trials 8-10 s after the command."""
    seen: list[StudyConfig] = []
    monkeypatch.setattr(search.runner, "_run_study", lambda config: seen.append(config) or 0)
    before = time.time()
    assert search.runner.run_study(StudyConfig(arch="lenet", timeout=50, workers=2)) == 0
    assert seen[0].deadline is not None and before + 50 <= seen[0].deadline <= time.time() + 50
    payload = json.dumps({**dataclasses.asdict(seen[0]), "quota": 1, "worker": 0})
    assert read_share(payload)[0].deadline == seen[0].deadline  # what a worker's trial loop counts down to


@pytest.mark.parametrize(("codes", "says"), [
    ([0, STOPPED_ON_FAILURES], "4 failed trials in a run"),
    ([0, 1], "1 worker process ended early (exit code 1: an error, see the output above); run the same command"),
    ([-9, 130], "2 worker processes ended early (killed by SIGKILL, interrupted); run the same command again"),
])
def test_a_round_of_workers_says_why_it_stopped(codes: list[int], says: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A crashed worker is not "too many failed trials": the message must say which it was.
    monkeypatch.setattr(search.runner, "run_workers", lambda config, remaining: codes)
    config = StudyConfig(arch="lenet", trials=5, workers=2, max_failures=4)
    reason = search.runner._run_trials(config, _study(), data=None)  # type: ignore[arg-type]
    assert reason is not None and says in reason


def test_trials_failed_by_the_heartbeat_check_say_so() -> None:
    """Optuna fails a silent worker's trial from another process, which cannot write its fail_reason; its retry
    names it. A retry that goes silent too is not retried again (max_retry=1)."""
    study = optuna.create_study()
    failed = TrialState.FAIL
    study.add_trial(optuna.trial.create_trial(state=failed))
    study.add_trial(optuna.trial.create_trial(state=failed, system_attrs={"failed_trial": 0, "retry_history": [0]}))
    study.add_trial(optuna.trial.create_trial(state=failed, user_attrs={"fail_reason": "interrupted"}))
    study.add_trial(optuna.trial.create_trial(state=failed))  # failed by something else, never retried
    assert list(trials_frame(study)["fail_reason"]) == [
        "stale: its worker stopped sending heartbeats (retried as trial 1)",
        "stale: its worker stopped sending heartbeats (not retried again)", "interrupted", ""]


def test_a_waiting_trial_shows_no_measurements_yet() -> None:
    """An enqueued notebook model showed 0.000 seconds and 0 params in `hpsearch trials` before it ran."""
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs={
        "train_seconds": 1.5, "n_params": 10, "best_epoch": 1, "history": [{"epoch": 1, "val_accuracy": 0.5}]}))
    study.enqueue_trial({}, user_attrs=records.enqueued(seed_model="model5"))
    table = trials_frame(study)
    assert list(table["state"]) == ["COMPLETE", "WAITING"] and list(table["seed_model"]) == ["", "model5"]
    assert list(table["train_seconds"]) == [1.5, ""] and list(table["n_params"]) == [10, ""]
    # Nor once failed without running (left waiting by an interrupted replay; a worker's orphan, whose last writes
    # never came): it showed 0.000 seconds, 0 params and best epoch 0 as if measured.
    search.owners.fail(study, study.trials[1], "left waiting by an interrupted replay of other models")
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"worker": "h:1", "history": []}))
    # Nor one stopped before its first epoch, whose zeros were written (interrupted while its model was built).
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={
        "history": [], "train_seconds": 0.0, "n_params": 0, "best_epoch": 0, "fail_reason": "interrupted"}))
    table = trials_frame(study)
    assert list(table["state"]) == ["COMPLETE", "FAIL", "FAIL", "FAIL"]
    assert [list(table[column]) for column in ("train_seconds", "n_params", "best_epoch")] == [
        [1.5, "", "", ""], [10, "", "", ""], [1, "", "", ""]]


def test_the_trials_table_keeps_whole_params_whole_beside_a_trial_without_params() -> None:
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(
        value=0.9, params={"batch_size": 64}, distributions={"batch_size": CategoricalDistribution([32, 64])}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))  # failed before it sampled anything
    table = trials_frame(study)
    assert list(table["batch_size"]) == [64, ""] and "64.0" not in table.to_string()


def test_the_trials_table_says_how_each_trial_trained_where_they_differ() -> None:
    """A study resumed on another backend or device: `trained` tells its trials apart; one way needs no column."""
    study = optuna.create_study(direction="maximize")
    tensorflow = {"backend": "tensorflow", "device": "cpu"}
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs=tensorflow))
    study.add_trial(optuna.trial.create_trial(value=0.6, user_attrs=tensorflow))
    assert "trained" not in trials_frame(study)
    study.add_trial(optuna.trial.create_trial(value=0.7, user_attrs={
        "backend": "jax", "device": "gpu", "device_loop": True, "precision": "bfloat16"}))
    study.enqueue_trial({})
    assert list(trials_frame(study)["trained"]) == [
        "tensorflow on cpu", "tensorflow on cpu", "jax on gpu, on-device training loop, bfloat16", ""]


def test_the_backend_a_study_trained_on_is_its_finished_trials_one() -> None:
    """export-best and confirm retrain on it by default: the one backend, or the winner's in a study resumed on
    another (a review's: it retrained its JAX winner on TensorFlow); none where no finished trial recorded one."""
    study = optuna.create_study(direction="maximize")
    assert winners.trained_backend(study) is None
    for backend, state in (("jax", TrialState.COMPLETE), ("tensorflow", TrialState.FAIL), ("jax", TrialState.PRUNED)):
        study.add_trial(optuna.trial.create_trial(state=state, value=0.5 if state != TrialState.FAIL else None,
                                                  user_attrs={"backend": backend}))
    assert winners.trained_backend(study) == "jax"  # the failed trial does not count
    study.add_trial(optuna.trial.create_trial(value=0.6, user_attrs={"backend": "tensorflow"}))
    assert winners.trained_backend(study) == "tensorflow"  # the winner's
    study.add_trial(optuna.trial.create_trial(value=0.7, user_attrs={"backend": "jax"}))
    assert winners.trained_backend(study) == "jax"
    trial = study.trials[0]
    assert records.other_backend_note(trial, "jax") == ""
    assert records.other_backend_note(trial, "tensorflow").startswith("trial 0 trained on jax; this retrains it on "
                                                                      "tensorflow")
