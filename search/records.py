"""What hpsearch keeps about a study and its trials in Optuna's user attributes: the only module that knows
their keys. Each record reads itself from a study or trial and writes itself back (a round trip)."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import pareto
from search.config import DEFAULT_SEED
from search.errors import UserError
from search.runtime import training_details
from spaces.param_names import model_params

SPLIT = "train_test_split(test_size=0.2, random_state=42)"
EpochRow = dict[str, float]
AnyTrial = FrozenTrial | optuna.Trial
# The states of a trial that ran to its end or was pruned: it counts toward --trials and has an accuracy.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class StudyRecord:
    """What a study searched on. A resumed study must match in everything but the class names."""

    arch: str
    data_fingerprint: str = ""
    label_set: str = ""
    subset: int | None = None
    image_size: str | None = None
    split: str = SPLIT
    class_names: tuple[str, ...] = ()
    objective: str = "accuracy"  # or "accuracy-time": two values per trial, (accuracy, training seconds)
    levers: bool = True  # the search space holds the accuracy levers (spaces._levers); False: --no-levers
    data_dir: str = ""  # the --data folder (absolute) the study was made with: export-best's default, not identity
    # Every run on a study must beat and judge heartbeats alike: a run with 10-second beats failed the live trial
    # of a run with 60-second ones as stale after 30 s, and that run then crashed on telling it. None: a storage
    # without heartbeats (Optuna's journal), where a run's --heartbeat is moot and never refused.
    heartbeat_seconds: int | None = None
    # Checked in this order: the data's fingerprint last, as a changed subset or image size changes it too.
    IDENTITY: ClassVar[tuple[str, ...]] = ("arch", "label_set", "split", "subset", "image_size", "objective",
                                           "levers", "heartbeat_seconds", "data_fingerprint")
    OPTIONS: ClassVar[dict[str, str]] = {"subset": "--subset", "image_size": "--image-size",
                                         "heartbeat_seconds": "--heartbeat"}  # `study`'s, named in the refusal

    @classmethod
    def of(cls, study: optuna.Study) -> StudyRecord:
        """The study's record; a study made before a field existed reads that field's default."""
        return cls.from_attrs(study.user_attrs, study.study_name)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], study_name: str) -> StudyRecord:
        """The record held in a study's user attributes (read from a storage without loading the study)."""
        values = {f.name: attrs[f.name] for f in fields(cls) if f.name in attrs}
        values.setdefault("arch", study_name)
        return cls(**{**values, "class_names": tuple(values.get("class_names", ()))})

    def attach(self, study: optuna.Study) -> None:
        """Record this on a new study, or check that a resumed one searched the same thing."""
        attrs = study.user_attrs
        mine = {**asdict(self), "class_names": list(self.class_names)}
        for key in self.IDENTITY:
            if key not in attrs or attrs[key] == mine[key] or (key == "heartbeat_seconds" and mine[key] is None):
                continue
            held, fix = attrs[key], "choose another --study-name"
            if key == "data_fingerprint":
                differs = f"ran on other training data (fingerprint {held}; --data gives {mine[key]})"
                if attrs.get("data_dir") == mine["data_dir"]:  # taken, or given, as the study's own folder
                    fix = f"its folder {attrs['data_dir']} now holds other data: restore that, or {fix}"
                elif attrs.get("data_dir"):
                    fix = f"pass --data {attrs['data_dir']} (its folder) to resume it, or {fix}"
            elif key == "levers":  # a resume without --no-levers brought them back without a word
                differs = f"searched {'with' if held else 'without'} the accuracy levers"
                fix = f"pass {'--levers' if held else '--no-levers'}, or {fix}"
            elif key in self.OPTIONS:  # options of `study`: say them as options, and how to resume
                option = self.OPTIONS[key]
                made, given = (f"no {option}" if value is None else f"{option} {value}" for value in (held, mine[key]))
                differs = f"was made with {made}, this run has {given}"
                fix = f"{'leave out ' + option if held is None else 'pass ' + made} to resume it, or {fix}"
            else:
                differs = f"holds {key} {held!r}, not {mine[key]!r}"
            raise UserError(f"study {study.study_name!r} {differs}; {fix}")
        for key, value in mine.items():
            if key not in attrs:
                study.set_user_attr(key, value)


def is_search(study: optuna.Study, arch_names: list[str]) -> bool:
    """A study hpsearch searched in (it names a known architecture and is not a notebook replay)."""
    return study.user_attrs.get("arch") in arch_names and replay_scale(study) is None


