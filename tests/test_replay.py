"""`hpsearch replay`: the notebook's models trained with their own (scaled) epochs, resumable, side by side."""
from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

import spaces
from search import records
from search.cli import app
from search.notebook import glance, glance_lines, replay_studies, verdict
from search.objective import TrialFailed
from search.storage import open_storage


def _replay(data: Path, url: str, *extra: str) -> object:
    return CliRunner().invoke(app, ["replay", "lenet", "--data", str(data), "--storage", url, "--subset", "60",
                                    "--quiet", *extra])


def test_replay_trains_each_model_for_its_scaled_epochs_once(tiny_data: Path, sqlite_url: str,
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = _replay(tiny_data, sqlite_url, "--models", "model1,model2", "--epochs-scale", "0.025")
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="lenet-notebook", storage=open_storage(sqlite_url))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs["seed_model"] for t in complete) == ["model1", "model2"]
    assert [len(t.user_attrs["history"]) for t in complete] == [2, 2]  # 80 notebook epochs x 0.025
    assert complete[1].params["learning_rate_adam"] == 0.0005  # model2's own Adam(5e-4)
    assert study.user_attrs["notebook_replay"] is True
    lines = result.output.splitlines()
    assert "notebook_val_accuracy" in lines[1] and lines[2].split()[0] == "model1"
    assert lines[2].split()[-3:] == ["0.8618", "332.46", "80"]  # what the notebook reported for LeNet model 1

    table = pd.read_fwf(io.StringIO("\n".join(lines[1:])))
    first = next(t for t in complete if t.user_attrs["seed_model"] == "model1")
    assert table["val_accuracy"][0] == round(first.user_attrs["history"][-1]["val_accuracy"], 4)  # last epoch
    assert table["best_val_accuracy"][0] == round(first.value, 4)

    again = _replay(tiny_data, sqlite_url, "--models", "model1,model2", "--epochs-scale", "0.025")
    assert again.exit_code == 0 and len(study.get_trials()) == 2  # nothing retrained
    # Without --data, from a folder with no data/: the study's own folder (it read ./data and failed).
    monkeypatch.chdir(tmp_path)
    again = CliRunner().invoke(app, ["replay", "lenet", "--storage", sqlite_url, "--models", "model1,model3",
                                     "--epochs-scale", "0.025"])
    assert again.exit_code == 0, again.output
    assert f"with the options it was made with: --data {tiny_data} --subset 60\n" in again.stderr
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3  # model3 added


