"""The notebook at a glance: per architecture, the notebook's best reported model, its replay here, and the
search's best."""
from __future__ import annotations

import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

import spaces
from search.console import counted
from search.data import LABEL_SETS
from search.figures import plot_text
from search.records import StudyRecord, TrialRecord, replay_scale
from search.replay import replayed_trials
from search.tables import whole_numbers
from search.winners import judged_value, last_val_accuracy, value_of, winner
from spaces._notebook import NOTEBOOK_SETUP, NotebookModel

NOTEBOOK_LABEL_SET = "fashion5"  # the notebook's five classes
# Each source's columns in the glance table, in the order the figure draws them.
SOURCES = ("notebook", "replay", "search")


def notebook_best(arch: str) -> tuple[str, NotebookModel]:
    """The notebook model of arch with the highest reported validation accuracy (the bar the search must clear).

    For LeNet that is model 4 (87.21%), although the notebook itself preferred model 1 for its lower loss."""
    notebook: dict[str, NotebookModel] = spaces.get(arch).NOTEBOOK
    name = max(notebook, key=lambda n: notebook[n].reported.val_accuracy)
    return name, notebook[name]


def on_fashion_mnist(study: optuna.Study) -> bool:
    """Whether the study ran on Fashion-MNIST (a label set of `data prepare`): only those compare with the notebook
    (a study of one's own images beat it by 9 points on 3 easy classes)."""
    return StudyRecord.of(study).label_set in (*LABEL_SETS, "")  # "": recorded before label sets were


def replay_studies(studies: list[optuna.Study]) -> dict[str, optuna.Study]:
    """The `hpsearch replay` study on Fashion-MNIST of each architecture among studies: of several, the last that
    replayed the notebook's best model (the glance compares with that model; taking the last study put another
    model's replay beside it), else the last; one with no model replayed yet (stopped, or still running) only
    where there is no other (it hid an earlier replay's results)."""
    chosen: dict[str, optuna.Study] = {}
    for study in studies:
        arch = StudyRecord.of(study).arch
        if replay_scale(study) is None or not on_fashion_mnist(study) or arch not in spaces.names():
            continue
        best, replayed = notebook_best(arch)[0], replayed_trials(study)
        held = replayed_trials(chosen[arch]) if arch in chosen else {}
        if arch not in chosen or (replayed and (not held or best in replayed or best not in held)):
            chosen[arch] = study
    return chosen


def _replay_columns(study: optuna.Study | None, preferred: str) -> dict:
    """The replay of the notebook's best model when it was replayed, else the best replayed model."""
    trials = replayed_trials(study) if study is not None else {}
    if study is None or not trials:
        return {}
    name = preferred if preferred in trials else max(trials, key=lambda n: last_val_accuracy(trials[n]))
    record = TrialRecord.of(trials[name])
    # After the last epoch, as the notebook reported its models (not the best epoch's).
    return {"replay_study": study.study_name, "replay_model": name,
            "replay_val_accuracy": round(last_val_accuracy(trials[name]), 4),
            "replay_seconds": record.train_seconds, "replay_epochs": len(record.history),
            "replay_params": record.n_params}


def _search_columns(studies: list[optuna.Study]) -> dict:
    """The best winner over arch's search studies (on Fashion-MNIST: `glance` chose them), on the notebook's label
    set where there is one."""
    best = [(s, t) for s in studies if (t := winner(s)) is not None]
    if not best:
        return {}
    study, trial = max(best, key=lambda pair: (StudyRecord.of(pair[0]).label_set == NOTEBOOK_LABEL_SET,
                                               judged_value(*pair)))
    record = TrialRecord.of(trial)
    # Its accuracy is its best epoch's: said with the epochs and seconds it took to get there (what export-best
    # retrains), not the whole trial's ("0.915 after 30 epochs" of a trial that peaked at epoch 12).
    epochs = record.best_epoch or len(record.history)
    seconds = sum(row["seconds"] for row in record.history[:epochs]) if all(
        "seconds" in row for row in record.history[:epochs]) else record.train_seconds
    return {"search_study": study.study_name, "search_trial": trial.number,
            "search_val_accuracy": round(value_of(trial), 4), "search_seconds": round(seconds, 3),
            "search_epochs": epochs, "search_params": record.n_params,
            "search_subset": StudyRecord.of(study).subset, "search_label_set": StudyRecord.of(study).label_set}


