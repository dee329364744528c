"""`hpsearch study` from start to summary: check, load data, open the study, run workers, report."""
from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import time
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.config import DEFAULT_STORAGE, JOURNAL_PREFIX, StudyConfig
from search.console import Console, counted, format_params
from search.data import Dataset, has_test, load_dataset, load_test, parse_image_size
from search.masking import display_url
from search.overlap import in_forked_process
from search.owners import fail_orphans, running
from search.records import confirmations, searched_epochs, seconds_with_compilation, trained_ways, training_way
from search.runtime import device_name, slow_loop_note, training_details, training_line, use_backend
from search.signals import ending, sigterm_as_interrupt
from search.storage import GRACE_PERIODS, storage_loss_said
from search.study import count, enqueue_seed_models, enqueue_warm_start, open_study, run_worker
from search.winners import accuracy_text, unconfirmed_note, winner
from search.workers import STOPPED_ON_FAILURES, default_workers, run_workers
from spaces.param_names import model_params

# TensorFlow keeps ~13 MB per fitted model even after clear_session (measured: 803 -> 1064 MB over 20 tiny
# fits in plain Keras; one LeNet configuration repeated in one process: 14-15 MB a trial for the default, 20 MB
# with augmentation or the larger variant, 25 MB with both; neither gc nor malloc_trim gave it back), so after
# the first this many trials a long search goes on in rounds of fresh worker processes of this many trials each.
TRIALS_PER_PROCESS = 15


def _failures(config: StudyConfig) -> str:
    """Why a search stopped on failed trials."""
    return f"{config.max_failures} failed trials in a run (see fail_reason in `hpsearch trials`)"


def _run_trials(config: StudyConfig, study: optuna.Study, data: Dataset) -> str | None:
    """Run the missing trials (one worker: the first round in this process, the rest in rounds of fresh worker
    processes); why it stopped early, if it did."""
    remaining, workers = config.trials - count(study), config.worker_count
    if workers == 1:
        # The first round runs in this process: a fresh one would import Keras and load the data again before
        # its first epoch (seconds a user waits for the first result).
        if run_worker(config, min(remaining, TRIALS_PER_PROCESS), data, study=study).stopped_on_failures:
            return _failures(config)
        remaining = config.trials - count(study)
    while remaining > 0:
        if config.deadline is not None and time.time() >= config.deadline:
            break
        before = count(study)
        codes = run_workers(config, min(remaining, workers * TRIALS_PER_PROCESS))
        if STOPPED_ON_FAILURES in codes:
            return _failures(config)
        crashed = [code for code in codes if code != 0]
        if crashed:
            workers_ended = counted(len(crashed), "worker process", "worker processes")
            return (f"{workers_ended} ended early ({', '.join(map(ending, crashed))}); run the same command again "
                    "to run the rest")
        if count(study) == before:
            break  # a round that finished nothing (e.g. workers killed): don't spin
        remaining = config.trials - count(study)
    return None


def _same_study_options(config: StudyConfig) -> str:
    """The --storage and --study-name that make another command open this study, quoted for a shell."""
    storage = ""  # the storage the next command gets without --storage needs none
    if config.storage != (os.environ.get("HPSEARCH_STORAGE") or DEFAULT_STORAGE):
        # A password is never shown, so a URL holding one cannot be pasted back: the variable can hold it.
        masked = display_url(config.storage) != config.storage
        storage = ' --storage "$HPSEARCH_STORAGE"' if masked else f" --storage {shlex.quote(config.storage)}"
    return storage + ("" if config.name == config.arch else f" --study-name {shlex.quote(config.name)}")


def run_study(config: StudyConfig) -> int:
    """Run the study described by config to its trial target; return the exit code (SIGTERM stops it
    like Ctrl-C: running trials are recorded as interrupted)."""
    config.check()
    if config.timeout is not None and config.deadline is None:  # counted from now, Keras' import and data included
        config = dataclasses.replace(config, deadline=time.time() + config.timeout)
    with sigterm_as_interrupt(), storage_loss_said(config.storage):
        return _run_study(config)


