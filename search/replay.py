"""`hpsearch replay`: train the notebook's models with their own settings and epochs, as study ARCH-notebook."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

import spaces
from search import records
from search.config import StudyConfig
from search.console import Console
from search.data import load_dataset
from search.errors import UserError
from search.owners import fail
from search.records import TrialRecord, mark_replay, replay_scale, trained_ways, training_way
from search.runtime import device_name, training_line
from search.study import count, open_study, run_worker, stop_when_queue_empty
from search.tables import whole_numbers
from search.winners import last_val_accuracy, value_of
from spaces._notebook import NotebookModel, scaled_epochs
from spaces.param_names import stored_params

REPLAY_SUFFIX = "-notebook"


def replay_name(arch: str) -> str:
    """The study a replay of arch's notebook models is recorded in."""
    return arch + REPLAY_SUFFIX


def choose_models(arch: str, names: str | None) -> dict[str, NotebookModel]:
    """The notebook models named in a comma-separated list (all of arch's when None), in the list's order."""
    notebook: dict[str, NotebookModel] = spaces.get(arch).NOTEBOOK
    wanted = list(notebook) if names is None else [name.strip() for name in names.split(",")]
    if not all(wanted):  # e.g. `--models "$MODELS"` with the variable unset: not "all of them", hours of training
        raise UserError(f"--models {names!r} names no model at one place; valid: {', '.join(notebook)}, "
                        "comma-separated (leave out --models for all)")
    unknown = [name for name in wanted if name not in notebook]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r} for {arch}; valid: {', '.join(notebook)}")
    return {name: notebook[name] for name in wanted}


def replayed_trials(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The latest complete trial of each replayed notebook model, by model name."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    named = [(TrialRecord.of(t).seed_model, t) for t in sorted(done, key=lambda t: t.number)]
    return {name: t for name, t in named if name}


def _check_scale(study: optuna.Study, epochs_scale: float) -> None:
    """A replay study holds one epoch scale: models trained at another would not compare."""
    held = replay_scale(study)
    if held is not None and held != epochs_scale:
        raise UserError(f"study {study.study_name!r} was replayed with --epochs-scale {held}, not "
                        f"{epochs_scale}; use that scale or another --study-name")
    mark_replay(study, epochs_scale)


def replay_config(arch: str, models: dict[str, NotebookModel], epochs_scale: float, study_name: str | None = None,
                  **options: Any) -> StudyConfig:
    """The study settings of a replay: study ARCH-notebook, no pruning, epochs up to the longest scaled model's."""
    if not 0 < epochs_scale <= 1:
        raise UserError(f"--epochs-scale must be in (0, 1], got {epochs_scale}")
    longest = max(scaled_epochs(model.epochs, epochs_scale) for model in models.values())
    return StudyConfig(arch=arch, epochs=longest, pruner="none", study_name=study_name or replay_name(arch),
                       **options)


def replay(config: StudyConfig, models: dict[str, NotebookModel], epochs_scale: float) -> optuna.Study:
    """Train every chosen model not yet complete in the replay study, each for its (scaled) notebook epochs."""
    config.check()
    data = load_dataset(Path(config.data_dir), config.subset)
    study = open_study(config, data, replay=True)
    _check_scale(study, epochs_scale)
    done = replayed_trials(study)
    waiting: dict[str, FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        name = TrialRecord.of(trial).seed_model
        if name in models and name not in waiting:
            waiting[name] = trial  # left by an interrupted replay: it runs, and is not queued twice
        else:  # not asked for now: it would run first (Optuna takes the oldest waiting trial) in a chosen one's place
            fail(study, trial, "left waiting by an interrupted replay of other models; queued again when asked for")
    missing = [name for name in models if name not in done]
    for name in missing:
        if name not in waiting:
            study.enqueue_trial(stored_params(models[name].params), user_attrs=records.enqueued(
                seed_model=name, epochs=scaled_epochs(models[name].epochs, epochs_scale)))
    if missing:  # failures count from this run on, as in `hpsearch study`
        import keras  # here: `report` reads replays (replayed_trials) without Keras

        console, backend, device = Console(config.quiet), keras.backend.backend(), device_name()
        console.say(training_line(device, backend))
        this_way = training_way(backend, device, bool(config.device_loop), config.precision)
        other_ways = sorted(trained_ways(study) - {this_way})
        if other_ways:  # e.g. another --backend: its table would put models of two setups side by side unsaid
            console.warn(f"note: models of this replay trained with {'; '.join(other_ways)}; these train with "
                         f"{this_way}, so their seconds and random draws differ (`trials` shows how each trained)")
        run_worker(dataclasses.replace(config, trials=count(study) + len(missing),
                                       failed_before=count(study, (TrialState.FAIL,))),
                   len(missing), data, callbacks=[stop_when_queue_empty], study=study)
    return study


def unreplayed(study: optuna.Study, models: dict[str, NotebookModel]) -> list[str]:
    """The chosen models with no complete replay, each with why its last try failed where one did."""
    done, reasons = replayed_trials(study), {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):  # in order: the last try's reason wins
        record = TrialRecord.of(trial)
        reasons[record.seed_model] = record.fail_reason
    return [f"{name} ({reasons[name]})" if reasons.get(name) else name for name in models if name not in done]


def replay_table(study: optuna.Study, models: dict[str, NotebookModel]) -> pd.DataFrame:
    """Each chosen model's measured result beside the notebook's reported one."""
    trials = replayed_trials(study)
    rows = []
    for name, model in models.items():
        trial = trials.get(name)
        record = TrialRecord.of(trial) if trial else None
        rows.append({"model": name,
                     # after the last epoch, as the notebook reported it; the best epoch's beside it
                     "val_accuracy": round(last_val_accuracy(trial), 4) if trial else None,
                     "best_val_accuracy": round(value_of(trial), 4) if trial else None,
                     "seconds": record.train_seconds if record else None,
                     "epochs": len(record.history) if record else None,
                     "notebook_val_accuracy": model.reported.val_accuracy,
                     "notebook_seconds": model.reported.seconds, "notebook_epochs": model.epochs})
    return whole_numbers(pd.DataFrame(rows), ("epochs",))  # a model not replayed made them floats (1.0)
