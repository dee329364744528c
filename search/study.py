"""Creating and resuming studies, choosing sampler and pruner, and running trials in one or K workers."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

import spaces
from search.data import Dataset, load_dataset, parse_image_size
from search.errors import UserError, require_positive
from search.owners import mark_owner, running
from search.progress import Progress
from search.storage import DEFAULT_STORAGE, HEARTBEAT_SECONDS, open_storage

SAMPLERS = ("tpe", "random")
PRUNERS = ("hyperband", "median", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SPLIT = "train_test_split(test_size=0.2, random_state=42)"


@dataclass
class StudyConfig:
    """Everything that defines a run of `hpsearch study`; workers receive it as JSON."""

    arch: str
    data_dir: str = "data"
    trials: int = 20
    epochs: int = 50
    storage: str = DEFAULT_STORAGE
    study_name: str | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: int = 1337
    timeout: float | None = None
    subset: int | None = None
    enqueue_seed_models: bool = False
    warm_start: bool = True
    shuffle: bool = False
    backend: str | None = None
    workers: int = 1
    max_failures: int = 10
    quiet: bool = False
    heartbeat_seconds: int = HEARTBEAT_SECONDS
    device_loop: bool | None = None  # None: on where JAX trains on a GPU
    image_size: str | None = None  # "HxW" for an image tree; None: its most common size
    fail_orphans: bool = False
    levers: bool = True  # search the accuracy levers (spaces._levers) too

    @property
    def name(self) -> str:
        """The study's name: given, or the architecture's."""
        return self.study_name or self.arch

    def check(self) -> None:
        """Reject impossible settings with one line each, before anything is loaded or written."""
        spaces.require(self.arch)
        require_positive(("--trials", self.trials), ("--epochs", self.epochs), ("--workers", self.workers),
                         ("--max-failures", self.max_failures), ("--heartbeat", self.heartbeat_seconds),
                         ("--subset", self.subset))
        parse_image_size(self.image_size)
        if self.timeout is not None and not self.timeout > 0:  # 0 would mean "no deadline" to a loop
            raise UserError(f"--timeout must be more than 0 seconds, got {self.timeout:g}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise UserError(f"unknown pruner {self.pruner!r}; valid: {', '.join(PRUNERS)}")


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler by name, seeded. TPE is multivariate over groups of parameters that occur together (the
    spaces are conditional: a learning-rate range per optimizer, a slope only for LeakyReLU) and starts
    modelling after 3 random trials instead of 10: in bench/sampler_settings.py (LeNet, 3,000 images, 24 trials,
    3 seeds) it matched 10 start-up trials and random search up to 48 epochs of budget and led at 96."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=3, multivariate=True, group=True)


def make_pruner(kind: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner by name; Hyperband's budget is the epoch count. Its reduction factor 3 and minimum of one
    epoch were kept after measuring factor 2 and the median pruner (bench/sampler_settings.py: within 0.5
    points of each other at every budget, factor 3 ahead at the short ones)."""
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def open_study(config: StudyConfig, data: Dataset, seed_offset: int = 0) -> optuna.Study:
    """Create or resume the study; its attributes must match this architecture and dataset."""
    storage = open_storage(config.storage, config.heartbeat_seconds)
    study = optuna.create_study(storage=storage, study_name=config.name, direction="maximize",
                                load_if_exists=True, pruner=make_pruner(config.pruner, config.epochs),
                                sampler=optuna.samplers.RandomSampler())
    expected = {"arch": config.arch, "data_fingerprint": data.fingerprint, "label_set": data.label_set,
                "split": SPLIT, "subset": config.subset,
                "image_size": config.image_size}
    attrs = study.user_attrs
    for key, value in expected.items():
        if key in attrs and attrs[key] != value:
            raise UserError(f"study {config.name!r} holds {key} {attrs[key]!r}, not {value!r}; "
                            "choose another --study-name")
    for key, value in {**expected, "class_names": list(data.class_names)}.items():
        if key not in attrs:
            study.set_user_attr(key, value)
    optuna.storages.fail_stale_trials(study)
    # A resumed study must not replay the sampler's first draws: offset the seed by the trials so far.
    study.sampler = make_sampler(config.sampler, config.seed + len(study.trials) + 1000 * seed_offset)
    return study


def count(study: optuna.Study, states: tuple[TrialState, ...] = FINISHED) -> int:
    """How many trials of the study are in the given states."""
    return len(study.get_trials(deepcopy=False, states=states))


def best_complete(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial with the highest validation accuracy, or None before any completes."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def enqueue_warm_start(study: optuna.Study, arch: str) -> None:
    """Queue the architecture's default configuration, a strong first trial for a new study."""
    study.enqueue_trial(spaces.get(arch).DEFAULT, user_attrs={"warm_start": True}, skip_if_exists=True)


def enqueue_seed_models(study: optuna.Study, arch: str) -> int:
    """Queue the notebook's models of arch as the first trials (once; finished ones are not rerun)."""
    seeds = spaces.get(arch).SEED_MODELS
    for name, params in seeds.items():
        study.enqueue_trial(params, user_attrs={"seed_model": name}, skip_if_exists=True)
    return len(seeds)


class Budget:
    """Optuna callback: stops this worker after `quota` finished trials, `max_failures` failed ones, or
    once the study as a whole holds `target` finished or live running trials (other machines count too;
    a RUNNING trial whose worker is gone does not)."""

    def __init__(self, quota: int, max_failures: int, target: int) -> None:
        self.quota, self.max_failures, self.target = quota, max_failures, target
        self.finished = self.failed = 0

    @property
    def stopped_on_failures(self) -> bool:
        """Whether this worker gave up because too many trials failed."""
        return self.failed >= self.max_failures

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Count the trial and stop the study when the budget is spent."""
        if trial.state in FINISHED:
            self.finished += 1
        elif trial.state == TrialState.FAIL:
            self.failed += 1
        if (self.finished >= self.quota or self.stopped_on_failures
                or count(study) + len(running(study)[0]) >= self.target):
            study.stop()


def stop_when_queue_empty(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna callback: stop once no enqueued trial is waiting (a replay runs only what it queued)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.stop()


def run_worker(config: StudyConfig, quota: int, data: Dataset | None = None, worker: int = 0,
               callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()) -> Budget:
    """Run trials in this process until `quota` of them finish (or the failure/time limit, or a callback)."""
    from search.objective import make_objective  # imports Keras: only once the backend is chosen

    data = data or load_dataset(Path(config.data_dir), config.subset, parse_image_size(config.image_size))
    study = open_study(config, data, seed_offset=worker)
    progress = Progress(config.quiet, worker if config.workers > 1 else None)
    objective = make_objective(spaces.get(config.arch), data, config.epochs, config.seed,
                               shuffle=config.shuffle, progress=progress.epoch,
                               device_loop=bool(config.device_loop), levers=config.levers)
    budget = Budget(quota, config.max_failures, config.trials)
    # Our progress line already says why a trial failed; Optuna's own warning would add a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def owned_objective(trial: optuna.Trial) -> float:
        """The objective, after recording which process runs the trial (see search.owners)."""
        mark_owner(trial)
        return objective(trial)

    study.optimize(owned_objective, timeout=config.timeout, catch=(Exception,),
                   callbacks=[budget, progress.trial, *callbacks])
    return budget
