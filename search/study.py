"""Creating and resuming studies and running trials in one or K workers (sampler and pruner: search.sampling)."""
from __future__ import annotations

import dataclasses
import shlex
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import spaces
from search import records
from search.config import DIRECTIONS, JOURNAL_PREFIX, StudyConfig
from search.console import Console
from search.data import Dataset, image_size_text, load_dataset, parse_image_size
from search.errors import NoStudies, UserError
from search.records import FINISHED, StudyRecord, TrialRecord, replay_scale, require_made_here
from search.sampling import FirstTrialSeeded, make_pruner
from search.signals import interrupted
from search.storage import lost_reason, open_storage, storage_loss_said
from spaces.param_names import stored_params

if TYPE_CHECKING:
    from search.objective import Values  # imports Keras


def open_study(config: StudyConfig, data: Dataset, *, checked: bool = False,
               replay: bool = False) -> optuna.Study:
    """Create or resume the study; a resumed one must have searched this architecture and dataset, in the same
    direction(s), and be a search (or with `replay`, a notebook replay or new).

    `checked`: this run has just opened it (search.runner's forked preparation), so the storage's tables and
    schema version need no second check."""
    storage = open_storage(config.storage, config.heartbeat_seconds, checked=checked)
    directions = list(DIRECTIONS[config.objective])
    # The dominance rule runs in the objective (search.callbacks): Optuna's pruners need one objective.
    pruner = make_pruner("none" if config.accuracy_time else config.chosen_pruner, config.epochs)
    study = optuna.create_study(storage=storage, study_name=config.name, directions=directions,
                                load_if_exists=True, pruner=pruner, sampler=optuna.samplers.RandomSampler())
    # A new study gets its record below; so may one holding only queued trials (enqueued by hand to run first).
    if study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL, TrialState.RUNNING)):
        require_made_here(study, "choose another --study-name")
    held = [direction.name.lower() for direction in study.directions]
    if held != directions:  # resumed with another --objective, or a study of plain Optuna
        fits = objective_of(held)
        resume = f"resume it with --objective {fits} or " if fits else ""
        raise UserError(f"study {config.name!r} optimizes {' and '.join(held)}, not the "
                        f"{' and '.join(directions)} of --objective {config.objective}; {resume}choose another "
                        "--study-name")
    if replay_scale(study) is not None and not replay:  # its trials would compare with the notebook, not search
        raise UserError(f"study {config.name!r} is a notebook replay (`hpsearch replay`); choose another --study-name")
    if replay and replay_scale(study) is None and study.get_trials(deepcopy=False):
        raise UserError(f"study {config.name!r} is a search, not a notebook replay; choose another --study-name")
    StudyRecord(arch=config.arch, data_fingerprint=data.fingerprint, label_set=data.label_set, subset=config.subset,
                image_size=image_size_text(config.image_size), class_names=tuple(data.class_names),
                objective=config.objective, levers=config.levers,
                data_dir=str(Path(config.data_dir).resolve()),
                heartbeat_seconds=None if config.storage.startswith(JOURNAL_PREFIX) else config.heartbeat_seconds,
                ).attach(study)
    optuna.storages.fail_stale_trials(study)
    study.sampler = FirstTrialSeeded(config.sampler, config.seed)
    return study


def objective_of(directions: Sequence[str]) -> str | None:
    """The objective whose values go in these directions ("maximize", ...); None for none of hpsearch's."""
    return next((name for name, held in DIRECTIONS.items() if list(held) == list(directions)), None)


def stored_record(url: str, name: str) -> StudyRecord | None:
    """The record of study `name` in the storage at url, its objective read from its directions; None for a new
    study, and where the storage cannot be read (the run's own open then says why). Only reads: creates no file,
    folder or table."""
    try:
        storage = open_storage(url, readonly=True, checked=True)  # the run's own open checks the schema version
    except NoStudies:
        return None
    try:
        study_id = storage.get_study_id_from_name(name)
        directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
        attrs = storage.get_study_user_attrs(study_id)
    except Exception:  # noqa: BLE001 - no such study yet (KeyError), or e.g. an old schema (its check was skipped)
        return None
    finally:
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.engine.dispose()  # the run opens its own connections
    # Directions of none of hpsearch's objectives (a plain Optuna study): open_study refuses it.
    return dataclasses.replace(StudyRecord.from_attrs(attrs, name), objective=objective_of(directions) or "accuracy")


