"""Accuracy-time studies: two objectives, hpsearch's dominance pruning, the Pareto front in the trials table and
the reports, export-best --pick fastest-within, and export-best --ensemble K --seeds S."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from search import records
from search.callbacks import EpochHistory, PruneDominated
from search.cli import app
from search.console import Console
from search.data import load_test
from search.figures import pareto_figure
from search.report import trial_points
from search.study import stored_record
from search.tables import trials_frame
from search.winners import seconds_of
from tests.conftest import load, study_in

runner = CliRunner()


@pytest.fixture(scope="module")
def two_objective(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 5-trial accuracy-time lenet study on tiny data."""
    return study_in(tmp_path_factory.mktemp("mo"), tiny_data, "lenet", "--objective", "accuracy-time", "--trials", "5",
                    "--epochs", "3", "--subset", "200")


def test_trials_have_accuracy_and_seconds_and_the_table_marks_the_front(two_objective: str) -> None:
    study = load(two_objective)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete and all(len(t.values) == 2 for t in complete)
    for trial in complete:  # the second value: the recorded epochs' seconds, epoch 1 at no more than epoch 2's
        record = records.TrialRecord.of(trial)
        first, second, third = (row["seconds"] for row in record.history)
        assert trial.values[1] == pytest.approx(min(first, second) + second + third, abs=1e-3)
        assert trial.values[1] <= record.train_seconds + 1e-3
    result = runner.invoke(app, ["trials", "lenet", "--storage", two_objective])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["pareto", "number"] and "steady_seconds" in lines[0].split()
    marked = {int(line.split()[1]) for line in lines[1:] if line.split()[0] == "*"}
    assert marked == {t.number for t in study.best_trials}


def test_the_pareto_plot_draws_the_front_in_one_strong_colour(two_objective: str) -> None:
    """Optuna shades points by trial number, which drew the front's first trials nearly white (a review's)."""
    study = load(two_objective)
    traces = {trace.name: trace for trace in pareto_figure(study).data}
    front = traces["Pareto front"]
    assert front.marker.color == "#d62728" and not front.marker.showscale
    assert sorted(zip(front.x, front.y, strict=True)) == sorted((t.values[0], t.values[1]) for t in study.best_trials)
    assert "exported" not in traces
    exported = study.best_trials[-1]  # an export's trial is ringed
    ringed = {trace.name: trace for trace in pareto_figure(study, marked=[exported.number]).data}["exported"]
    assert list(zip(ringed.x, ringed.y, strict=True)) == [tuple(exported.values)]


def test_export_picks_the_fastest_front_trial_within_the_given_points(two_objective: str, tiny_data: Path,
                                                                      tmp_path: Path) -> None:
    study = load(two_objective)
    front = study.best_trials
    best = max(t.values[0] for t in front)
    within = [t for t in front if t.values[0] >= best - 0.05]  # 5 points
    expected = min(within, key=lambda t: (t.values[1], -t.values[0]))
    both = runner.invoke(app, ["export-best", "lenet", "--storage", two_objective, "--data", str(tiny_data),
                               "--out", str(tmp_path / "fast"), "--pick", "fastest-within", "5", "--ensemble", "2"])
    assert both.exit_code == 2 and "--pick exports one fast trial and --ensemble" in both.stderr  # it undid the pick
    result = runner.invoke(app, ["export-best", "lenet", "--storage", two_objective, "--data", str(tiny_data),
                                 "--out", str(tmp_path / "fast"), "--pick", "fastest-within", "5", "-q"])
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "fast" / "params.json").read_text())
    assert params["trial"] == expected.number and params["objective"] == "accuracy-time"
    assert params["steady_seconds"] == expected.values[1] and "fastest-within 5" in params["pick"]
    assert params["train_seconds"] == records.TrialRecord.of(expected).train_seconds
    report = (tmp_path / "fast" / "report.html").read_text()
    assert "Pareto front" in report


