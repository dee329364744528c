"""export-best, score, the cross-architecture report and optuna-dashboard, on tiny real studies."""
from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from html import unescape
from pathlib import Path

import keras
import numpy as np
import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

import spaces
from search.cli import app
from search.data import load_test, prepare
from search.export import averaged_model, mirrored_by_default
from search.records import RetrainPlan, mark_replay
from search.report import best_curves, comparison, trial_points
from search.storage import open_storage
from spaces.param_names import model_params
from tests.conftest import load

runner = CliRunner()
EPOCHS = 2


@pytest.fixture(scope="module")
def studies(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A storage with a 3-trial lenet study and a 2-trial cnn study (no pruning: all complete)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'db.sqlite'}"
    for arch, trials in (("lenet", 3), ("cnn", 2)):
        result = runner.invoke(app, ["study", arch, "--trials", str(trials), "--epochs", str(EPOCHS), "--subset", "200",
                                     "--pruner", "none", "--data", str(tiny_data), "--storage", url, "-q"])
        assert result.exit_code == 0, result.output
    return url


def _figures_in(html: str) -> int:
    return html.count("Plotly.newPlot(")


@pytest.fixture(scope="module")
def exported(studies: str, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    result = runner.invoke(app, ["export-best", "lenet", "--storage", studies, "--data", str(tiny_data),
                                 "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out


def test_export_writes_five_wellformed_files(exported: Path, studies: str, tiny_data: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        ["submission.csv", "model.keras", "params.json", "history.csv", "report.html"])
    submission = pd.read_csv(exported / "submission.csv")
    test_ids = pd.read_csv(tiny_data / "testX.csv")["Id"]
    assert list(submission.columns) == ["Id", "Label"] and submission["Id"].tolist() == test_ids.tolist()
    assert submission["Label"].between(0, 4).all()
    params = json.loads((exported / "params.json").read_text())
    best = load(studies).best_trial
    assert params["trial"] == best.number and params["arch"] == "lenet"
    assert params["params"] == model_params(best.params) and "learning_rate" in params["params"]
    assert params["epochs"] == best.user_attrs["best_epoch"] and params["seed"] == 1337
    assert {"data_fingerprint", "label_set", "backend", "versions", "value"} <= set(params)
    assert params["input_scaling"] == "float32 pixels / 255, channels last"  # nothing said it: 85% on raw pixels
    assert "keras" in params["versions"] and "optuna" in params["versions"]
    history = pd.read_csv(exported / "history.csv")
    assert len(history) == params["epochs"] and {"loss", "val_accuracy", "learning_rate"} <= set(history)
    # The prediction averages mirror images by default exactly when the trial trained on mirrored images.
    assert params["test_time_mirror"] == bool(best.params.get("augment_flip"))
    # Retraining with the trial's seed reproduces the trial's validation accuracy on CPU (the trial's own
    # validation saw each image once, not with its mirror).
    one_view = params["val_accuracy_without_mirror"] if params["test_time_mirror"] else params["val_accuracy"]
    assert one_view == pytest.approx(best.value, abs=0.02)


def test_reloaded_model_predicts_identically(exported: Path, tiny_data: Path) -> None:
    model = spaces.load_model(exported / "model.keras")  # as the README says
    pixels = pd.read_csv(tiny_data / "testX.csv").drop(columns="Id").to_numpy(np.float32).reshape(-1, 28, 28, 1)
    labels = np.argmax(model.predict(pixels / 255, verbose=0), axis=1)  # as params.json's input_scaling says
    assert labels.tolist() == pd.read_csv(exported / "submission.csv")["Label"].tolist()


def test_report_html_is_offline_and_holds_every_figure(exported: Path) -> None:
    html = (exported / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js is inline: nothing to fetch
    # six run plots (one grid), confusion matrix, and five study plots
    assert _figures_in(html) == 7 and "not drawn" not in html
    for title in ("Training loss vs epoch", "Validation accuracy vs validation loss", "Validation confusion matrix",
                  "Optimization history", "Learning curves", "Hyperparameter importances", "Parallel coordinates",
                  "Trial timeline"):
        assert title in html
    # params.json on the page, not the params alone (no accuracy, seed or epochs were shown), floats shortened.
    shown = json.loads(unescape(re.search(r"<pre>(.*?)</pre>", html, re.S)[1]))
    params = json.loads((exported / "params.json").read_text())
    assert shown.keys() == params.keys() and shown["val_accuracy"] == float(f"{params['val_accuracy']:.4g}")
    assert (shown["trial"], shown["seed"], shown["epochs"]) == (params["trial"], params["seed"], params["epochs"])
    assert "of the trial" not in html


def test_report_draws_in_headless_chromium(exported: Path) -> None:
    """Every figure container gets plotly's SVG once the page's own inline script has run."""
    browser = shutil.which("chromium")
    assert browser, "install Debian's chromium (bash .ci/run does)"
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          "--virtual-time-budget=10000", "--dump-dom", (exported / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    drawn = re.findall(r'class="plotly-graph-div js-plotly-plot".*?class="main-svg"', dom, re.S)
    assert dom.count('class="plotly-graph-div') == 7 and len(drawn) == 7


def test_score_against_true_labels(exported: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["score", str(exported / "submission.csv"), "--labels", str(tiny_data / "testY.csv")])
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(tiny_data / "testY.csv")
    expected = float((pd.read_csv(exported / "submission.csv")["Label"] == truth["Label"]).mean())
    assert f"accuracy: {expected:.4f} on 100 rows" in result.stdout
    assert "confusion matrix" in result.stdout and "footwear" in result.stdout
    perfect = tmp_path / "perfect.csv"
    truth.sample(frac=1, random_state=0).to_csv(perfect, index=False)  # order does not matter, Ids do
    assert "accuracy: 1.0000" in runner.invoke(app, ["score", str(perfect), "--labels",
                                                     str(tiny_data / "testY.csv")]).stdout


@pytest.mark.parametrize("change, message", [
    (lambda f: f.iloc[:-1], "99 rows, but"),
    (lambda f: f.assign(Id=f["Id"] + 1000), "no prediction for Id 0"),
    (lambda f: f.rename(columns={"Label": "Class"}), "columns must be Id,Label"),
    (lambda f: f.assign(Label=f["Label"].where(f.index != 3, -1)), "negative label -1 on line 5"),
    # Read as uint64, it became -1 in the cast to int, and was scored as a wrong prediction.
    (lambda f: f.assign(Label=f["Label"].astype("uint64").where(f.index != 3, 2**64 - 1)),
     f"label {2**64 - 1} on line 5; labels are 0..K-1"),
    (lambda f: f.assign(Label=f["Label"].where(f.index != 3, 9)), "predicts label 9, but"),  # 5 classes there
    # Said to "hold integers only" and to be "text (file names)":
    (lambda f: f.iloc[:0], "bad.csv: no data rows"),
    (lambda f: f.assign(Id=f["Id"].astype(float)), "column 'Id' holds decimal numbers (e.g. 0.0); Ids are"),
])
def test_score_refuses_mismatched_submissions(change, message: str, tiny_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    change(pd.read_csv(tiny_data / "testY.csv")).to_csv(bad, index=False)
    result = runner.invoke(app, ["score", str(bad), "--labels", str(tiny_data / "testY.csv")])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_score_names_the_line_in_the_file_below_blank_lines(tiny_data: Path, tmp_path: Path) -> None:
    """pandas skips blank lines, so a row's line is not its row + 2 where blank lines come before it."""
    bad = tmp_path / "bad.csv"
    bad.write_text("Id,Label\n0,1\n\n\n1,-2\n")
    result = runner.invoke(app, ["score", str(bad), "--labels", str(tiny_data / "testY.csv")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: negative label -2 on line 5; labels are 0..K-1"


def test_score_counts_the_exports_classes_when_the_labels_lack_the_last(exported: Path, tiny_data: Path,
                                                                        tmp_path: Path) -> None:
    """With the last class's rows left out of testY.csv (and no dataset.json beside it), a prediction of that class
    was refused: the class count came from the true labels alone."""
    truth = pd.read_csv(tiny_data / "testY.csv")
    kept = truth[truth["Label"] < 4]
    (tmp_path / "labels").mkdir(), shutil.copytree(exported, tmp_path / "export")
    kept.to_csv(tmp_path / "labels" / "testY.csv", index=False)
    predicted = kept.assign(Label=kept["Label"].where(kept.index != kept.index[0], 4))  # one wrong: class 4
    predicted.to_csv(tmp_path / "export" / "submission.csv", index=False)
    result = runner.invoke(app, ["score", str(tmp_path / "export" / "submission.csv"), "--labels",
                                 str(tmp_path / "labels" / "testY.csv")])
    assert result.exit_code == 0, result.output
    assert f"accuracy: {(len(kept) - 1) / len(kept):.4f} on {len(kept)} rows" in result.stdout
    assert "footwear" in result.stdout  # the export's five class names, the last one with no rows
    # Labels whose dataset.json names four classes: not the data the five-class model was trained on.
    kept.to_csv(tmp_path / "export" / "submission.csv", index=False)
    (tmp_path / "labels" / "dataset.json").write_text(json.dumps({"label_set": "custom", "class_names": list("abcd")}))
    result = runner.invoke(app, ["score", str(tmp_path / "export" / "submission.csv"), "--labels",
                                 str(tmp_path / "labels" / "testY.csv")])
    assert result.exit_code == 2 and "predicted for 5 classes (its params.json), but" in result.stderr, result.output


def test_comparison_data_step(studies: str) -> None:
    storage = open_storage(studies)
    loaded = [optuna.load_study(study_name=n, storage=storage) for n in ("lenet", "cnn")]
    table = comparison(loaded).set_index("arch")
    for study in loaded:
        row, best = table.loc[study.study_name], study.best_trial
        assert row["best_val_accuracy"] == pytest.approx(best.value, abs=1e-4)
        assert row["n_params"] == best.user_attrs["n_params"] and row["complete"] == len(study.trials)
        assert row["best_params"] == model_params(best.params) and row["study_seconds"] > 0
    assert (table.loc["cnn", "conv"], table.loc["cnn", "pooling"], table.loc["cnn", "dense"]) == (4, 2, 2)
    assert (table.loc["lenet", "conv"], table.loc["lenet", "pooling"], table.loc["lenet", "dense"]) == (2, 2, 3)
    assert len(best_curves(loaded)) == 2 * EPOCHS and len(trial_points(loaded)) == 5


def test_report_command_writes_table_csv_and_html(studies: str, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    result = runner.invoke(app, ["report", "--storage", studies, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "best_val_accuracy" in result.stdout and "lenet" in result.stdout
    assert len(pd.read_csv(out.with_suffix(".csv"))) == 2
    assert _figures_in(out.read_text()) == 3  # notebook at a glance, best curves, accuracy vs time
    # Best params as a trial's line gives them, not a Python dict with 16-digit floats.
    assert re.search(r"<td>variant=\w+ pooling=\w+ .*learning_rate=[0-9.e-]+ ", out.read_text())
    assert "{&#x27;variant" not in out.read_text() and "{'variant" not in out.read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_optuna_dashboard_lists_the_studies(studies: str) -> None:
    port = _free_port()
    command = str(Path(sys.executable).with_name("optuna-dashboard"))  # the `dashboard` extra's script
    dashboard = subprocess.Popen([command, studies, "--host", "127.0.0.1",
                                  "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline:
            try:
                body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5).read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, "dashboard did not answer"
        assert {s["study_name"] for s in body["study_summaries"]} == {"lenet", "cnn"}
        study_id = next(s["study_id"] for s in body["study_summaries"] if s["study_name"] == "lenet")
        detail = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=5).read())
        assert "history" in json.dumps(detail["trials"][0]["user_attrs"])
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)


def test_an_ensemble_averages_in_float32_after_a_bfloat16_retrain() -> None:
    keras.config.set_dtype_policy("mixed_bfloat16")  # as the last bfloat16 member's retrain leaves it
    try:
        members = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", dtype="float32")])
                   for _ in range(2)]
        model = averaged_model(members, (4,))
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.layers[-1].compute_dtype == "float32"
    assert model.predict(np.ones((2, 4), np.float32), verbose=0).dtype == np.float32


def test_the_mirror_average_is_saved_in_the_model(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    member = keras.Sequential([keras.Input((3, 4, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(5, activation="softmax")])
    x = np.random.default_rng(0).random((6, 3, 4, 1), dtype=np.float32)
    model = averaged_model([member], (3, 4, 1), mirror=True)
    expected = (member.predict(x, verbose=0) + member.predict(x[:, :, ::-1], verbose=0)) / 2  # width reversed
    assert not np.allclose(expected, member.predict(x, verbose=0))  # the mirror changes this member's answer
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("members", "mirrored"), [([{"augment_flip": True}], True), ([{}], False),
                                                   ([{"augment_flip": True}, {"augment_flip": False}], False)])
def test_mirrored_by_default_when_every_member_trained_mirrored(members: list[dict], mirrored: bool) -> None:
    plans = [RetrainPlan("cnn", params, 1, 2, False, "float32", 2) for params in members]
    assert mirrored_by_default(plans) is mirrored


def test_export_with_the_other_mirror_choice(exported: Path, studies: str, tiny_data: Path,
                                             tmp_path: Path) -> None:
    default = json.loads((exported / "params.json").read_text())
    flag = "--no-mirror" if default["test_time_mirror"] else "--mirror"
    result = runner.invoke(app, ["export-best", "lenet", "--storage", studies, "--data", str(tiny_data),
                                 "--out", str(tmp_path), flag, "-q"])
    assert result.exit_code == 0, result.output
    assert "rebuilt by this hpsearch" not in result.stderr  # the same architecture: its size agrees
    params = json.loads((tmp_path / "params.json").read_text())
    assert params["test_time_mirror"] is (flag == "--mirror")
    # The same retrain (same seed) seen with and without mirrors: the single-view accuracies agree as retrains do.
    one_view = [p["val_accuracy_without_mirror"] if p["test_time_mirror"] else p["val_accuracy"]
                for p in (default, params)]
    assert one_view[0] == pytest.approx(one_view[1], abs=0.02)
    model = keras.saving.load_model(tmp_path / "model.keras")
    _, x_test = load_test(tiny_data, (28, 28, 1))
    labels = np.argmax(model.predict(x_test, verbose=0), axis=1)
    assert labels.tolist() == pd.read_csv(tmp_path / "submission.csv")["Label"].tolist()
    report = (tmp_path / "report.html").read_text()
    assert ("each image averaged with its mirror image" in report) is (flag == "--mirror")


def test_export_says_when_the_rebuilt_model_is_not_the_trials_size(studies: str, tiny_data: Path,
                                                                    tmp_path: Path) -> None:
    """A trial trained by an older architecture's code (e.g. large images before the dense head was pooled) was
    retrained as another model without a word."""
    db = tmp_path / "db.sqlite"
    shutil.copy(studies.removeprefix("sqlite:///"), db)
    best = optuna.load_study(study_name="lenet", storage=f"sqlite:///{db}").best_trial
    with sqlite3.connect(db) as connection:  # Optuna updates no finished trial: its table, as an old run wrote it
        connection.execute("UPDATE trial_user_attributes SET value_json = '123' WHERE trial_id = ? AND key = ?",
                           (best._trial_id, "n_params"))
    result = runner.invoke(app, ["export-best", "lenet", "--storage", f"sqlite:///{db}", "--data", str(tiny_data),
                                 "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    built = best.user_attrs["n_params"]
    assert result.stderr == (f"note: trial {best.number} trained a model of 123 parameters; rebuilt by this hpsearch "
                             f"it has {built:,}, so it is not the model the trial measured (a new study searches the "
                             "current architecture)\n"), result.stderr


def _beside_lenet(studies: str, tmp_path: Path, name: str, **changed: str) -> tuple[str, optuna.Study, optuna.Study]:
    """A copy of the module's storage with a new, empty study `name` holding lenet's study attributes, some changed:
    its URL, the lenet study and the new one."""
    db = tmp_path / "db.sqlite"
    shutil.copy(studies.removeprefix("sqlite:///"), db)
    url = f"sqlite:///{db}"
    lenet = optuna.load_study(study_name="lenet", storage=url)
    new = optuna.create_study(study_name=name, storage=url, direction="maximize")
    for key, value in {**lenet.user_attrs, **changed}.items():
        new.set_user_attr(key, value)
    return url, lenet, new


def test_report_keeps_whole_numbers_whole_beside_a_study_without_a_result(studies: str, tmp_path: Path) -> None:
    """A study with no finished trial (e.g. interrupted in its first) turned every count into a float: 2.0."""
    url, lenet, _ = _beside_lenet(studies, tmp_path, "vgg16", arch="vgg16")
    replay = optuna.create_study(study_name="alexnet-notebook", storage=url, direction="maximize")
    replay.set_user_attr("arch", "alexnet")
    mark_replay(replay, 0.5)  # a replay alone: its row of the CSV has no search columns
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--storage", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out.with_suffix(".csv"), dtype=str, keep_default_na=False).set_index("study")
    for column in ("best_trial", "n_params", "conv", "pooling", "dense", "complete", "failed"):
        assert table.loc["lenet", column].isdigit() and table.loc["vgg16", column] in ("", "0"), column
    assert table.loc["", "arch"] == "alexnet" and table.loc["", "notebook_epochs"].isdigit()
    n_params = lenet.best_trial.user_attrs["n_params"]
    assert f" {n_params} " in result.stdout and f"{n_params}.0" not in result.stdout
    assert "<td>NaN</td>" not in out.read_text() and f"<td>{n_params}</td>" in out.read_text()


def test_export_best_on_data_smaller_than_the_studys_subset_names_the_study(studies: str, tiny_data: Path,
                                                                            tmp_path: Path) -> None:
    """It said "--subset 200: must be between 1 and 80" to a user who passed no --subset."""
    small = tmp_path / "small"
    small.mkdir()
    pd.read_csv(tiny_data / "train.csv").head(100).to_csv(small / "train.csv", index=False)
    shutil.copy(tiny_data / "testX.csv", small)
    result = runner.invoke(app, ["export-best", "lenet", "--storage", studies, "--data", str(small), "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: study 'lenet' ran on the first 200 training images of its data, more than {small} holds: pass the "
        f"study's --data ({tiny_data.resolve()})"), result.output
    result = runner.invoke(app, ["export-best", "lenet", "--storage", studies, "--data", str(tiny_data / "train.csv"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "a file; name the folder" in result.stderr, result.output


def test_score_refuses_labels_of_another_label_set(exported: Path, tiny_source: Path, tmp_path: Path) -> None:
    """A fashion5 submission against fashion10 labels printed "accuracy: 0.0970" without a word."""
    prepare(tiny_source, tmp_path / "f10", "fashion10")
    result = runner.invoke(app, ["score", str(exported / "submission.csv"), "--labels", str(tmp_path / "f10" /
                                                                                          "testY.csv")])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {exported / 'submission.csv'}: predicted for fashion5 (its params.json), but "
        f"{tmp_path / 'f10' / 'testY.csv'} holds fashion10 labels; score a submission against the labels of the "
        "same data"), result.output


@pytest.mark.parametrize("last, step", [(1, 1), (3, 1), (10, 1), (11, 2), (50, 5), (200, 20)])
def test_epoch_axes_show_whole_epochs(last: int, step: int) -> None:
    """Plotly put ticks at 1.2, 1.4, ... under the demo's 3-epoch runs; at most about ten ticks, whole epochs."""
    from search.figures import run_figure, study_sections
    from search.report import comparison_sections

    history = pd.DataFrame({"epoch": range(1, last + 1), "loss": 1.0, "val_loss": 1.0, "accuracy": 0.5,
                            "val_accuracy": 0.5})
    study = optuna.create_study(direction="maximize")  # Optuna's learning curves on an export's page too
    trial = study.ask()
    for epoch in range(1, last + 1):
        trial.report(0.5, epoch)
    study.tell(trial, 0.5)
    learning = next(s for s in study_sections(study) if s.title.startswith("Learning curves"))
    axes = [run_figure(history).layout.xaxis, run_figure(history).layout.xaxis3,  # the first two epoch plots
            comparison_sections(history.assign(study="s"), trial_points([]), pd.DataFrame())[0].figure.layout.xaxis,
            learning.figure.layout.xaxis]
    for axis in axes:
        assert axis.dtick == step and axis.tick0 == (1 if step == 1 else 0)


def test_the_comparison_charts_tell_studies_apart_and_keep_their_width() -> None:
    """Two studies of one architecture (other objectives, other data) were one colour in the all-trials chart; a
    long study name in a legend beside the plot left the plot about 80 px wide."""
    from search.report import comparison_sections

    long_name = "lenet " + "x" * 150
    points = pd.DataFrame({"study": ["lenet", long_name], "arch": "lenet", "trial": 0, "state": "COMPLETE",
                           "epochs": [1, 2], "val_accuracy": 0.5, "steady_seconds": 1.0, "pareto": [False, True]})
    curves = pd.DataFrame({"study": ["lenet", long_name], "epoch": 1, "val_accuracy": 0.5})
    sections = comparison_sections(curves, points, pd.DataFrame())
    assert len(sections) == 3  # curves, all trials, the one accuracy-time front
    assert {trace.name.split(",")[0] for trace in sections[1].figure.data} == {"lenet", long_name}
    for section in sections:
        assert section.figure.layout.legend.orientation == "h", section.title
    assert "epochs" in sections[1].figure.data[0].hovertemplate


def test_the_report_csv_gives_the_notebook_verdict_only_beside_the_study_it_compared(studies: str,
                                                                                     tmp_path: Path) -> None:
    """The notebook's columns were joined on the architecture: a study of one's own images beside the Fashion-MNIST
    one got the verdict computed from the other's winner."""
    url, lenet, own = _beside_lenet(studies, tmp_path, "lenet-own", label_set="custom")
    own.add_trial(lenet.best_trial)
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--storage", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out.with_suffix(".csv"), dtype=str, keep_default_na=False).set_index("study")
    assert table.loc["lenet", "search_vs_notebook"].startswith("search ")
    assert table.loc["lenet", "notebook_model"] == "model4"
    assert table.loc["lenet-own", "search_vs_notebook"] == table.loc["lenet-own", "notebook_model"] == ""
