"""`hpsearch confirm`: retrain the best configurations with more seeds, so winners are judged by their mean."""
from __future__ import annotations

import statistics
from collections.abc import Callable

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

import spaces
from search.data import Dataset
from search.objective import EpochRecorder, ProgressFn, train

CONFIRMED = "confirmed"  # study user attribute: {trial number: {"seeds": [...], "scores": [...]}}


def confirmed(study: optuna.Study) -> dict[int, dict[str, list]]:
    """The confirmation runs recorded so far, by trial number."""
    return {int(number): entry for number, entry in study.user_attrs.get(CONFIRMED, {}).items()}


def spread(scores: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single score)."""
    return statistics.fmean(scores), statistics.stdev(scores) if len(scores) > 1 else 0.0


def best_by_mean(study: optuna.Study) -> FrozenTrial | None:
    """The confirmed trial with the highest mean score, if any trial was confirmed."""
    entries = confirmed(study)
    if not entries:
        return None
    number = max(entries, key=lambda n: spread(entries[n]["scores"])[0])
    return study.trials[number]


def confirm(study: optuna.Study, data: Dataset, top: int, seeds: int, *,
            progress: ProgressFn | None = None, say: Callable[[str], None] = print) -> pd.DataFrame:
    """Give each of the `top` best complete trials `seeds` runs (its own run counts as the first seed)."""
    arch = spaces.get(study.user_attrs.get("arch", study.study_name))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    chosen = sorted(complete, key=lambda t: t.value, reverse=True)[:top]
    entries = confirmed(study)
    for trial in chosen:
        first_seed = int(trial.user_attrs.get("seed", 1337))
        entry = entries.setdefault(trial.number, {"seeds": [first_seed], "scores": [trial.value]})
        epochs = len(trial.user_attrs.get("history", [])) or 1
        for seed in range(first_seed, first_seed + seeds):
            if seed in entry["seeds"]:
                continue  # done before: a rerun only adds what is missing
            say(f"trial {trial.number}: seed {seed}, {epochs} epochs")
            recorder = EpochRecorder(progress=progress)
            train(arch, trial.params, data, epochs, seed, recorder=recorder,
                  device_loop=bool(trial.user_attrs.get("device_loop")))
            entry["seeds"].append(seed)
            entry["scores"].append(recorder.best_epoch()[1])
            # saved after every run, so an interrupted confirm loses at most the run in progress
            study.set_user_attr(CONFIRMED, {str(n): e for n, e in entries.items()})
    return confirmation_table(study)


def confirmation_table(study: optuna.Study) -> pd.DataFrame:
    """One row per confirmed trial: its single-run value, mean and spread over seeds, best mean first."""
    rows = []
    for number, entry in confirmed(study).items():
        mean, std = spread(entry["scores"])
        rows.append({"trial": number, "value": study.trials[number].value, "mean": round(mean, 4),
                     "std": round(std, 4), "seeds": len(entry["scores"]),
                     "scores": [round(s, 4) for s in entry["scores"]]})
    frame = pd.DataFrame(rows, columns=["trial", "value", "mean", "std", "seeds", "scores"])
    return frame.sort_values("mean", ascending=False).reset_index(drop=True)
