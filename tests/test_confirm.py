"""hpsearch confirm: more seeds for the best configurations, resumable, and used by export-best and report."""
from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

import search.confirm
import search.export
import search.objective
from search.cli import app
from search.errors import UserError
from search.objective import TrialFailed
from search.records import confirmations as confirmed
from search.records import save_confirmation
from search.report import comparison
from search.tables import confirmation_table, confirmed_entry
from search.winners import ranked, unconfirmed_note, winner
from tests.conftest import load, study_in

runner = CliRunner()


@pytest.fixture(scope="module")
def study_url(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return study_in(tmp_path_factory.mktemp("confirm"), tiny_data, "lenet", "--trials", "3", "--epochs", "2",
                    "--subset", "200", "--pruner", "none")


def _confirm(url: str, data: Path, seeds: int) -> object:
    return runner.invoke(app, ["confirm", "lenet", "--top", "2", "--seeds", str(seeds), "--storage", url,
                               "--data", str(data), "-q"])


def test_confirm_runs_each_top_configuration_with_more_seeds(study_url: str, tiny_data: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    result = _confirm(study_url, tiny_data, 3)
    assert result.exit_code == 0, result.output
    study = load(study_url)
    ranked = sorted(study.trials, key=lambda t: t.value, reverse=True)[:2]
    entries = confirmed(study)
    assert sorted(entries) == sorted(t.number for t in ranked)
    for trial in ranked:
        entry = entries[trial.number]
        assert entry.seeds == [1337, 1338, 1339] and entry.scores[0] == trial.value
        assert all(0.0 <= score <= 1.0 for score in entry.scores)
    table = confirmation_table(study)
    assert list(table["seeds"]) == [3, 3] and table["mean"].is_monotonic_decreasing
    assert "mean" in result.stdout and "std" in result.stdout

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished confirmation run was repeated")

    monkeypatch.setattr(search.confirm, "retrain", must_not_train)
    assert _confirm(study_url, tiny_data, 3).exit_code == 0  # the same command again: nothing to do
    copy = tmp_path / "copy.db"  # the module's study stays as the later tests expect it
    shutil.copy(study_url.removeprefix("sqlite:///"), copy)
    more = runner.invoke(app, ["confirm", "lenet", "--top", "9", "--seeds", "1", "--storage", f"sqlite:///{copy}",
                               "--data", str(tiny_data), "-q"])  # seed 1 of each is its own run: nothing to train
    assert more.exit_code == 0 and "--top 9: the study has 3 complete trials; confirming those" in more.stderr
    single = confirmation_table(load(f"sqlite:///{copy}"))
    (third,) = single[single["seeds"] == 1]["trial"]  # the one trial that only has its own run
    assert math.isnan(single.set_index("trial")["std"][third])  # a spread of one run is unknown, not 0
    line = next(line.split() for line in more.stdout.splitlines() if line.split()[:1] == [str(third)])
    assert line[3] == "-", more.stdout  # trial, value, mean, std
    entry = confirmed_entry(single, int(third))
    assert entry is not None and entry["std"] is None and json.loads(json.dumps(entry, default=int)) == entry
    assert confirmed_entry(single, 999) is None


def test_export_best_uses_the_best_mean_and_report_draws_error_bars(study_url: str, tiny_data: Path,
                                                                    tmp_path: Path) -> None:
    if not confirmed(load(study_url)):
        assert _confirm(study_url, tiny_data, 3).exit_code == 0
    table = confirmation_table(load(study_url))
    result = runner.invoke(app, ["export-best", "lenet", "--storage", study_url, "--data", str(tiny_data),
                                 "--out", str(tmp_path / "best"), "--full-train"])
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "best" / "params.json").read_text())
    assert params["trial"] == int(table["trial"][0]) and params["confirmed"]["mean"] == table["mean"][0]
    # It says what it chose by (the mean), and that --full-train's validation rows were trained on.
    assert f"(confirmed mean {table['mean'][0]:.4f} over 3 seeds, val_accuracy" in result.stderr
    assert "(the validation rows were trained on too: --full-train)" in result.stdout
    html = (tmp_path / "best" / "report.html").read_text()
    assert "Confirmed configurations" in html and html.count("Plotly.newPlot(") == 8
    row = comparison([load(study_url)]).iloc[0]
    assert row["confirmed_trial"] == table["trial"][0] and row["confirmed_std"] == table["std"][0]
    out = tmp_path / "cmp.html"
    assert runner.invoke(app, ["report", "--storage", study_url, "--out", str(out)]).exit_code == 0
    # best curves, accuracy vs time, the notebook at a glance, confirmed configurations
    assert out.read_text().count("Plotly.newPlot(") == 4


