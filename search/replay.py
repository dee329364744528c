"""`hpsearch replay`: train the notebook's models with their own settings and epochs, as study ARCH-notebook."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

import spaces
from search.data import load_dataset
from search.errors import UserError
from search.study import StudyConfig, count, open_study, run_worker, stop_when_queue_empty
from spaces._notebook import NotebookModel, scaled_epochs

REPLAY_SUFFIX = "-notebook"
REPLAY_ATTR = "notebook_replay"  # study attribute that marks a replay, so reports keep it apart from searches


def replay_name(arch: str) -> str:
    """The study a replay of arch's notebook models is recorded in."""
    return arch + REPLAY_SUFFIX


def choose_models(arch: str, names: str | None) -> dict[str, NotebookModel]:
    """The notebook models named in a comma-separated list (all of arch's when None), in the list's order."""
    notebook: dict[str, NotebookModel] = spaces.get(arch).NOTEBOOK
    wanted = [name.strip() for name in (names or ",".join(notebook)).split(",") if name.strip()]
    unknown = [name for name in wanted if name not in notebook]
    if unknown or not wanted:
        raise UserError(f"unknown model {unknown[0] if unknown else names!r} for {arch}; "
                        f"valid: {', '.join(notebook)}")
    return {name: notebook[name] for name in wanted}


def replayed_trials(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The latest complete trial of each replayed notebook model, by model name."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return {t.user_attrs["seed_model"]: t for t in sorted(done, key=lambda t: t.number) if "seed_model" in t.user_attrs}


def _check_scale(study: optuna.Study, epochs_scale: float) -> None:
    """A replay study holds one epoch scale: models trained at another would not compare."""
    held = study.user_attrs.get("epochs_scale")
    if held is not None and held != epochs_scale:
        raise UserError(f"study {study.study_name!r} was replayed with --epochs-scale {held}, not "
                        f"{epochs_scale}; use that scale or another --study-name")
    study.set_user_attr("epochs_scale", epochs_scale)
    study.set_user_attr(REPLAY_ATTR, True)


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
    study = open_study(config, data)
    _check_scale(study, epochs_scale)
    done = replayed_trials(study)
    waiting = {t.user_attrs.get("seed_model") for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    missing = [name for name in models if name not in done]
    for name in missing:  # a model left waiting by an interrupted replay is not queued twice
        if name not in waiting:
            study.enqueue_trial(models[name].params, user_attrs={
                "seed_model": name, "epochs": scaled_epochs(models[name].epochs, epochs_scale)})
    if missing:
        run_worker(dataclasses.replace(config, trials=count(study) + len(missing)), len(missing), data,
                   callbacks=[stop_when_queue_empty])
    return study


def replay_table(study: optuna.Study, models: dict[str, NotebookModel]) -> pd.DataFrame:
    """Each chosen model's measured result beside the notebook's reported one."""
    trials = replayed_trials(study)
    rows = []
    for name, model in models.items():
        trial = trials.get(name)
        rows.append({"model": name,
                     "val_accuracy": round(trial.value, 4) if trial else None,
                     "seconds": trial.user_attrs.get("train_seconds") if trial else None,
                     "epochs": len(trial.user_attrs.get("history", [])) if trial else None,
                     "notebook_val_accuracy": model.reported.val_accuracy,
                     "notebook_seconds": model.reported.seconds, "notebook_epochs": model.epochs})
    return pd.DataFrame(rows)
