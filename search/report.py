"""`hpsearch report`: the notebook's comparison at a glance across every architecture study in a storage (the
data steps here; the drawing in search.figures)."""
from __future__ import annotations

import html
import math
from pathlib import Path

import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from optuna.trial import TrialState

import spaces
from search.console import format_params
from search.export_files import written_whole
from search.figures import Section, confirmed_figure, epoch_ticks, plot_text, write_html
from search.notebook import glance, glance_figure, glance_lines
from search.pareto import STEADY_SECONDS
from search.records import FINISHED, StudyRecord, TrialRecord, is_search
from search.tables import confirmation_table, confirmed_entry, whole_numbers
from search.winners import (
    judged_confirmations,
    judged_value,
    pareto_front,
    seconds_of,
    shown_accuracy,
    value_of,
    winner,
)
from spaces.param_names import model_params


def arch_studies(studies: list[optuna.Study]) -> list[optuna.Study]:
    """The search studies among studies (hpsearch made them for a known architecture; replays are apart)."""
    return [s for s in studies if is_search(s, spaces.names())]


def summary_row(study: optuna.Study) -> dict:
    """One row of the comparison: best accuracy and loss, times, trial counts, size, layers, params."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    record = StudyRecord.of(study)
    row: dict = {"study": study.study_name, "arch": record.arch,
                 "complete": states.count(TrialState.COMPLETE), "pruned": states.count(TrialState.PRUNED),
                 "failed": states.count(TrialState.FAIL),
                 "study_seconds": round(sum(t.duration.total_seconds() for t in trials if t.duration), 1),
                 "classes": ", ".join(record.class_names)}
    best = winner(study)
    if best is None:
        return row
    chosen = confirmed_entry(confirmation_table(study), best.number)
    if chosen is not None and best.number in judged_confirmations(study):  # chosen by its mean over seeds
        row.update(confirmed_trial=best.number, confirmed_mean=chosen["mean"], confirmed_std=chosen["std"],
                   confirmed_seeds=int(chosen["seeds"]))
    trial = TrialRecord.of(best)
    history = trial.history or [{}]
    # Layer counts were recorded at training time; a trial recorded before they were shows none.
    layers = {kind: trial.layers.get(kind) for kind in ("conv", "pooling", "dense")}
    row.update(judged=judged_value(study, best), best_trial=best.number, best_val_accuracy=round(value_of(best), 4),
               best_val_loss=round(history[min(trial.best_epoch or 1, len(history)) - 1].get("val_loss", math.nan), 4),
               best_train_seconds=trial.train_seconds, n_params=trial.n_params, **layers,
               best_params=model_params(best.params))
    return row


# Counts and numbers of the comparison: whole numbers, which a study without a result must not turn into floats.
WHOLE_COLUMNS = ("complete", "pruned", "failed", "best_trial", "n_params", "conv", "pooling", "dense",
                 "confirmed_trial", "confirmed_seeds")


def comparison(studies: list[optuna.Study]) -> pd.DataFrame:
    """The comparison table, best study first: by its winner's confirmed mean where `confirm` chose it, else by
    its winner's accuracy (a confirmed study was ranked by its winner's single run, which may be below another
    of its trials')."""
    rows = [summary_row(s) for s in studies]
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["study", "arch"])  # replays alone: no searches
    whole_numbers(frame, WHOLE_COLUMNS)
    if "judged" not in frame:
        return frame
    return frame.sort_values("judged", ascending=False, na_position="last").drop(columns="judged")


def best_curves(studies: list[optuna.Study]) -> pd.DataFrame:
    """Per-epoch validation accuracy of each study's winner (long format)."""
    rows = []
    for study in studies:
        best = winner(study)
        for epoch in (TrialRecord.of(best).history if best else []):
            rows.append({"study": study.study_name, "epoch": epoch["epoch"], "val_accuracy": epoch.get("val_accuracy")})
    return pd.DataFrame(rows, columns=["study", "epoch", "val_accuracy"])


def trial_points(studies: list[optuna.Study]) -> pd.DataFrame:
    """Every finished trial: its architecture, state, value and steady training seconds (those of an accuracy-time
    study's front), and whether it is on its accuracy-time study's Pareto front."""
    rows = []
    for s in studies:
        front = {t.number for t in pareto_front(s)} if len(s.directions) > 1 else set()
        rows += [{"study": s.study_name, "arch": StudyRecord.of(s).arch, "trial": t.number, "state": t.state.name,
                  "epochs": len(TrialRecord.of(t).history), "val_accuracy": shown_accuracy(t),
                  "steady_seconds": seconds_of(t), "pareto": t.number in front}
                 for t in s.get_trials(deepcopy=False, states=FINISHED)]
    return pd.DataFrame(rows, columns=["study", "arch", "trial", "state", "epochs", "val_accuracy", "steady_seconds",
                                       "pareto"])