def replay_scale(study: optuna.Study) -> float | None:
    """The epoch scale of an `hpsearch replay` study; None for a search."""
    return study.user_attrs.get("epochs_scale") if study.user_attrs.get("notebook_replay") else None


def mark_replay(study: optuna.Study, epochs_scale: float) -> None:
    """Record that the study replays the notebook's models at this epoch scale (kept apart in reports)."""
    study.set_user_attr("epochs_scale", epochs_scale)
    study.set_user_attr("notebook_replay", True)


@dataclass
class TrialRecord:
    """What hpsearch records about a trial beside Optuna's own fields (params, value, state, times)."""

    history: list[EpochRow] = field(default_factory=list)  # a row per epoch: losses, accuracies, lr, seconds, ended_at
    train_seconds: float = 0.0
    n_params: int = 0
    layers: dict[str, int] = field(default_factory=dict)  # conv, pooling and dense layers of the model
    best_epoch: int = 0  # 1-based epoch of the best validation accuracy; 0 before one
    seed: int = DEFAULT_SEED
    backend: str = ""
    device: str = ""
    device_loop: bool = False
    precision: str = "float32"  # search.config.PRECISIONS
    shuffle: bool = False  # the training images reshuffled each epoch (--shuffle)
    rss_mb: float = 0.0
    fail_reason: str = ""
    worker: str = ""  # machine:pid of the process that ran it (search.owners)
    # Set when the trial is enqueued:
    seed_model: str = ""  # the notebook model it replays
    warm_start: bool = False  # the architecture's default configuration
    epochs: int = 0  # its own epoch count (a replayed notebook model); 0: the study's

    @classmethod
    def of(cls, trial: AnyTrial) -> TrialRecord:
        """The trial's record (attributes hpsearch did not write are ignored)."""
        attrs = trial.user_attrs
        return cls(**{f.name: attrs[f.name] for f in fields(cls) if f.name in attrs})

    @property
    def way(self) -> str:
        """How the trial trained, in words (`training_way`)."""
        return training_way(self.backend, self.device, self.device_loop, self.precision)


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """values, refusing a name that is no TrialRecord field (a typo would silently record nothing)."""
    unknown = set(values) - {f.name for f in fields(TrialRecord)}
    if unknown:
        raise KeyError(f"not a trial record field: {', '.join(sorted(unknown))}")
    return values


def update(trial: optuna.Trial, **values: Any) -> None:
    """Write some fields of the trial's record."""
    for key, value in _checked(values).items():
        trial.set_user_attr(key, value)


def enqueued(**values: Any) -> dict[str, Any]:
    """The user attributes an enqueued trial starts with (e.g. seed_model, epochs)."""
    return _checked(values)


@dataclass(frozen=True)
class Confirmation:
    """A configuration's runs over seeds (`hpsearch confirm`); its first run is the trial itself."""

    seeds: list[int]
    scores: list[float]

    @property
    def mean(self) -> float:
        """Mean validation accuracy over the seeds."""
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        """Sample standard deviation over the seeds; NaN for one run, whose spread is unknown (not 0)."""
        return statistics.stdev(self.scores) if len(self.scores) > 1 else math.nan

    @property
    def judged(self) -> bool:
        """Whether a winner may be chosen by this mean: one run (the trial's own, after `confirm --seeds 1` or an
        interrupted confirm) is the single, perhaps lucky, run that confirm exists to discount."""
        return len(self.scores) > 1


# Each confirmation run is one study attribute, "confirmed:TRIAL:SEED" -> its score, so that two `confirm` runs
# on one study (two machines) add their runs side by side: when all of them lived in one attribute, each run
# rewrote it from its own copy and dropped the other's. Studies confirmed before keep that attribute, "confirmed".
_CONFIRMED = "confirmed"
INTERRUPTED = "interrupted"  # the fail_reason of a trial stopped by Ctrl-C or SIGTERM


def confirmations(study: optuna.Study) -> dict[int, Confirmation]:
    """The confirmation runs recorded so far, by trial number, each trial's seeds in order."""
    attrs = study.user_attrs
    runs: dict[int, dict[int, float]] = {int(number): dict(zip(entry["seeds"], entry["scores"], strict=True))
                                         for number, entry in attrs.get(_CONFIRMED, {}).items()}
    for key, score in attrs.items():
        if key.startswith(f"{_CONFIRMED}:"):
            _, number, seed = key.split(":")
            runs.setdefault(int(number), {})[int(seed)] = score
    return {number: Confirmation(sorted(scores), [scores[seed] for seed in sorted(scores)])
            for number, scores in runs.items()}


