"""The settings of a search and their defaults, in one light module (the CLI's options read them without
importing Optuna or Keras)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import spaces
from search.errors import UserError, require_positive

DEFAULT_STORAGE = "sqlite:///studies/hpsearch.db"
JOURNAL_PREFIX = "journal:///"  # Optuna's journal file: a path, which holds no password
MAX_SEED = 2**31 - 1  # half of NumPy's range: the seeds counted on from it (search.config.check) stay in it
DEFAULT_SEED = 1337  # the notebook's seed; the sampler's and every model's unless --seed says otherwise
# A worker that stops beating for this long is dead: its trial is failed and retried once.
HEARTBEAT_SECONDS = 10
SAMPLERS = ("tpe", "random")
# What a study optimizes, with the directions of its Optuna values: validation accuracy, or accuracy and training
# seconds together (a Pareto front).
DIRECTIONS: dict[str, tuple[Literal["maximize", "minimize"], ...]] = {"accuracy": ("maximize",),
                                                                      "accuracy-time": ("maximize", "minimize")}
OBJECTIVES = tuple(DIRECTIONS)
# Optuna's pruners work on one objective; "dominance" is hpsearch's rule for accuracy-time (search.pareto).
PRUNERS = ("hyperband", "successive-halving", "median", "dominance", "none")
DEFAULT_PRUNER = {"accuracy": "successive-halving", "accuracy-time": "dominance"}
# Numeric precision of training, by name: the Keras dtype policy it sets. bfloat16 computes layers in bfloat16
# and keeps the weights (and the softmax output) in float32; it pays on GPUs with bfloat16 units (an H100
# prototype: 0.50 s instead of 0.74 s an epoch of the notebook's CNN model 7), not on CPUs.
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


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
    pruner: str | None = None  # None: the objective's default (DEFAULT_PRUNER)
    seed: int = DEFAULT_SEED
    timeout: float | None = None
    # When to stop starting trials (time.time()): --timeout from the command's start, one moment for its workers
    # too (each counted it from its own start, after importing Keras and loading the data: seconds late a round).
    deadline: float | None = None
    subset: int | None = None
    enqueue_seed_models: bool = False
    warm_start: bool = True
    shuffle: bool = False
    backend: str | None = None
    workers: int | None = None  # None: search.workers.default_workers (several on a JAX GPU, else 1)
    max_failures: int = 10
    quiet: bool = False
    heartbeat_seconds: int = HEARTBEAT_SECONDS
    device_loop: bool | None = None  # None: on where JAX trains on a GPU
    precision: str = "float32"  # a key of PRECISIONS
    image_size: str | None = None  # "HxW" for an image tree; None: its most common size
    fail_orphans: bool = False
    levers: bool = True  # search the accuracy levers (spaces._levers) too
    objective: str = "accuracy"
    failed_before: int = 0  # set by search.runner: the failed trials the study held when this run began

    @property
    def worker_count(self) -> int:
        """The worker processes: as given, or 1 until the device chooses (search.runner.for_device)."""
        return self.workers or 1

    @property
    def name(self) -> str:
        """The study's name: given, or the architecture's."""
        return self.study_name or self.arch

    @property
    def accuracy_time(self) -> bool:
        """Whether the study has two objectives (accuracy up, training seconds down)."""
        return self.objective == "accuracy-time"

    @property
    def chosen_pruner(self) -> str:
        """The pruner asked for, else the objective's default."""
        return self.pruner or DEFAULT_PRUNER.get(self.objective, "none")

    def check(self) -> None:
        """Reject impossible settings with one line each, before anything is loaded or written."""
        from search.data import parse_image_size  # NumPy and pandas: only once a command runs
        from search.runtime import chosen_backend

        spaces.require(self.arch)
        require_positive(("--trials", self.trials), ("--epochs", self.epochs), ("--workers", self.workers),
                         ("--max-failures", self.max_failures), ("--heartbeat", self.heartbeat_seconds),
                         ("--subset", self.subset))
        parse_image_size(self.image_size)
        # NumPy's and the samplers' seeds end at 2^32 - 1, and seeds are counted on from --seed (the sampler by trial
        # number, confirm by run): -1 ended in a traceback with the study's first trial left RUNNING.
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed must be 0 to {MAX_SEED}, got {self.seed}")
        # The backend too (its name, not Keras): a refused option must find no study written yet.
        if chosen_backend(self.backend) != "jax" and self.device_loop:
            raise UserError("--device-loop needs the JAX backend (--backend jax)")
        if self.timeout is not None and not self.timeout > 0:  # 0 would mean "no deadline" to a loop
            raise UserError(f"--timeout must be more than 0 seconds, got {self.timeout:g}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.objective not in OBJECTIVES:
            raise UserError(f"unknown objective {self.objective!r}; valid: {', '.join(OBJECTIVES)}")
        if self.chosen_pruner not in PRUNERS:
            raise UserError(f"unknown pruner {self.chosen_pruner!r}; valid: {', '.join(PRUNERS)}")
        if self.accuracy_time and self.chosen_pruner not in ("dominance", "none"):
            raise UserError(f"--pruner {self.chosen_pruner} prunes on one objective (Optuna cannot prune a "
                            "two-objective study); with --objective accuracy-time use dominance or none")
        if not self.accuracy_time and self.chosen_pruner == "dominance":
            raise UserError("--pruner dominance is for --objective accuracy-time")
