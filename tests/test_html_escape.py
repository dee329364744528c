"""The HTML reports escape every value that comes from the storage: study names, params, attributes."""
from __future__ import annotations

import html
import json
from pathlib import Path

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from typer.testing import CliRunner

from search.cli import app
from search.storage import open_storage

runner = CliRunner()
HOSTILE = "<script>alert(1)</script>"


def test_reports_escape_hostile_names_params_and_attributes(tiny_data: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = runner.invoke(app, ["study", "lenet", "--trials", "2", "--epochs", "1", "--subset", "50", "-q",
                                 "--pruner", "none", "--study-name", HOSTILE, "--data", str(tiny_data),
                                 "--storage", url])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name=HOSTILE, storage=open_storage(url))
    study.set_user_attr("note", HOSTILE)
    model = study.best_trial  # a copy of it that wins, with a hostile param and attribute
    study.add_trial(optuna.trial.create_trial(
        params={**model.params, "note": HOSTILE},
        distributions={**model.distributions, "note": CategoricalDistribution([HOSTILE, "plain"])},
        value=1.0, intermediate_values=model.intermediate_values,
        user_attrs={**model.user_attrs, "seed_model": HOSTILE, HOSTILE: HOSTILE}))
    export = runner.invoke(app, ["export-best", "lenet", "--study-name", HOSTILE, "--storage", url,
                                 "--data", str(tiny_data), "--out", str(tmp_path / "best"), "-q"])
    assert export.exit_code == 0, export.output
    report = runner.invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "report.html")])
    assert report.exit_code == 0, report.output
    for page in (tmp_path / "best" / "report.html", tmp_path / "report.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "</script>alert" not in text
        assert html.escape(HOSTILE) in text  # shown, as text


def test_charts_draw_names_from_the_storage_and_data_as_text() -> None:
    """Plotly draws tags in trace names, axis labels and hover text and turns entities back into characters: a study
    named "lr<0.01 & bs>32" lost its middle, and "<b>x" came out bold (a review's). Every chart of hpsearch's own
    gets the names escaped; Optuna's plots of a study get them as the study holds them."""
    import numpy as np

    from search.figures import confusion_figure
    from search.notebook import glance_figure
    from search.report import comparison_sections

    name = "lr<0.01 & <b>bs</b>>32"
    shown = html.escape(name, quote=False)
    curves = pd.DataFrame({"study": [name], "epoch": [1], "val_accuracy": [0.5]})
    points = pd.DataFrame({"study": [name], "arch": ["lenet"], "trial": [0], "state": ["COMPLETE"], "epochs": [2],
                           "val_accuracy": [0.5], "steady_seconds": [1.0], "pareto": [True]})
    confirmed = pd.DataFrame({"label": [f"{name} #0"], "group": [name], "mean": [0.5], "std": [0.01]})
    glance = pd.DataFrame({"arch": ["lenet"], **{f"{source}_{column}": [value] for source in ("notebook", "replay",
                          "search") for column, value in (("val_accuracy", 0.5), ("seconds", 1.0), ("params", name))}})
    figures = [*(section.figure for section in comparison_sections(curves, points, confirmed)),
               confusion_figure(np.eye(2, dtype=int), [name, "plain"], "matrix"), glance_figure(glance)]
    assert len(figures) == 6
    for figure in figures:
        text = json.dumps(json.loads(figure.to_json()))  # without Plotly's \u003c-style escapes
        assert name not in text and "<b>" not in text and shown in text, text[:3000]