def test_a_model_that_fails_is_named_with_its_reason_and_the_exit_code_says_so(
        tiny_data: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its row was as blank as a model never run, the epochs column of the others turned 1.0, and exit code 0."""
    lenet, calls = spaces.get("lenet"), []
    build = lenet.build

    def first_diverges(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:  # model1's trial
            raise TrialFailed("loss became nan in epoch 1")
        return build(*args, **kwargs)

    monkeypatch.setattr(lenet, "build", first_diverges)
    result = _replay(tiny_data, sqlite_url, "--models", "model1,model2", "--epochs-scale", "0.0125")
    assert result.exit_code == 1, result.output
    assert ("not replayed: model1 (TrialFailed: loss became nan in epoch 1); run the same command again to retry"
            in result.stderr)
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert rows[0][:5] == ["model1", "-", "-", "-", "-"] and rows[1][4] == "1", rows  # model2: 1 epoch, not 1.0
    monkeypatch.setattr(lenet, "build", build)
    again = _replay(tiny_data, sqlite_url, "--models", "model1,model2", "--epochs-scale", "0.0125")
    assert again.exit_code == 0 and "not replayed" not in again.stderr, again.output


def test_replay_says_where_it_trains_and_what(tiny_data: Path, sqlite_url: str) -> None:
    """As `study` does (it said nothing of its device or backend), and which notebook model each trial was."""
    result = CliRunner().invoke(app, ["replay", "lenet", "--data", str(tiny_data), "--storage", sqlite_url,
                                      "--subset", "60", "--models", "model1", "--epochs-scale", "0.0125"])
    assert result.exit_code == 0 and "training on cpu (Keras backend tensorflow)" in result.stderr, result.output
    assert re.search(r"trial +0 COMPLETE .* model1 variant=classic", result.stderr)  # which notebook model it was


def test_replay_rejects_unknown_models_and_scales(tiny_data: Path, sqlite_url: str) -> None:
    result = _replay(tiny_data, sqlite_url, "--models", "model1,model9")
    assert result.exit_code == 2
    assert result.output.strip() == ("error: unknown model 'model9' for lenet; "
                                     "valid: model1, model2, model3, model4, model5")
    assert _replay(tiny_data, sqlite_url, "--epochs-scale", "1.5").exit_code == 2
    # An empty name (an unset shell variable, a stray comma) trained every model, for hours at full scale.
    for models in ("", "model1,,model2", ",model1"):
        result = _replay(tiny_data, sqlite_url, "--models", models)
        assert result.exit_code == 2 and result.output.strip() == (
            f"error: --models {models!r} names no model at one place; valid: model1, model2, model3, model4, model5, "
            "comma-separated (leave out --models for all)"), result.output
    assert _replay(tiny_data, sqlite_url, "--backend", "").exit_code == 2
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # refused before any storage is opened


def test_report_shows_notebook_replay_and_search_side_by_side(tiny_data: Path, sqlite_url: str,
                                                              tmp_path: Path) -> None:
    assert _replay(tiny_data, sqlite_url, "--models", "model1", "--epochs-scale", "0.0125").exit_code == 0
    searched = CliRunner().invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "60",
                                        "--data", str(tiny_data), "--storage", sqlite_url, "--quiet"])
    assert searched.exit_code == 0, searched.output
    out = tmp_path / "report.html"
    # In a process of its own: the report (the notebook's tables, replays, confirmations) and the trials table
    # import no Keras, which took seconds of their start.
    code = textwrap.dedent("""
        import sys
        from search.cli import app
        for command in (["report", "--storage", sys.argv[1], "--out", sys.argv[2]],
                        ["trials", "lenet", "--storage", sys.argv[1]]):
            try:
                app(command)
            except SystemExit as exit:
                print("exit", exit.code, "keras imported:", "keras" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code, sqlite_url, str(out)], capture_output=True, text=True,
                            timeout=300)
    exits = [line for line in result.stdout.splitlines() if line.startswith("exit ")]
    assert exits == ["exit 0 keras imported: False"] * 2, result.stdout + result.stderr
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table["study"]) == ["lenet"]  # the replay study is not a search study
    row = table.iloc[0]
    assert (row["notebook_model"], row["notebook_val_accuracy"], row["notebook_params"]) == ("model4", 0.8721, 368_749)
    assert row["replay_model"] == "model1" and row["replay_epochs"] == 1 and row["replay_params"] == 245_601
    assert row["search_vs_notebook"].startswith("search LOSES to the notebook by")  # 60 images, 1 epoch
    assert "lenet: search LOSES to the notebook by" in result.stdout
    assert "The notebook at a glance: accuracy vs seconds" in out.read_text()
    # The verdict is a sentence above the table, not its 15th column, off-screen in a browser.
    assert "<li>lenet: search LOSES to the notebook by" in out.read_text()
    assert "<th>search_vs_notebook</th>" not in out.read_text()
    # The replay is listed by its architecture and name (`trials lenet-notebook` named no architecture).
    listed = CliRunner().invoke(app, ["trials", "lenet", "--study-name", "lenet-notebook", "--storage", sqlite_url])
    assert listed.exit_code == 0 and "model1" in listed.stdout, listed.output
    refused = CliRunner().invoke(app, ["trials", "lenet-notebook", "--storage", sqlite_url])
    assert refused.exit_code == 2 and refused.stderr.strip() == (
        "error: study 'lenet-notebook' holds lenet trials, not lenet-notebook; name lenet as ARCH with "
        "--study-name lenet-notebook")


def test_a_replay_of_other_models_fails_what_an_interrupted_one_left_waiting(tiny_data: Path, sqlite_url: str) -> None:
    first = _replay(tiny_data, sqlite_url, "--models", "model1", "--epochs-scale", "0.0125")
    assert first.exit_code == 0 and "note:" not in first.stderr
    study = optuna.load_study(study_name="lenet-notebook", storage=open_storage(sqlite_url))
    for name in ("model2", "model3"):  # as a replay of every model interrupted during model1 leaves them
        study.enqueue_trial({"optimizer": "adam"}, user_attrs=records.enqueued(seed_model=name, epochs=1))
    result = _replay(tiny_data, sqlite_url, "--models", "model4", "--epochs-scale", "0.0125")
    assert result.exit_code == 0, result.output
    states = {t.user_attrs["seed_model"]: t.state for t in study.get_trials()}
    assert states == {"model1": TrialState.COMPLETE, "model2": TrialState.FAIL, "model3": TrialState.FAIL,
                      "model4": TrialState.COMPLETE}  # model4 ran, not the oldest waiting trial (model2)
    assert "left waiting by an interrupted replay" in study.trials[1].user_attrs["fail_reason"]


