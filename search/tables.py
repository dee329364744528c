"""Tables of trials for the terminal, built on Optuna's trials_dataframe."""
from __future__ import annotations

import optuna
import pandas as pd


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, seconds, size, best epoch, failure reason and params."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    if frame.empty:
        return frame
    out = pd.DataFrame({"number": frame["number"], "state": frame["state"],
                        "val_accuracy": frame.get("value")})
    out["seconds"] = frame["duration"].dt.total_seconds().round(1)
    for attr in ("train_seconds", "n_params", "best_epoch", "seed_model", "fail_reason"):
        column = f"user_attrs_{attr}"
        if column in frame:
            out[attr] = frame[column]
    for column in ("n_params", "best_epoch"):
        if column in out:
            out[column] = pd.to_numeric(out[column]).astype("Int64")
    params = frame[[c for c in frame.columns if c.startswith("params_")]]
    out = pd.concat([out, params.rename(columns=lambda c: c.removeprefix("params_"))], axis=1)
    return out.fillna("")