def save_confirmation(study: optuna.Study, number: int, seed: int, score: float) -> None:
    """Store one confirmation run: trial `number` trained with `seed` reached `score`."""
    study.set_user_attr(f"{_CONFIRMED}:{number}:{seed}", score)


def searched_epochs(study: optuna.Study) -> set[int]:
    """The epoch counts the study's complete searched trials ran (a replayed notebook model's own are left out)."""
    return {len(record.history) for record in map(TrialRecord.of, study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))) if not record.epochs}


def training_way(backend: str, device: str, device_loop: bool, precision: str) -> str:
    """How trials train, in words: backend, device and the options that change their numbers and seconds."""
    return ", ".join([f"{backend} on {device}", *training_details(device_loop, precision)])


def trained_ways(study: optuna.Study) -> set[str]:
    """How the study's finished trials trained (`training_way`), those that recorded it."""
    return {record.way for record in map(TrialRecord.of, study.get_trials(deepcopy=False, states=FINISHED))
            if record.backend}


def seconds_with_compilation(study: optuna.Study) -> list[int]:
    """Numbers of an accuracy-time study's complete trials whose seconds count epoch 1's compilation (recorded by an
    hpsearch before steady seconds, search.pareto): on the front they stand slower than newer trials by that."""
    if len(study.directions) < 2:
        return []
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if abs(t.values[1] - pareto.steady_seconds(TrialRecord.of(t).history)) > 1e-3]  # values: 3 decimals


def require_made_here(study: optuna.Study, fix: str) -> None:
    """Refuse a study that hpsearch did not make (plain Optuna's, another tool's): its params are not a model's,
    and its values may mean something else."""
    if "arch" not in study.user_attrs:  # recorded by every `study` and `replay` since the first
        raise UserError(f"study {study.study_name!r} was not made by hpsearch (it holds no hpsearch record); {fix}")


def require_arch(study: optuna.Study, arch: str) -> None:
    """Refuse a study of another architecture than ARCH (its trials would be shown or retrained as ARCH's), or one
    that hpsearch did not make (its params are not a model's: retraining crashed on a missing one)."""
    require_made_here(study, "`hpsearch study ARCH` makes one")
    recorded = StudyRecord.of(study).arch
    if recorded != arch:
        raise UserError(f"study {study.study_name!r} holds {recorded} trials, not {arch}; name {recorded} as ARCH"
                        + (f" with --study-name {study.study_name}" if study.study_name != recorded else ""))


@dataclass(frozen=True)
class RetrainPlan:
    """How to train a trial's configuration again (export-best and confirm): params, seed, epochs, fast path,
    precision, shuffling."""

    arch: str
    params: dict[str, Any]
    seed: int
    epochs: int
    device_loop: bool
    precision: str
    schedule_epochs: int  # the epochs a learning-rate schedule spans: the trial's own, which may exceed `epochs`
    shuffle: bool = False


def other_backend_note(trial: FrozenTrial, backend: str) -> str:
    """What retraining the trial on another backend than its own means ("" where it is the same): other
    initial weights and random streams, so other numbers than the trial's."""
    trained_on = TrialRecord.of(trial).backend
    if not trained_on or trained_on == backend:
        return ""
    return (f"trial {trial.number} trained on {trained_on}; this retrains it on {backend} (other initial weights "
            f"and random draws), so its numbers will differ from the trial's; --backend {trained_on} retrains it "
            "as it trained")


def retrain_plan(study: optuna.Study, trial: FrozenTrial, backend: str, epochs: int | None = None) -> RetrainPlan:
    """Retrain to the trial's best epoch (or `epochs`) with its seed, precision and shuffling; the on-device loop
    only where the trial used it and this process runs JAX (the loop exists only there). A schedule (cosine,
    one-cycle) spans the epochs the trial ran, as it did in the trial, so stopping at its best epoch repeats the
    trial's run up to there; with `epochs` given, the schedule spans those."""
    record = TrialRecord.of(trial)
    best = record.best_epoch or len(record.history) or 1
    return RetrainPlan(arch=StudyRecord.of(study).arch, params=model_params(trial.params), seed=record.seed,
                       epochs=epochs or best, device_loop=record.device_loop and backend == "jax",
                       precision=record.precision,
                       schedule_epochs=epochs or max(len(record.history), best), shuffle=record.shuffle)