def test_search_and_replay_studies_are_kept_apart(tiny_data: Path, sqlite_url: str) -> None:
    assert _replay(tiny_data, sqlite_url, "--models", "model1", "--epochs-scale", "0.0125").exit_code == 0
    search = CliRunner().invoke(app, ["study", "lenet", "--study-name", "lenet-notebook", "--trials", "2",
                                      "--data", str(tiny_data), "--storage", sqlite_url])
    assert search.exit_code == 2 and "is a notebook replay" in search.stderr
    assert CliRunner().invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "60", "-q",
                                    "--data", str(tiny_data), "--storage", sqlite_url]).exit_code == 0
    replayed = _replay(tiny_data, sqlite_url, "--study-name", "lenet", "--epochs-scale", "0.0125")
    assert replayed.exit_code == 2 and "is a search, not a notebook replay" in replayed.stderr
    assert "notebook_replay" not in optuna.load_study(study_name="lenet", storage=sqlite_url).user_attrs


def test_report_of_a_storage_with_replays_alone(tiny_data: Path, sqlite_url: str, tmp_path: Path) -> None:
    assert _replay(tiny_data, sqlite_url, "--models", "model1", "--epochs-scale", "0.0125").exit_code == 0
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--storage", sqlite_url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(out.with_suffix(".csv")).iloc[0]
    assert row["arch"] == "lenet" and row["replay_model"] == "model1" and pd.isna(row["study"])
    assert "no complete search trial yet" in result.output
    page = out.read_text()
    assert "No search studies yet" in page and "Best learning curve" not in page  # no empty charts


@pytest.mark.parametrize("label_set, said", [("fashion5", False), ("fashion10", True), ("custom", True)])
def test_the_glance_says_when_the_search_ran_on_other_classes_than_the_notebook(label_set: str, said: bool) -> None:
    row = {"arch": "lenet", "search_vs_notebook": "search beats the notebook by 1.00 pts", "notebook_model": "model4",
           "notebook_val_accuracy": 0.8721, "notebook_epochs": 150, "search_val_accuracy": 0.8821,
           "search_subset": None, "search_trial": 3, "search_epochs": 9, "search_label_set": label_set}
    (line,) = glance_lines(pd.DataFrame([row]))
    assert ("the notebook's are fashion5" in line) == said and "9 epochs on all training images" in line


def _searched(name: str, label_set: str, value: float) -> optuna.Study:
    """An in-memory lenet search study on `label_set` whose one complete trial reached `value`."""
    study = optuna.create_study(study_name=name, direction="maximize")
    study.set_user_attr("arch", "lenet")
    study.set_user_attr("label_set", label_set)
    study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"history": [{"val_accuracy": value}],
                                                                          "train_seconds": 1.0}))
    return study


@pytest.mark.parametrize("search_accuracy, said", [
    (0.8766, "search beats the notebook by 0.45 pts"), (0.8687, "search LOSES to the notebook by 0.34 pts"),
    (0.87206, "search matches the notebook (within 0.005 pts)"),  # it said "LOSES to the notebook by 0.00 pts"
    (0.8720, "search LOSES to the notebook by 0.01 pts"), (None, "no complete search trial yet")])
def test_the_verdict_says_the_gap_in_the_points_it_shows(search_accuracy: float | None, said: str) -> None:
    assert verdict(search_accuracy, 0.8721) == said


def test_the_glance_compares_the_notebook_with_fashion_mnist_studies_only() -> None:
    # A study of one's own images (3 easy classes, 1.0) was shown as the search beating the notebook by 13 points.
    own, ten = _searched("own", "custom", 1.0), _searched("ten", "fashion10", 0.95)
    five = _searched("five", "fashion5", 0.9)
    assert glance([own], {}).empty  # nothing to compare: no row at all
    assert glance([own, ten], {}).iloc[0]["search_study"] == "ten"  # another label set, said so in its line
    assert glance([own, ten, five], {}).iloc[0]["search_study"] == "five"  # the notebook's own classes first