def prepare_study(config: StudyConfig) -> Dataset:
    """Everything of a study's start that needs no Keras: load and check the data (testX too: found now rather
    than at export, hours later), then create or resume the study, checking that it searched this data."""
    data = load_dataset(Path(config.data_dir), config.subset, parse_image_size(config.image_size))
    if has_test(Path(config.data_dir)):
        load_test(Path(config.data_dir), data.input_shape)
    with storage_loss_said(config.storage):  # here: an error's chain is lost on its way out of a forked process
        open_study(config, data)  # the data is valid before any storage is touched
    return data


def for_device(config: StudyConfig, backend: str, device: str, data_mib: float = 0.0) -> StudyConfig:
    """config with the backend and what it left open chosen for the device: on a GPU with JAX the on-device loop
    (one compiled program per epoch; on CPU it is slower) and several workers sharing the card (each leaves it
    idle while it compiles or reports; `data_mib` of data in each); elsewhere model.fit and one process."""
    jax_gpu = backend == "jax" and device != "cpu"
    return dataclasses.replace(
        config, backend=backend, device_loop=config.device_loop if config.device_loop is not None else jax_gpu,
        workers=config.workers if config.workers is not None else default_workers(jax_gpu, data_mib))


def _check_precision(config: StudyConfig) -> None:
    """Refuse a precision this device computes wrongly (search.objective.check_precision), importing Keras."""
    use_backend(config.backend)
    from search.objective import check_precision  # imports Keras: only once the backend is chosen

    check_precision(config.precision)