def test_best_trials_of_two_backends_confirm_those_of_this_one_and_name_the_other(
        study_url: str, tiny_data: Path, tmp_path: Path) -> None:
    """A study resumed on another backend: the best two trained on tensorflow and jax. confirm refused the whole
    run on either backend, each error naming the other; it confirms this backend's and says how to do the rest."""
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(study_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    first, second = sorted(load(url).trials, key=lambda t: t.value, reverse=True)[:2]
    with sqlite3.connect(copy) as connection:  # as if the runner-up trained on JAX (Optuna keeps finished trials)
        connection.execute("DELETE FROM study_user_attributes WHERE key LIKE 'confirmed%'")
        updated = connection.execute(
            "UPDATE trial_user_attributes SET value_json = '\"jax\"' WHERE key = 'backend' AND trial_id = "
            "(SELECT trial_id FROM trials WHERE number = ?)", (second.number,)).rowcount
    assert updated == 1 and not confirmed(load(url))
    result = runner.invoke(app, ["confirm", "lenet", "--top", "2", "--seeds", "2", "--storage", url,
                                 "--data", str(tiny_data), "--backend", "tensorflow"])
    assert result.exit_code == 0, result.output
    assert (f"trial {second.number} trained on jax: not confirmed here, as confirm adds seeds on a trial's own "
            "backend (this run is on tensorflow); the same command with --backend jax confirms it") in result.stderr
    entries = confirmed(load(url))
    assert list(entries) == [first.number] and entries[first.number].seeds == [1337, 1338]
    # The study's closing line and `trials` say the confirmed mean that chose the winner beside its single run.
    mean = entries[first.number].mean
    resumed = runner.invoke(app, ["study", "lenet", "--trials", "3", "--storage", url, "--data", str(tiny_data)])
    assert resumed.exit_code == 0, resumed.output
    assert (f"best: trial {first.number}, confirmed mean {mean:.4f} over 2 seeds, val_accuracy "
            f"{first.value:.4f}, params") in resumed.stdout
    rows = runner.invoke(app, ["trials", "lenet", "--storage", url]).stdout.splitlines()
    assert rows[0].split()[:4] == ["number", "state", "val_accuracy", "confirmed"]
    assert rows[1 + first.number].split()[3:5] == [f"{mean:.4f}", "(2"], rows
    assert "seed" not in rows[1 + second.number]  # blank where a trial is not confirmed
    # Once the JAX trial has its seeds too (confirmed on a JAX machine), a rerun on either backend has nothing to
    # run: it said to confirm it with --backend jax, and where every chosen trial was JAX's it refused (exit 2).
    for seed, score in ((1337, second.value), (1338, 0.5)):
        save_confirmation(load(url), second.number, seed, score)
    again = runner.invoke(app, ["confirm", "lenet", "--top", "2", "--seeds", "2", "--storage", url,
                                "--data", str(tiny_data), "--backend", "tensorflow"])
    assert again.exit_code == 0 and "trained on jax" not in again.stderr, again.output
    with sqlite3.connect(copy) as connection:  # both JAX's now
        connection.execute("UPDATE trial_user_attributes SET value_json = '\"jax\"' WHERE key = 'backend'")
    again = runner.invoke(app, ["confirm", "lenet", "--top", "2", "--seeds", "2", "--storage", url,
                                "--data", str(tiny_data), "--backend", "tensorflow"])
    assert again.exit_code == 0 and "trained on jax" not in again.stderr, again.output
    assert confirmed(load(url)) == entries | {second.number: confirmed(load(url))[second.number]}


def test_confirm_needs_positive_counts(study_url: str) -> None:
    result = runner.invoke(app, ["confirm", "lenet", "--seeds", "0", "--storage", study_url])
    assert result.exit_code == 2 and "--seeds must be at least 1" in result.stderr


def test_a_seed_that_diverges_scores_zero_in_confirm_and_stops_export_in_one_line(
        study_url: str, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(study_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    before = confirmed(load(url))

    def diverges(*args: object, **kwargs: object) -> None:
        raise TrialFailed("loss became nan in epoch 1")

    monkeypatch.setattr(search.confirm, "retrain", diverges)
    result = _confirm(url, tiny_data, 5)  # seeds 4 and 5 are new to every confirmed trial
    assert result.exit_code == 0, result.output
    assert "seed 1341: loss became nan in epoch 1; scored 0" in result.stderr
    for number, entry in confirmed(load(url)).items():
        done = len(before[number].scores) if number in before else 1  # the trial's own run is never retrained
        assert len(entry.scores) == 5 and entry.scores[done:] == [0.0] * (5 - done)
    monkeypatch.setattr(search.export, "retrain", diverges)
    result = runner.invoke(app, ["export-best", "lenet", "--storage", url, "--data", str(tiny_data),
                                 "--out", str(tmp_path / "best")])
    last = result.stderr.strip().splitlines()[-1]  # after the "retraining trial ..." progress line
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert last.startswith("error: retraining trial") and last.endswith("failed: loss became nan in epoch 1; "
                                                                         "nothing was written")
    assert not (tmp_path / "best").exists()


def test_a_refused_precision_stores_no_score(study_url: str, tiny_data: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(study_url.removeprefix("sqlite:///"), copy)
    before = confirmed(load(f"sqlite:///{copy}"))

    def refused(precision: str) -> None:
        raise UserError(f"{precision} is computed wrongly here")

    monkeypatch.setattr(search.objective, "check_precision", refused)  # where retrain looks it up
    monkeypatch.setattr(search.confirm, "check_precision", refused, raising=False)
    result = runner.invoke(app, ["confirm", "lenet", "--top", "3", "--seeds", "2", "--storage", f"sqlite:///{copy}",
                                 "--data", str(tiny_data)])
    assert result.exit_code == 2 and "computed wrongly here" in result.stderr
    assert confirmed(load(f"sqlite:///{copy}")) == before


def test_one_run_alone_does_not_win_over_means_of_several_seeds() -> None:
    """After `confirm --top 2 --seeds 3`, then `--top 3 --seeds 1` (or a confirm interrupted after a trial's own
    run was saved), the third trial's single run was its "mean" and won: the lucky run confirm exists to discount."""
    study = optuna.create_study(direction="maximize", study_name="lenet")
    for value in (0.91, 0.90, 0.89):
        study.add_trial(optuna.trial.create_trial(value=value))
    for number, scores in ((0, (0.91, 0.86, 0.87)), (1, (0.90, 0.88, 0.875))):  # means 0.88 and 0.885
        for seed, score in enumerate(scores, 1337):
            save_confirmation(study, number, seed, score)
    save_confirmation(study, 2, 1337, 0.89)  # its own run alone
    best = winner(study)
    assert best is not None and best.number == 1
    assert [trial.number for trial in ranked(study)] == [1, 0, 2]
    assert list(confirmation_table(study)["trial"]) == [1, 0, 2]  # the report's confirmed trial is the winner
    assert "trial 2 beat it in a single run but is not confirmed" in unconfirmed_note(study)


def test_a_seed_scores_its_last_epoch_the_weights_export_ships(study_url: str, tiny_data: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed was scored by its best epoch up to the trial's best epoch, while export-best retrains to that epoch
    and ships its last weights: a confirmed mean above what the export delivers."""
    copy = tmp_path / "copy.db"  # the module's study stays as the other tests expect it
    shutil.copy(study_url.removeprefix("sqlite:///"), copy)

    class Run:
        """A retrained seed whose first epoch was its best."""

        class history:  # noqa: N801 - the attribute of a retrain's result
            rows = [{"epoch": 1, "val_accuracy": 0.95}, {"epoch": 2, "val_accuracy": 0.5}]

            @staticmethod
            def best_epoch() -> tuple[int, float]:
                """As EpochHistory says it: epoch 1, at 0.95."""
                return 1, 0.95

    with sqlite3.connect(copy) as connection:  # sizes an older architecture's code recorded
        connection.execute("UPDATE trial_user_attributes SET value_json = '7' WHERE key = 'n_params'")
    monkeypatch.setattr(search.confirm, "retrain", lambda *args, **kwargs: Run)
    result = runner.invoke(app, ["confirm", "lenet", "--top", "1", "--seeds", "6", "--storage", f"sqlite:///{copy}",
                                 "--data", str(tiny_data), "-q"])
    assert result.exit_code == 0, result.output
    entry = max(confirmed(load(f"sqlite:///{copy}")).values(), key=lambda entry: len(entry.seeds))
    assert len(entry.seeds) == 6 and entry.scores[-1] == 0.5
    # The model rebuilt is not the trial's: said once, not for each of its 5 seeds retrained.
    assert result.stderr.count("trained a model of 7 parameters; rebuilt by this hpsearch it has ") == 1