def resumed_settings(url: str, name: str, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A run's StudyConfig settings among `given` (the command line's; None: left out): a setting left out is the
    study's own where it exists, so that a rerun with fewer options resumes it as it began. Taken are those a
    resumed study must keep (its objective, --subset, --image-size, levers, --heartbeat) and its --data folder
    where that exists on this machine (another one may keep it elsewhere). Also, as options, what was taken that
    the command's defaults would not have given (said at start)."""
    chosen = {key: value for key, value in given.items() if value is not None}
    record = stored_record(url, name)
    if record is None:
        return chosen, []
    stored: dict[str, Any] = {"objective": record.objective, "subset": record.subset,
                              "image_size": record.image_size, "levers": record.levers}
    if record.data_dir and Path(record.data_dir).is_dir():
        stored = {"data_dir": record.data_dir, **stored}  # said first
    elif record.data_dir and given.get("data_dir", "") is None:  # else "data/train.csv: file not found", alone
        Console().warn(f"note: study {name!r} was made with the data in {record.data_dir}, which is not here; "
                       f"reading {Path('.') / StudyConfig(arch=record.arch).data_dir}/ instead (--data names "
                       "another folder)")
    if record.heartbeat_seconds is not None and not url.startswith(JOURNAL_PREFIX):  # a journal's beat is moot
        stored["heartbeat_seconds"] = record.heartbeat_seconds
    taken = {key: value for key, value in stored.items() if key in given and key not in chosen}
    defaults, said = StudyConfig(arch=record.arch), []
    for key, value in taken.items():
        if key == "data_dir" and Path(value).resolve() != Path(defaults.data_dir).resolve():
            said.append(f"--data {shlex.quote(value)}")
        elif key == "levers" and value != defaults.levers:
            said.append("--no-levers")
        elif key == "objective" and value != defaults.objective:
            said.append(f"--objective {value}")
        elif key in StudyRecord.OPTIONS and value != getattr(defaults, key):
            said.append(f"{StudyRecord.OPTIONS[key]} {value}")
    return {**taken, **chosen}, said


def count(study: optuna.Study, states: tuple[TrialState, ...] = FINISHED) -> int:
    """How many trials of the study are in the given states."""
    return len(study.get_trials(deepcopy=False, states=states))


def enqueue_warm_start(study: optuna.Study, arch: str) -> None:
    """Queue the architecture's default configuration, a strong first trial: in a new study, or again in one whose
    only trials are warm starts that were interrupted (Ctrl-C during the first trial must not lose it)."""
    trials = study.get_trials(deepcopy=False)
    interrupted_warm_starts = [t for t in trials if t.state == TrialState.FAIL and TrialRecord.of(t).warm_start
                               and TrialRecord.of(t).fail_reason == records.INTERRUPTED]
    if len(interrupted_warm_starts) < len(trials):
        return
    # skip_if_exists keeps two machines starting on a new study from queueing it twice; it would also match the
    # interrupted one.
    study.enqueue_trial(stored_params(spaces.get(arch).DEFAULT), user_attrs=records.enqueued(warm_start=True),
                        skip_if_exists=not trials)


def enqueue_seed_models(study: optuna.Study, arch: str) -> int:
    """Queue the notebook's models of arch as the first trials, once each (a failed one is queued again)."""
    seeds = spaces.get(arch).SEED_MODELS
    # Known by name rather than by Optuna's skip_if_exists: a study from before the per-optimizer param names
    # stored them as `learning_rate`, which skip_if_exists would not match, queueing every model a second time.
    queued = {TrialRecord.of(trial).seed_model for trial in study.get_trials(deepcopy=False, states=(
        *FINISHED, TrialState.RUNNING, TrialState.WAITING))}  # a failed one runs again
    for name, params in seeds.items():
        if name not in queued:
            study.enqueue_trial(stored_params(params), user_attrs=records.enqueued(seed_model=name))
    return len(seeds)