def test_ensemble_averages_the_k_best_trials_each_with_s_seeds(two_objective: str, tiny_data: Path,
                                                               tmp_path: Path) -> None:
    study = load(two_objective)
    top = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.values[0], reverse=True)[:2]
    out = tmp_path / "ens"
    result = runner.invoke(app, ["export-best", "lenet", "--storage", two_objective, "--data", str(tiny_data),
                                 "--out", str(out), "--ensemble", "2", "--seeds", "2", "-q"])
    assert result.exit_code == 0, result.output
    params = json.loads((out / "params.json").read_text())
    seed = records.TrialRecord.of(top[0]).seed
    assert [(m["trial"], m["seed"]) for m in params["ensemble"]] == [
        (t.number, s) for t in top for s in (seed, seed + 1)]  # each trial's own seed first, then the next
    history = pd.read_csv(out / "history.csv")
    runs = {(t.number, s) for t in top for s in (seed, seed + 1)}
    assert set(zip(history["trial"], history["seed"], strict=True)) == runs
    # Another seed trained another model: the winner's two runs differ.
    winner = history[history["trial"] == top[0].number]
    assert list(winner[winner["seed"] == seed]["loss"]) != list(winner[winner["seed"] == seed + 1]["loss"])
    assert "ensemble of trials" in (out / "report.html").read_text()
    assert "2 seeds each" in (out / "report.html").read_text()
    assert f"The exported run (trial {top[0].number}, the first of 4 runs)" in (out / "report.html").read_text()
    import spaces  # noqa: F401 - registers the custom loss and optimizer the members may use

    model = keras.saving.load_model(out / "model.keras", compile=False)
    ids, x_test = load_test(tiny_data, (28, 28, 1))
    probabilities = model.predict(x_test[:50], verbose=0)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)  # a mean of softmaxes is a distribution
    submission = pd.read_csv(out / "submission.csv")
    assert list(submission["Id"]) == list(ids)
    assert (submission["Label"][:50].to_numpy() == probabilities.argmax(axis=1)).all()