def verdict(search_accuracy: float | None, notebook_accuracy: float) -> str:
    """Whether the search beat the notebook's reported accuracy, in percentage points."""
    if search_accuracy is None or pd.isna(search_accuracy):
        return "no complete search trial yet"
    points = round(100 * (search_accuracy - notebook_accuracy), 2)  # as said: a gap under 0.005 is none
    if points == 0:  # it said "LOSES to the notebook by 0.00 pts"
        return "search matches the notebook (within 0.005 pts)"
    return f"search beats the notebook by {points:.2f} pts" if points > 0 else \
        f"search LOSES to the notebook by {-points:.2f} pts"


def glance(search: list[optuna.Study], replays: dict[str, optuna.Study]) -> pd.DataFrame:
    """One row per architecture that has a search or a replay study: notebook vs replay vs search."""
    rows = []
    for arch in spaces.names():
        arch_search = [s for s in search if StudyRecord.of(s).arch == arch and on_fashion_mnist(s)]
        if not arch_search and arch not in replays:
            continue
        name, model = notebook_best(arch)
        row = {"arch": arch, "notebook_model": name, "notebook_val_accuracy": model.reported.val_accuracy,
               "notebook_seconds": model.reported.seconds, "notebook_epochs": model.epochs,
               "notebook_params": model.reported.n_params,
               **_replay_columns(replays.get(arch), name), **_search_columns(arch_search)}
        row["search_vs_notebook"] = verdict(row.get("search_val_accuracy"), model.reported.val_accuracy)
        rows.append(row)
    return whole_numbers(pd.DataFrame(rows), [f"{source}_{count}" for source in SOURCES for count in
                                              ("trial", "epochs", "params", "subset")])


def glance_points(table: pd.DataFrame) -> pd.DataFrame:
    """The glance table in long form for the figure: one point per architecture and source."""
    rows = [{"arch": row["arch"], "source": source, "val_accuracy": row[f"{source}_val_accuracy"],
             "seconds": row[f"{source}_seconds"], "params": row.get(f"{source}_params")}
            for row in table.to_dict("records") for source in SOURCES
            if pd.notna(row.get(f"{source}_val_accuracy")) and pd.notna(row.get(f"{source}_seconds"))]
    return pd.DataFrame(rows, columns=["arch", "source", "val_accuracy", "seconds", "params"])


def glance_figure(table: pd.DataFrame) -> go.Figure:
    """Validation accuracy vs training seconds: the notebook's reported best, its replay here, the search's best."""
    points = glance_points(table)
    points["params"] = plot_text(points["params"])
    fig = px.scatter(points, x="seconds", y="val_accuracy", color="source", symbol="arch", log_x=True,
                     hover_data=["params"], category_orders={"source": list(SOURCES)})
    return go.Figure(fig).update_traces(marker_size=12).update_layout(
        title=f"Notebook (reported, {NOTEBOOK_SETUP}) vs its replay here vs the search's best")


def glance_lines(table: pd.DataFrame) -> list[str]:
    """One line per architecture: did the search beat the notebook's reported best, and on what footing."""
    lines = []
    for row in table.to_dict("records"):
        line = (f"{row['arch']}: {row['search_vs_notebook']} (notebook {row['notebook_model']}: "
                f"{row['notebook_val_accuracy']:.4f} after {row['notebook_epochs']} epochs on its own data, "
                f"{NOTEBOOK_SETUP}")
        if pd.notna(row.get("search_val_accuracy")):
            images = "all" if pd.isna(row.get("search_subset")) else f"{int(row['search_subset'])}"
            line += (f"; search trial {int(row['search_trial'])}: {row['search_val_accuracy']:.4f} after "
                     f"{counted(int(row['search_epochs']), 'epoch')} on {images} training "
                     "images here"
                     + (f" ({row['search_label_set']}; the notebook's are {NOTEBOOK_LABEL_SET})"
                        if row.get("search_label_set") not in (None, "", NOTEBOOK_LABEL_SET) else ""))
        lines.append(line + ")")
    return lines
