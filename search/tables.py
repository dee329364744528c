"""Tables of trials for the terminal, built from Optuna's trials and hpsearch's trial records."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from search.console import counted
from search.records import FINISHED, TrialRecord, confirmations
from search.winners import pareto_front, seconds_of, shown_accuracy, trial_by_number, value_of
from spaces.param_names import model_params

# The trial record's fields a table shows, beside Optuna's number, state, value, duration and params.
RECORD_COLUMNS = ("train_seconds", "n_params", "best_epoch", "seed_model", "fail_reason")
STALE = "stale: its worker stopped sending heartbeats"
ENQUEUED = ("seed_model",)  # of RECORD_COLUMNS, what a trial holds before it runs


def whole_numbers(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """frame with those of columns it has as whole numbers, NaN where a row has none (a missing value turned a
    column of counts into floats: 2.0). Python ints, not pandas' Int64, whose <NA> ignores every na_rep."""
    for column in columns:
        if column in frame:
            frame[column] = pd.Series([np.nan if pd.isna(v) else int(v) for v in frame[column]], index=frame.index,
                                      dtype=object)
    return frame


def _measured(record: TrialRecord, column: str) -> bool:
    """Whether the record's value of `column` was measured: seconds and best epoch need an epoch, a size a model."""
    if column in ("train_seconds", "best_epoch"):
        return bool(record.history)
    return bool(record.n_params) if column == "n_params" else True


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, seconds, size, best epoch, failure reason and params; in an
    accuracy-time study, `pareto` marks the trials of the Pareto front with a *, beside their steady seconds; in a
    study whose trials trained more than one way, `trained` says how each did; after `confirm`, `confirmed` gives
    a confirmed trial's mean over its seeds (the best mean wins the study)."""
    # One read of the storage: every column comes from the same trials, even while workers add more.
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return pd.DataFrame()
    out = pd.DataFrame({"number": [t.number for t in trials], "state": [t.state.name for t in trials],
                        "val_accuracy": [shown_accuracy(t) for t in trials]})
    if len(study.directions) > 1:  # the front and the second objective it is drawn on (search.pareto)
        front = {t.number for t in pareto_front(study)}
        out.insert(0, "pareto", ["*" if t.number in front else "" for t in trials])
        out["steady_seconds"] = [seconds_of(t) if t.state in FINISHED else None for t in trials]  # not a failed one
    if confirmed := confirmations(study):
        out["confirmed"] = [f"{confirmed[t.number].mean:.4f} ({counted(len(confirmed[t.number].seeds), 'seed')})"
                            if t.number in confirmed else None for t in trials]
    # A running or waiting trial has no duration yet.
    out["seconds"] = [None if t.duration is None else round(t.duration.total_seconds(), 1) for t in trials]
    recorded = [TrialRecord.of(trial) for trial in trials]
    # A trial whose worker went silent is failed by another process through Optuna's heartbeat check, after which
    # its attributes can no longer be written; its retry (search.storage) names it in Optuna's retry_history.
    retries = {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}
    for trial, record in zip(trials, recorded, strict=True):
        if trial.state != TrialState.FAIL or record.fail_reason:
            continue
        if trial.number in retries:
            record.fail_reason = f"{STALE} (retried as trial {retries[trial.number]})"
        elif trial.system_attrs.get("retry_history"):  # a retry, failed as its original was: not retried again
            record.fail_reason = f"{STALE} (not retried again)"
    for column in RECORD_COLUMNS:
        # What a trial measured is blank until it ends (a waiting trial showed 0.000 seconds and 0 params), and
        # where it measured nothing: a trial failed before it ran, an orphan whose process died before its last
        # writes, or one stopped before its first epoch (or its model) showed 0 s, 0 params and best epoch 0 as if
        # measured. A stale trial's fail_reason is said above, unwritten.
        values = [getattr(record, column) if (trial.state.is_finished() or column in ENQUEUED) and
                  (column in trial.user_attrs or column == "fail_reason") and _measured(record, column) else None
                  for trial, record in zip(trials, recorded, strict=True)]
        if any(values):  # a column nobody filled in (e.g. no failures) is left out
            out[column] = values
    whole_numbers(out, ("n_params", "best_epoch"))
    ways = [r.way if r.backend and t.state.is_finished() else None for t, r in zip(trials, recorded, strict=True)]
    if len(set(ways) - {None}) > 1:  # a study resumed with another backend, device or precision: which trial is which
        out["trained"] = ways
    # Plain names (spaces.param_names): one learning_rate column, not one per optimizer. Objects, each value as it
    # was sampled: a trial without params (still waiting, or failed at once) made a batch size of 64 print as 64.0.
    out = pd.concat([out, pd.DataFrame([model_params(t.params) for t in trials], index=out.index, dtype=object)],
                    axis=1)
    # Blank where a trial has no value: as objects first (pandas will stop filling a float column with text).
    gaps = [column for column in out if out[column].isna().any()]
    return out.astype(dict.fromkeys(gaps, object)).fillna("")


def confirmation_table(study: optuna.Study) -> pd.DataFrame:
    """One row per confirmed trial: its single-run value, mean and spread over seeds, best mean first."""
    # In the winner's order (search.winners): a mean over seeds before one run alone, by the exact mean (rounded,
    # a tie could put another trial first than the winner).
    entries = sorted(confirmations(study).items(), key=lambda item: (item[1].judged, item[1].mean), reverse=True)
    rows = [{"trial": number, "value": value_of(trial_by_number(study, number)), "mean": round(entry.mean, 4),
             "std": round(entry.std, 4), "seeds": len(entry.scores), "scores": [round(s, 4) for s in entry.scores]}
            for number, entry in entries]
    return pd.DataFrame(rows, columns=["trial", "value", "mean", "std", "seeds", "scores"])


def confirmed_entry(table: pd.DataFrame, number: int) -> dict[str, Any] | None:
    """A trial's row of the confirmation table as JSON values (params.json), or None if it was not confirmed.
    One seed's spread is unknown: null, as JSON has no NaN."""
    rows = table[table["trial"] == number]
    if not len(rows):
        return None
    row = rows.iloc[0].astype(object)
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