def _run_study(config: StudyConfig) -> int:
    """run_study's body."""
    if config.precision != "float32":
        # Its check runs a model: a refused precision must find no study written, so Keras comes first here
        # (with Keras imported, the preparation below runs in this process, after it).
        _check_precision(config)
    # Importing Keras takes seconds of one core; a forked process loads the data and opens the storage meanwhile
    # (measured with bench/first_result.py, BENCHMARKS.md).
    with in_forked_process(functools.partial(prepare_study, config), "preparing the data and the storage") as prepared:
        backend = use_backend(config.backend)
        device = device_name()
        data = prepared()
    config = for_device(config, backend, device, (data.x_train.nbytes + data.x_val.nbytes) / 2**20)  # workers too
    device_loop, workers = bool(config.device_loop), config.worker_count
    study = open_study(config, data, checked=True)
    console = Console(config.quiet)
    if config.fail_orphans:
        failed = fail_orphans(study)
        console.say(f"marked {counted(len(failed), 'orphaned RUNNING trial')} failed: {failed}")
    if config.enqueue_seed_models:  # the notebook's models, when asked for, are the study's first trials
        enqueue_seed_models(study, config.arch)
    elif config.warm_start:
        enqueue_warm_start(study, config.arch)
    # --max-failures counts the trials that fail from here on, in every worker and round of this run.
    config = dataclasses.replace(config, failed_before=count(study, (TrialState.FAIL,)))
    remaining = config.trials - count(study)
    # Said because a rerun without --objective takes the study's own.
    kind = " (accuracy-time: accuracy up, steady seconds down)" if config.accuracy_time else ""
    console.say(f"study {config.name!r}{kind} in {display_url(config.storage)}: "
                f"{counted(count(study), 'finished trial')}, {max(remaining, 0)} to run; {len(data.x_train)} training "
                f"/ {len(data.x_val)} validation images, {data.num_classes} classes ({data.label_set}) of "
                f"{'x'.join(map(str, data.input_shape))} images")
    earlier = sorted(searched_epochs(study) - {config.epochs}) if remaining > 0 else []
    if earlier:  # a resumed study with another --epochs: its trials are ranked together
        one_epoch = "; a 1-epoch trial's seconds include its compilation" if 1 in (*earlier, config.epochs) else ""
        ranked = (f"share one Pareto front, where more epochs take more seconds{one_epoch}" if config.accuracy_time
                  else "are ranked together by their best validation accuracy")
        console.warn(f"note: complete trials of this study ran {', '.join(map(str, earlier))} "
                     f"epoch{'s' * (earlier != [1])}, these run {config.epochs}; all {ranked}")
    this_way = training_way(backend, device, device_loop, config.precision)
    other_ways = sorted(trained_ways(study) - {this_way}) if remaining > 0 else []
    if other_ways:  # e.g. resumed with another --backend: ranked together, though drawn and timed otherwise
        console.warn(f"note: finished trials of this study trained with {'; '.join(other_ways)}; these train with "
                     f"{this_way}. All are ranked together by their best validation accuracy; their random draws "
                     "and seconds differ")
    compiled = seconds_with_compilation(study) if remaining > 0 else []
    if compiled:  # Optuna cannot change a finished trial's values, so the two measures would share one front
        console.warn(f"note: {counted(len(compiled), 'complete trial')} of this study recorded seconds with epoch 1's "
                     "compilation (an earlier hpsearch); these count epoch 1 at epoch 2's pace, so the front favours "
                     "them. A new --study-name gives a like-for-like front")
    from search.objective import resumed_architecture_note  # imports Keras, started above on the chosen backend

    if remaining > 0 and (note := resumed_architecture_note(study, config.arch, data)):
        console.warn(note)
    how = [*training_details(device_loop, config.precision),
           *([f"{min(workers, remaining)} workers"] if min(workers, remaining) > 1 else [])]
    console.say(training_line(device, backend, how))
    if note := slow_loop_note(device_loop, device):
        console.warn(note)
    stopped_because = _run_trials(config, study, data) if remaining > 0 else None
    states = Counter(t.state for t in study.get_trials(deepcopy=False))  # one read of the storage
    finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
    live, orphans = running(study)
    best = winner(study)
    console.result(f"study {config.name!r}: {counted(finished, 'finished trial')} "
                   f"({states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned), "
                   f"{states[TrialState.FAIL]} failed")
    if best is not None:
        console.result(f"best: trial {best.number}, {accuracy_text(best, confirmations(study))}, "
                       f"params {format_params(model_params(best.params))}")
        if note := unconfirmed_note(study):
            console.warn(note)
    where = _same_study_options(config)
    console.result(f"results: {display_url(config.storage)} (study {config.name!r}); see `hpsearch trials {config.arch}"
          f"{where}`, export with `hpsearch export-best {config.arch}{where}`")
    if "$HPSEARCH_STORAGE" in where:
        console.result("  (with HPSEARCH_STORAGE set to this storage's URL: it holds a password, which is never shown)")
    if stopped_because:
        console.warn(f"stopped: {stopped_because}")
        return 1
    if orphans:
        one = len(orphans) == 1
        console.warn(f"found {counted(len(orphans), 'RUNNING trial')} with no live worker (trial{'s' * (not one)} "
                     f"{', '.join(str(t.number) for t in orphans)}): {'it does' if one else 'they do'} not count "
                     f"toward --trials; run the same command with --fail-orphans to mark {'it' if one else 'them'} "
                     "failed" + ("" if config.storage.startswith(JOURNAL_PREFIX) else  # a storage with heartbeats
                                 " (on this storage, a trial whose worker's heartbeats stopped is also failed and "
                                 f"retried by a run from {GRACE_PERIODS * config.heartbeat_seconds} s after its last "
                                 "beat)"))
    if finished < config.trials and live:
        console.warn(f"{counted(len(live), 'trial')} still running in other processes or machines")
    elif finished < config.trials and config.timeout is not None:
        console.warn(f"--timeout {config.timeout:g} s reached with {finished} of --trials {config.trials} finished; "
                     "run the same command again to add the rest")
    # Short of the target with no live trial elsewhere and no timeout: workers died; say so in the exit code.
    return 0 if finished + len(live) >= config.trials or config.timeout is not None else 1