def test_the_glance_takes_the_replay_study_that_replayed_the_notebooks_best_model() -> None:
    """Of several replay studies the last one was taken, and with it another model's replay beside the notebook's
    best (LeNet's model4); the table did not say which study it came from (a review's)."""
    def replayed(name: str, model: str) -> optuna.Study:
        study = _searched(name, "fashion5", 0.5)
        study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"seed_model": model,
                                                                          "history": [{"val_accuracy": 0.5}]}))
        records.mark_replay(study, 0.1)
        return study

    with_best, other, another = replayed("a", "model4"), replayed("b", "model1"), replayed("c", "model2")
    assert replay_studies([with_best, other])["lenet"] is with_best
    assert replay_studies([other, another])["lenet"] is another  # none replayed it: the last
    row = glance([], replay_studies([with_best, other])).iloc[0]
    assert (row["replay_study"], row["replay_model"]) == ("a", "model4")
    # A later replay with no model finished (stopped by Ctrl-C, or running elsewhere) left the table without any.
    unfinished = _searched("d", "fashion5", 0.5)
    unfinished.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                                   user_attrs={"seed_model": "model3"}))
    records.mark_replay(unfinished, 0.1)
    assert replay_studies([other, unfinished])["lenet"] is other
    assert replay_studies([unfinished, other])["lenet"] is other
    assert replay_studies([unfinished])["lenet"] is unfinished  # alone: the notebook's row, without replay columns


def test_a_replay_that_trains_another_way_says_so(tiny_data: Path, sqlite_url: str) -> None:
    """A replay study with models trained another way (here one recorded as JAX's) took a model of this backend
    beside them without a word; `study` says so on a resume."""
    first = _replay(tiny_data, sqlite_url, "--models", "model1", "--epochs-scale", "0.0125")
    assert first.exit_code == 0 and "note:" not in first.stderr
    study = optuna.load_study(study_name="lenet-notebook", storage=open_storage(sqlite_url))
    [done] = study.trials
    study.add_trial(optuna.trial.create_trial(params=done.params, distributions=done.distributions, value=done.value,
                                              user_attrs={**done.user_attrs, "seed_model": "model3", "backend": "jax"}))
    result = _replay(tiny_data, sqlite_url, "--models", "model2", "--epochs-scale", "0.0125")
    assert result.exit_code == 0, result.output
    assert ("note: models of this replay trained with jax on cpu; these train with tensorflow on cpu, so their "
            "seconds and random draws differ") in result.stderr


def test_an_empty_replay_study_is_filled_by_replay_not_study() -> None:
    """`confirm` or `export-best` on a replay study with no complete model told the user to run `hpsearch study`."""
    from search.errors import UserError
    from search.winners import require_winner

    for replay, command in ((True, "replay"), (False, "study")):
        study = optuna.create_study(study_name="s", direction="maximize")
        if replay:
            records.mark_replay(study, 1.0)
        with pytest.raises(UserError, match=f"has no complete trial yet; run `hpsearch {command}` first"):
            require_winner(study)


def test_the_glance_says_the_search_winner_s_accuracy_with_the_epochs_and_seconds_to_its_best_epoch() -> None:
    """A winner that peaked at epoch 2 of 3 was said as "0.9000 after 3 epochs" with the seconds of all three."""
    study = optuna.create_study(study_name="lenet", direction="maximize")
    study.set_user_attr("arch", "lenet")
    study.set_user_attr("label_set", "fashion5")
    history = [{"epoch": epoch, "val_accuracy": accuracy, "seconds": 2.0}
               for epoch, accuracy in ((1, 0.8), (2, 0.9), (3, 0.85))]
    study.add_trial(optuna.trial.create_trial(value=0.9, user_attrs={"history": history, "train_seconds": 6.0,
                                                                        "best_epoch": 2}))
    row = glance([study], {}).iloc[0]
    assert (row["search_val_accuracy"], row["search_epochs"], row["search_seconds"]) == (0.9, 2, 4.0)
    assert "search trial 0: 0.9000 after 2 epochs" in glance_lines(glance([study], {}))[0]
