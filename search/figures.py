"""Plotly figures for one training run and one study, and the offline HTML page that holds them."""
from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from search.export_files import written_whole
from search.pareto import STEADY_SECONDS

# The notebook's six plots of a run: (title, x column, y column).
RUN_PLOTS: tuple[tuple[str, str, str], ...] = (
    ("Training loss vs epoch", "epoch", "loss"),
    ("Validation loss vs epoch", "epoch", "val_loss"),
    ("Training accuracy vs epoch", "epoch", "accuracy"),
    ("Validation accuracy vs epoch", "epoch", "val_accuracy"),
    ("Training accuracy vs training loss", "loss", "accuracy"),
    ("Validation accuracy vs validation loss", "val_loss", "val_accuracy"),
)


def plot_text(values: pd.Series) -> pd.Series:
    """Names from the storage or the data (study, class, params) as Plotly draws them literally: Plotly renders
    tags such as <b>, <br> and <a href> in names, labels and hover text, and turns entities back into characters
    (a study named "lr<0.01 & bs>32" lost its middle, "<b>x" came out bold)."""
    return values.map(lambda value: html.escape(value, quote=False) if isinstance(value, str) else value)


@dataclass(frozen=True)
class Section:
    """One figure on the page, or a note where a figure cannot be drawn (e.g. too few trials)."""

    title: str
    figure: go.Figure | None = None
    note: str = ""


def epoch_ticks(epochs: pd.Series) -> dict[str, float]:
    """Axis settings for an epoch axis: whole epochs only (Plotly put ticks at 1.2, 1.4, ... under a 3-epoch run),
    about ten of them at most."""
    step = max(1, math.ceil(float(epochs.max()) / 10)) if len(epochs) else 1
    return {"tick0": 1 if step == 1 else 0, "dtick": step}


def run_figure(history: pd.DataFrame, title: str = "Exported run") -> go.Figure:
    """The notebook's six plots of one run, as a 3x2 grid."""
    fig = make_subplots(rows=3, cols=2, subplot_titles=[t for t, _, _ in RUN_PLOTS])
    for i, (_, x, y) in enumerate(RUN_PLOTS):
        fig.add_trace(go.Scatter(x=history[x], y=history[y], mode="lines+markers", name=y, showlegend=False),
                      row=i // 2 + 1, col=i % 2 + 1)
        fig.update_xaxes(title_text=x, row=i // 2 + 1, col=i % 2 + 1,
                         **(epoch_ticks(history[x]) if x == "epoch" else {}))
        fig.update_yaxes(title_text=y, row=i // 2 + 1, col=i % 2 + 1)
    return fig.update_layout(title=title, height=900)


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str) -> go.Figure:
    """A confusion matrix heatmap with counts (rows: true class, columns: predicted)."""
    names = list(plot_text(pd.Series(class_names)))
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues",
                               text=matrix, texttemplate="%{text}"))
    return fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true",
                             yaxis_autorange="reversed")


def confirmed_figure(table: pd.DataFrame) -> go.Figure:
    """Mean validation accuracy over seeds with one-standard-deviation error bars, per configuration."""
    fig = go.Figure()
    for group, rows in table.groupby("group", sort=False):
        fig.add_trace(go.Bar(x=plot_text(rows["label"]), y=rows["mean"], name=plot_text(pd.Series([group]))[0],
                             error_y={"type": "data", "array": rows["std"], "visible": True}))
    return fig.update_layout(title="Confirmed configurations: mean validation accuracy over seeds (±1 sd)",
                             yaxis_title="val_accuracy", xaxis_title="configuration")


