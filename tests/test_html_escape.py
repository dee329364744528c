"""The HTML reports escape every value that comes from the storage: study names, params, attributes."""
from __future__ import annotations

import html
from pathlib import Path

import optuna
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