def test_wrong_combinations_are_one_line_errors(two_objective: str, tiny_data: Path, sqlite_url: str,
                                                tmp_path: Path) -> None:
    common = ["--trials", "1", "--epochs", "1", "--subset", "100", "--data", str(tiny_data)]
    cases = [
        (["study", "lenet", "--objective", "accuracy-time", "--pruner", "hyperband", *common, "--storage", sqlite_url],
         "cannot prune a two-objective study"),
        (["study", "lenet", "--pruner", "dominance", *common, "--storage", sqlite_url], "accuracy-time"),
        (["study", "lenet", "--objective", "speed", *common, "--storage", sqlite_url], "unknown objective"),
        (["study", "lenet", "--objective", "accuracy", *common, "--storage", two_objective],  # it says which
         "resume it with --objective accuracy-time or choose another --study-name"),
        (["export-best", "lenet", "--storage", two_objective, "--data", str(tiny_data), "--out", str(tmp_path / "x"),
          "--ensemble", "50"], "only"),
        (["export-best", "lenet", "--storage", two_objective, "--data", str(tiny_data), "--out", str(tmp_path / "z"),
          "--seeds", "0"], "--seeds"),
        (["export-best", "lenet", "--storage", two_objective, "--data", str(tiny_data), "--out", str(tmp_path / "y"),
          "--pick", "fastest-within", "-1"], "X >= 0"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_rerun_without_objective_resumes_the_study_as_it_began(two_objective: str, tiny_data: Path,
                                                                  tmp_path: Path) -> None:
    """`--objective` left out resumes a study with its own objective (it was refused: the flag's default,
    accuracy, did not fit), and the lookup creates nothing where there is no study."""
    copy = tmp_path / "db.sqlite"
    shutil.copy(two_objective.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    record = stored_record(url, "lenet")
    assert record is not None and record.objective == "accuracy-time" and stored_record(url, "other") is None
    result = runner.invoke(app, ["study", "lenet", "--trials", "6", "--epochs", "3", "--subset", "200", "--data",
                                 str(tiny_data), "--storage", url])
    assert result.exit_code == 0, result.output
    assert "study 'lenet' (accuracy-time: accuracy up, steady seconds down) in" in result.stderr  # said at start
    assert "with the options it was made with: --objective accuracy-time" in result.stderr
    study = load(url)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 6
    assert all(len(t.values) == 2 for t in study.get_trials(states=(TrialState.COMPLETE,)))
    new = tmp_path / "new"
    new.mkdir()
    for url in (f"sqlite:///{new / 'db.sqlite'}", f"journal:///{new / 'journal.log'}",
                f"sqlite:///{new / 'no-such-folder' / 'db.sqlite'}"):
        assert stored_record(url, "lenet") is None  # a new study: accuracy
    assert not list(new.iterdir())


def test_pick_needs_an_accuracy_time_study(tiny_data: Path, sqlite_url: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "100", "--data",
                                 str(tiny_data), "--storage", sqlite_url, "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export-best", "lenet", "--storage", sqlite_url, "--data", str(tiny_data), "--out",
                                 str(tmp_path / "x"), "--pick", "fastest-within", "1"])
    assert result.exit_code == 2 and "accuracy-time" in result.stderr


def _rows(accuracies: list[float], seconds: float) -> list[dict[str, float]]:
    return [{"epoch": e, "loss": 1.0, "val_accuracy": a, "seconds": seconds} for e, a in enumerate(accuracies, 1)]


def test_dominated_trial_is_pruned_by_the_callback_and_a_leading_one_is_not() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(3):  # three fast, accurate finished trials
        trial = study.ask()
        records.update(trial, history=_rows([0.8, 0.9, 0.9], 1.0))
        study.tell(trial, (0.9, 3.0))
    for accuracies, seconds, pruned in (([0.3, 0.35], 2.0, True), ([0.85, 0.95], 0.5, False)):
        trial = study.ask()
        history = EpochHistory()
        history.rows = _rows(accuracies, seconds)
        callback = PruneDominated(trial, history, planned_epochs=3)
        if pruned:
            with pytest.raises(optuna.TrialPruned, match="dominated after epoch 2"):
                callback.on_epoch_end(1, {"loss": 1.0})
        else:
            callback.on_epoch_end(1, {"loss": 1.0})
        study.tell(trial, state=TrialState.PRUNED)


def test_trials_timed_with_compilation_are_found_for_the_resume_note() -> None:
    """A complete trial whose second value is its epochs' plain sum (an earlier hpsearch) is told apart from one
    with steady seconds; a one-objective study has none. Tables and reports show each trial's value."""
    history = [{"epoch": e, "loss": 1.0, "val_accuracy": 0.5, "seconds": s} for e, s in ((1, 2.0), (2, 1.0), (3, 1.0))]
    study = optuna.create_study(directions=["maximize", "minimize"])
    for seconds in (4.0, 3.0, 3.0004):  # the plain sum; steady seconds; steady, as rounded to 3 decimals
        trial = study.ask()
        records.update(trial, history=history)
        study.tell(trial, (0.5, seconds))
    assert records.seconds_with_compilation(study) == [0]
    pruned = study.ask()
    records.update(pruned, history=history)
    study.tell(pruned, state=TrialState.PRUNED)
    # Tables and reports draw a trial where the front has it: its value, else its history's steady seconds.
    assert [seconds_of(t) for t in study.get_trials()] == [4.0, 3.0, 3.0004, 3.0]
    failed = study.ask()
    records.update(failed, history=history[:1])
    study.tell(failed, state=TrialState.FAIL)
    # The table and the report's chart show the pruned trial where it stopped (Optuna keeps no values for it in a
    # two-objective study: it was left out of the chart), and no seconds for the failed one.
    table = trials_frame(study)
    assert list(table["val_accuracy"]) == [0.5, 0.5, 0.5, 0.5, ""]
    assert list(table["steady_seconds"]) == [4.0, 3.0, 3.0004, 3.0, ""]
    assert list(trial_points([study])["val_accuracy"]) == [0.5] * 4
    single = optuna.create_study()
    single.tell(single.ask(), 0.5)
    assert records.seconds_with_compilation(single) == []


def test_the_trial_line_gives_the_steady_seconds_beside_the_wall_clock(capsys: pytest.CaptureFixture[str]) -> None:
    """The line `study` prints after each trial: its training seconds, and in an accuracy-time study the steady
    seconds its front compares (they differed, unexplained: 2.4 s in the line, 0.577 in `trials`)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    records.update(trial, train_seconds=4.0)
    study.tell(trial, (0.5, 3.0))
    Console().trial(study, study.trials[0])
    single = optuna.create_study(direction="maximize")
    single.tell(single.ask(), 0.5)
    Console().trial(single, single.trials[0])
    first, second = capsys.readouterr().err.splitlines()
    assert "val_acc 0.5000    4.0s (steady 3.0s)" in first and "steady" not in second


def test_a_pruned_trial_shows_its_best_epoch_like_a_complete_one() -> None:
    """Optuna keeps a pruned trial's last reported value: in a one-objective study `trials` and the report showed a
    pruned trial's last epoch beside complete trials' best, one column meaning two things."""
    study = optuna.create_study(direction="maximize")
    history = [{"epoch": 1, "val_accuracy": 0.7, "seconds": 1.0}, {"epoch": 2, "val_accuracy": 0.6, "seconds": 1.0}]
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, value=0.6, intermediate_values={1: 0.7, 2: 0.6},
                                              user_attrs={"history": history}))
    complete = [{**history[0], "val_accuracy": 0.65}]
    study.add_trial(optuna.trial.create_trial(value=0.65, user_attrs={"history": complete}))
    assert list(trials_frame(study)["val_accuracy"]) == [0.7, 0.65]