def worker_done(finished: int, failed: int, quota: int, max_failures: int) -> bool:
    """Whether a worker has run its share: `quota` finished trials, or `max_failures` failed ones."""
    return finished >= quota or failed >= max_failures


class WorkerQuota:
    """Optuna callback: stops this worker once `worker_done` says so (the study-wide --trials target is
    Optuna's MaxTrialsCallback; other machines' trials count there). Its finished trials are this worker's own;
    its failed ones are the run's: every trial that failed since the run began with `failed_before` failures in
    the study (other workers' and rounds' too, so K workers stop at --max-failures, not K times it)."""

    def __init__(self, quota: int, max_failures: int, failed_before: int = 0) -> None:
        self.quota, self.max_failures, self.failed_before = quota, max_failures, failed_before
        self.finished = self.failed = 0

    @property
    def stopped_on_failures(self) -> bool:
        """Whether this worker gave up because too many trials failed."""
        return self.failed >= self.max_failures

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Count the trial and stop the worker when its share is done."""
        self.finished += trial.state in FINISHED
        # Read after every trial, not only after one of this worker's failed: the others' failures count too, and a
        # worker whose trials all went well ran its whole share after the run had reached --max-failures.
        self.failed = count(study, (TrialState.FAIL,)) - self.failed_before
        if worker_done(self.finished, self.failed, self.quota, self.max_failures):
            study.stop()


def stop_when_queue_empty(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna callback: stop once no enqueued trial is waiting (a replay runs only what it queued)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.stop()


def run_worker(config: StudyConfig, quota: int, data: Dataset | None = None,
               callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
               study: optuna.Study | None = None) -> WorkerQuota:
    """Run trials in this process until `quota` of them finish (or the failure/time limit, or a callback);
    `study` is the caller's opened study where it has one, so it is not opened twice."""
    from search.objective import make_objective  # imports Keras: only once the backend is chosen

    data = data or load_dataset(Path(config.data_dir), config.subset, parse_image_size(config.image_size))
    study = study or open_study(config, data)
    console = Console(config.quiet)
    objective = make_objective(spaces.get(config.arch), data, config.epochs, config.seed,
                               shuffle=config.shuffle, show=console.epoch, device_loop=bool(config.device_loop),
                               levers=config.levers, accuracy_time=config.accuracy_time,
                               prune=config.chosen_pruner != "none", precision=config.precision)
    quota_callback = WorkerQuota(quota, config.max_failures, config.failed_before)
    target = optuna.study.MaxTrialsCallback(config.trials, states=FINISHED)
    # Our progress line already says why a trial failed; Optuna's own warning would add a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    lost: list[Exception] = []

    def stoppable_objective(trial: optuna.Trial) -> Values:
        """The objective, where an interrupt that a library turned into another error, or a storage that can no
        longer be written (a full disk), still stops the study (catch=(Exception,) would go on, failing every
        trial with no reason recorded)."""
        try:
            return objective(trial)
        except Exception as exc:
            if interrupted(exc):
                raise KeyboardInterrupt from exc
            if lost_reason(exc, config.storage) is not None:
                lost.append(exc)
                trial.study.stop()  # said below, once Optuna has ended the trial
            raise

    dropped = 0
    with warnings.catch_warnings():  # the notebook's models (seed models, replays) sit outside the ranges on purpose
        warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range", category=UserWarning)
        while True:
            left = None if config.deadline is None else config.deadline - time.time()
            if left is not None and left <= 0:
                break
            try:
                with storage_loss_said(config.storage):
                    study.optimize(stoppable_objective, timeout=left, catch=(Exception,),
                                   callbacks=[quota_callback, target, console.trial, *callbacks])
                    if lost:
                        raise lost[0]
                break
            except ValueError as exc:
                # Another process failed this trial while it trained, as its heartbeats seemed stale (e.g. a network
                # cut longer than the grace period), and retries it: its result cannot be told, so drop it and go on.
                if not str(exc).startswith("Cannot tell a FAIL trial") or dropped >= config.max_failures:
                    raise
                dropped += 1
                console.warn("a trial of this worker was failed meanwhile by another process (its heartbeats "
                             "seemed stale), which retries it: its result is dropped")
    return quota_callback