def pareto_figure(study: optuna.Study, marked: Sequence[int] = ()) -> go.Figure:
    """Optuna's Pareto-front plot of a two-objective study, the front in one strong colour and the dominated trials
    pale (Optuna shades both by trial number, which drew the front's first trials nearly white); the `marked`
    trials (an export's) ringed."""
    figure = optuna.visualization.plot_pareto_front(study, target_names=["val_accuracy", STEADY_SECONDS])
    for trace in figure.data:
        front = "Best Trial" in (trace.hovertemplate or "")  # Optuna's label of the front's trials
        trace.update(name="Pareto front" if front else "dominated", showlegend=True,
                     marker={"color": "#d62728" if front else "#c6dbef", "showscale": False, "size": 9})
    points = [trial.values for trial in study.get_trials(deepcopy=False) if trial.number in marked and trial.values]
    if points:
        figure.add_scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", name="exported",
                           marker={"symbol": "circle-open", "size": 18, "color": "black", "line": {"width": 2}},
                           hoverinfo="skip")
    return figure


def _learning_curves(study: optuna.Study) -> go.Figure:
    """Optuna's intermediate values (each trial's accuracy per epoch) on an axis of whole epochs."""
    steps = [step for trial in study.get_trials(deepcopy=False) for step in trial.intermediate_values]
    return optuna.visualization.plot_intermediate_values(study).update_xaxes(
        title="epoch", **epoch_ticks(pd.Series(steps, dtype=float)))


def study_sections(study: optuna.Study, marked: Sequence[int] = ()) -> list[Section]:
    """Optuna's own plots of a study: history, learning curves, importances, coordinates, timeline; for an
    accuracy-time study the Pareto front first (the `marked` trials ringed), and the rest on accuracy (it reports
    no learning curves)."""
    vis = optuna.visualization
    plots: tuple[tuple[str, Callable[[optuna.Study], go.Figure]], ...]
    if len(study.directions) > 1:
        def accuracy(trial: optuna.trial.FrozenTrial) -> float:
            """A trial's validation accuracy, the first of its two values."""
            return float(trial.values[0])

        plots = (("Pareto front: validation accuracy vs steady training seconds (the front in red, dominated trials "
                  "pale; the exported trials ringed)", partial(pareto_figure, marked=marked)),
                 ("Optimization history (accuracy)",
                  partial(vis.plot_optimization_history, target=accuracy, target_name="val_accuracy")),
                 ("Hyperparameter importances for accuracy",
                  partial(vis.plot_param_importances, target=accuracy, target_name="val_accuracy")),
                 ("Parallel coordinates (accuracy)",
                  partial(vis.plot_parallel_coordinate, target=accuracy, target_name="val_accuracy")),
                 ("Trial timeline and durations", vis.plot_timeline))
    else:
        plots = (("Optimization history", vis.plot_optimization_history),
                 ("Learning curves of all trials (pruned ones included)", _learning_curves),
                 ("Hyperparameter importances", vis.plot_param_importances),
                 ("Parallel coordinates", vis.plot_parallel_coordinate),
                 ("Trial timeline and durations", vis.plot_timeline))
    sections = []
    for title, plot in plots:
        try:
            with warnings.catch_warnings():  # e.g. "some regimes have less than 2 trials": fine for a picture
                warnings.simplefilter("ignore", UserWarning)
                sections.append(Section(title, plot(study)))
        except (ValueError, RuntimeError) as exc:  # e.g. importances need two complete trials
            sections.append(Section(title, note=f"not drawn: {exc}"))
    return sections


def write_html(sections: Sequence[Section], path: Path, title: str, intro_html: str = "") -> Path:
    """One self-contained HTML file (plotly.js inline, no CDN) with every section."""
    parts = [f"<h2>{html.escape(s.title)}</h2>" + (
        s.figure.to_html(full_html=False, include_plotlyjs=False) if s.figure is not None
        else f"<p class='note'>{html.escape(s.note)}</p>") for s in sections]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<script>{get_plotlyjs()}</script><style>body{{font-family:sans-serif;margin:2em}}"
            f"table{{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}}"
            f"td,th{{border:1px solid #ccc;padding:2px 6px}}"
            # The first column names the study: a long name breaks there rather than push the table off-screen.
            f"td:first-child{{min-width:8em;max-width:30em;overflow-wrap:anywhere}}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{intro_html}{''.join(parts)}</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return path