def confirmed_points(studies: list[optuna.Study]) -> pd.DataFrame:
    """Every confirmed configuration of every study: mean and spread over seeds."""
    frames = []
    for study in studies:
        table = confirmation_table(study)
        frames.append(table.assign(group=StudyRecord.of(study).arch,
                                   label=[f"{study.study_name} #{n}" for n in table["trial"]]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def comparison_sections(curves: pd.DataFrame, points: pd.DataFrame, confirmed: pd.DataFrame) -> list[Section]:
    """The charts: best learning curves, accuracy vs training time of all trials, confirmed configurations."""
    curves, points = curves.assign(study=plot_text(curves["study"])), points.assign(study=plot_text(points["study"]))
    curve_fig = px.line(curves, x="epoch", y="val_accuracy", color="study", markers=True).update_xaxes(
        **epoch_ticks(curves["epoch"]))
    seconds = {"steady_seconds": STEADY_SECONDS}
    # By study, not architecture: two studies of one architecture (another objective, other data) looked as one.
    scatter = px.scatter(points, x="steady_seconds", y="val_accuracy", color="study", symbol="state",
                         hover_data=["arch", "trial", "epochs"], labels=seconds)
    figures = [go.Figure(curve_fig), go.Figure(scatter)]
    sections = [Section("Best learning curve of each study", figures[0]),
                Section("Validation accuracy vs training time, all trials", figures[1])]
    front = points[points["pareto"].astype(bool)].sort_values("steady_seconds")
    if len(front):  # accuracy-time studies: each front as a staircase from fastest to most accurate
        figures.append(go.Figure(px.line(front, x="steady_seconds", y="val_accuracy", color="study", markers=True,
                                         line_shape="hv", hover_data=["trial"], labels=seconds)))
        sections.append(Section("Pareto fronts of the accuracy-time studies", figures[-1]))
    for figure in figures:  # legends of study names below the plot: a long name beside it left the plot 80 px wide
        figure.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2})
    if len(confirmed):
        sections.append(Section("Confirmed configurations (hpsearch confirm)", confirmed_figure(confirmed)))
    return sections


def write_report(studies: list[optuna.Study], out: Path, replays: dict[str, optuna.Study] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame, Path, Path]:
    """Write the comparison as CSV (beside out, with the notebook's columns per architecture) and HTML;
    return the comparison, the notebook-at-a-glance table and both paths."""
    table, notebook = comparison(studies), glance(studies, replays or {})
    csv_path = out.with_suffix(".csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    notebook_columns = notebook.drop(columns=[c for c in notebook if c.startswith("search_") and c not in (
        "search_vs_notebook", "search_study")]).assign(search_study=notebook.get("search_study"))  # none: replays
    # Outer: an architecture with only a replay still gets its row (the notebook's and replay's columns).
    merged = table.merge(notebook_columns, on="arch", how="outer") if len(notebook) else table
    if len(notebook):  # not beside another study of the architecture than the one the glance compared (one on
        # one's own images, or another Fashion-MNIST study, showed a verdict computed from another study's winner)
        other = merged["search_study"].notna() & (merged["study"] != merged["search_study"])
        merged.loc[other, [c for c in notebook_columns if c not in ("arch", "search_study")]] = None
        merged = merged.drop(columns="search_study")
    with written_whole(csv_path) as temporary:
        whole_numbers(merged, WHOLE_COLUMNS).to_csv(temporary, index=False)
    if studies:
        shown = table.drop(columns=["best_params"], errors="ignore")
        # As a trial's line in the terminal gives them (floats to 3 digits), not as a Python dict.
        params = table[["study", "best_params"]].assign(best_params=lambda frame: frame["best_params"].map(
            lambda value: format_params(value) if isinstance(value, dict) else "")) if "best_params" in table else None
        intro = shown.to_html(index=False, na_rep="") + (
            "<h3>Best params</h3>" + params.to_html(index=False, na_rep="") if params is not None else "")
    else:
        intro = "<p>No search studies yet; only the notebook's replays (run <code>hpsearch study ARCH</code>).</p>"
    # The verdicts as sentences, first: as the table's last column they sat off-screen, right of 14 others.
    if len(notebook):
        intro += ("<h2>The notebook at a glance</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in
                                                                   glance_lines(notebook)) + "</ul>"
                  + notebook.drop(columns=["search_vs_notebook"]).to_html(index=False, na_rep=""))
    sections = [*([Section("The notebook at a glance: accuracy vs seconds", glance_figure(notebook))]
                  if len(notebook) else []),
                *(comparison_sections(best_curves(studies), trial_points(studies), confirmed_points(studies))
                  if studies else [])]
    html_path = write_html(sections, out, "hpsearch: comparison at a glance", intro)
    return table, notebook, csv_path, html_path
