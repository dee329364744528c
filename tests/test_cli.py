"""The command line through typer's CliRunner and a real subprocess: outputs, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from search.cli import app
from tests.conftest import load

runner = CliRunner()


def test_python_m_search_is_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "search", "--help"], capture_output=True, text=True, check=True)
    for command in ("data", "study", "trials"):
        assert command in done.stdout
    assert "..." not in done.stdout.split("Commands:")[1]  # each command's line whole at 80 columns
    narrow = {**os.environ, "COLUMNS": "80"}
    study = subprocess.run([sys.executable, "-m", "search", "study", "--help"], capture_output=True, text=True,
                           check=True, env=narrow)
    # Rich's boxes cut defaults short there ("sqlite:///studies/h…").
    assert "sqlite:///studies/hpsearch.db]" in study.stdout and "…" not in study.stdout


def test_prepare_study_and_trials(tiny_source: Path, tmp_path: Path) -> None:
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = runner.invoke(app, ["data", "prepare", "--source", str(tiny_source), "--out", str(data)])
    assert result.exit_code == 0 and "train.csv" in result.stdout
    result = runner.invoke(app, ["study", "lenet", "--trials", "2", "--epochs", "1", "--subset", "100",
                                 "--data", str(data), "--storage", url])
    assert result.exit_code == 0, result.output
    assert "trial   0" in result.stderr and "epoch 1/1" in result.stderr
    assert " learning_rate=0.001 " in result.stderr  # the warm start's (LeNet's Adam), by its plain name
    assert "training on cpu (Keras backend tensorflow)" in result.stderr  # says where it trains
    assert "2 finished trials" in result.stdout and f"hpsearch export-best lenet --storage {url}" in result.stdout
    assert "best: trial" in result.stdout and "params variant=" in result.stdout  # key=value, 3 digits a float
    result = runner.invoke(app, ["trials", "lenet", "--storage", url])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["number", "state", "val_accuracy", "seconds"] and len(lines) == 3
    assert "learning_rate" in lines[0].split() and "learning_rate_adam" not in lines[0]  # plain names
    quiet = runner.invoke(app, ["study", "lenet", "--trials", "3", "--epochs", "1", "--subset", "100",
                                "--data", str(data), "--storage", url, "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == "" and "3 finished trials" in quiet.stdout
    # Counted from the command's start, its start-up included (a worker counted it from its own start, after
    # importing Keras and loading the data: --timeout 3 with two workers started their trials 8-10 s in).
    timed = runner.invoke(app, ["study", "lenet", "--trials", "5", "--timeout", "0.001", "--epochs", "1", "--subset",
                                "100", "--data", str(data), "--storage", url, "--quiet"])
    assert timed.exit_code == 0 and "3 finished trials" in timed.stdout, timed.output
    assert timed.stderr.strip() == ("--timeout 0.001 s reached with 3 of --trials 5 finished; run the same command "
                                    "again to add the rest")  # it stopped short without a word
    longer = runner.invoke(app, ["study", "lenet", "--trials", "5", "--epochs", "2", "--subset", "100", "--data",
                                 str(data), "--storage", url, "--quiet"])
    assert longer.exit_code == 0 and longer.stderr.strip() == (
        "note: complete trials of this study ran 1 epoch, these run 2; all are ranked together by their best "
        "validation accuracy"), longer.output
    other_way = runner.invoke(app, ["study", "lenet", "--trials", "6", "--epochs", "2", "--subset", "100", "--data",
                                    str(data), "--storage", url, "--quiet", "--precision", "bfloat16"])
    assert other_way.exit_code == 0 and (  # it resumed without a word; as with --backend or --device-loop
        "note: finished trials of this study trained with tensorflow on cpu; these train with tensorflow on cpu, "
        "bfloat16. All are ranked together") in other_way.stderr, other_way.output


@pytest.mark.parametrize("args, message", [
    (["study", "mlp"], "unknown architecture 'mlp'; valid: cnn, resnet, lenet, vgg16, alexnet"),
    (["study", "cnn", "--trials", "0"], "--trials must be at least 1"),
    (["study", "cnn", "--epochs", "-1"], "--epochs must be at least 1"),
    (["study", "cnn", "--sampler", "grid"], "unknown sampler 'grid'"),
    # A traceback (NumPy's seed range), the study's first trial left RUNNING:
    (["study", "cnn", "--seed", "-1"], "--seed must be 0 to 2147483647, got -1"),
    (["study", "cnn", "--seed", str(2**32)], "--seed must be 0 to 2147483647, got 4294967296"),
    (["study", "cnn", "--precision", "float8"], "unknown precision 'float8'; valid: float32, bfloat16"),
    (["study", "cnn", "--pruner", "wilcoxon"], "unknown pruner 'wilcoxon'"),
    (["study", "cnn", "--storage", "nonsense"], "storage 'nonsense': not a storage URL"),
    (["study", "cnn", "--storage", "redis://localhost"], "unsupported database 'redis'"),
    # It said "unsupported database 'journal'; use sqlite, postgresql or journal".
    (["study", "cnn", "--storage", "journal://x.log"], "a journal URL is journal:/// and the file's path"),
    (["study", "cnn", "--subset", "100000"], "--subset 100000: must be between 1 and 400"),
    (["study", "cnn", "--backend", "theano"], "unknown backend 'theano'"),
    (["study", "cnn", "--backend", ""], "unknown backend ''; valid"),  # an unset variable: not the default
    (["trials", "cnn"], "no study 'cnn' in this storage"),
    (["trials", "cnnn"], "unknown architecture 'cnnn'; valid: cnn"),  # it said "no study 'cnnn'"
    (["trials", "cnn", "--storage", "sqlite:///missing/nothing.db"], "no such database file"),
])
def test_bad_input_gives_one_line_and_exit_2(args: list[str], message: str, tiny_data: Path,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if "--storage" not in args:
        args = args + ["--storage", f"sqlite:///{tmp_path / 'db.sqlite'}"]
    if args[0] == "study":
        args = args + ["--data", str(tiny_data)]
    if args[0] == "trials" and "missing" not in args[-1]:
        runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "20", "-q",
                            "--data", str(tiny_data), "--storage", args[-1]])
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {result.stderr.strip().removeprefix('error: ')}"
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_trials_of_a_study_whose_first_trial_still_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(study_name="lenet", storage=url, direction="maximize")
    study.set_user_attr("arch", "lenet")  # hpsearch's record, which `study` writes before its first trial
    study.enqueue_trial({"optimizer": "adam"})
    study.ask()  # claims the queued trial: RUNNING, no duration yet
    study.enqueue_trial({"optimizer": "sgd"})  # WAITING
    result = runner.invoke(app, ["trials", "lenet", "--storage", url])
    assert result.exit_code == 0, result.output
    assert re.search(r"0\s+RUNNING", result.stdout) and re.search(r"1\s+WAITING", result.stdout)


def test_a_study_hpsearch_did_not_make_is_refused_in_one_line(tmp_path: Path, tiny_data: Path) -> None:
    """A plain Optuna study named like an architecture: `confirm` started training it and crashed on a param its
    trials lack (KeyError: 'batch_norm'), `trials` showed its values under hpsearch's headings, and `replay` refused
    it for an --objective it does not have."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    optuna.create_study(study_name="cnn", storage=url, direction="maximize").optimize(
        lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    for command in (["trials", "cnn"], ["confirm", "cnn"], ["export-best", "cnn", "--out", str(tmp_path / "x")]):
        result = runner.invoke(app, [*command, "--storage", url])
        assert result.exit_code == 2 and result.stderr.strip() == (
            "error: study 'cnn' was not made by hpsearch (it holds no hpsearch record); `hpsearch study ARCH` makes "
            "one"), (command, result.output)
    assert not (tmp_path / "x").exists()
    for command in (["study", "cnn"], ["replay", "cnn", "--study-name", "cnn"]):
        result = runner.invoke(app, [*command, "--storage", url, "--data", str(tiny_data), "--subset", "50"])
        assert result.exit_code == 2 and result.stderr.strip() == (
            "error: study 'cnn' was not made by hpsearch (it holds no hpsearch record); choose another --study-name"
        ), (command, result.output)
    assert "arch" not in optuna.load_study(study_name="cnn", storage=url).user_attrs  # left as it was


def test_missing_data_says_where(tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", "cnn", "--data", str(tmp_path / "none"),
                                 "--storage", f"sqlite:///{tmp_path / 'db.sqlite'}"])
    assert result.exit_code == 2 and "train.csv: file not found" in result.stderr
    assert not (tmp_path / "db.sqlite").exists()  # nothing written


def test_jax_backend_runs_a_study_in_bfloat16_and_export_retrains_on_it(tiny_data: Path, tmp_path: Path) -> None:
    """Keras' JAX backend (the GPU machine's) runs the same objective, in its own process, in the precision asked;
    export-best retrains the trial there without being told (it retrained on TensorFlow, the CPU's default: another
    model, 0.69 against the trial's 0.87 in a review), and confirm will not mix another backend's seeds in."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    hpsearch = [sys.executable, "-m", "search"]
    done = subprocess.run([*hpsearch, "study", "lenet", "--backend", "jax", "--trials", "1",
                           "--epochs", "1", "--subset", "50", "--data", str(tiny_data), "--storage", url,
                           "--precision", "bfloat16", "--shuffle"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training on cpu (Keras backend jax, bfloat16)" in done.stderr
    trial = load(url).trials[0]
    assert trial.user_attrs["backend"] == "jax" and len(trial.user_attrs["history"]) == 1
    assert trial.user_attrs["device_loop"] is False  # the on-device loop is the default on GPUs only
    assert trial.user_attrs["precision"] == "bfloat16" and trial.user_attrs["shuffle"] is True  # export retrains so
    export = subprocess.run([*hpsearch, "export-best", "lenet", "--storage", url, "--out", str(tmp_path / "best")],
                            capture_output=True, text=True, timeout=300)
    assert export.returncode == 0 and "trained on" not in export.stderr, export.stderr[-2000:]
    exported = json.loads((tmp_path / "best" / "params.json").read_text())
    assert (exported["backend"], exported["precision"], exported["device_loop"]) == ("jax", "bfloat16", False)
    retrained = float(re.search(r"retrained model: ([\d.]+)", export.stdout).group(1))
    assert retrained == pytest.approx(trial.value, abs=1e-4)  # same backend, seed, precision, order: the same run
    mixed = subprocess.run([*hpsearch, "confirm", "lenet", "--storage", url, "--backend", "tensorflow"],
                           capture_output=True, text=True, timeout=300)
    assert mixed.returncode == 2 and "trial 0 trained on jax; this retrains it on tensorflow" in mixed.stderr, \
        mixed.stderr[-2000:]


def test_outputs_agree_within_bfloat16_rounding_only() -> None:
    """The precision check's verdict: bfloat16's rounding passes; NaN, inf or a real error does not."""
    from search.objective import outputs_agree

    reference = np.random.default_rng(0).random((4, 14, 14, 32), dtype=np.float32)
    rounded = reference.astype(ml_dtypes.bfloat16).astype(np.float32)  # what bfloat16 storage alone costs
    assert outputs_agree(reference, reference) and outputs_agree(reference, rounded)
    for broken in (np.where(reference > 0.8, np.nan, reference), np.where(reference > 0.99, np.inf, reference),
                   reference * 1.2, np.zeros_like(reference)):
        assert not outputs_agree(reference, broken)


def test_study_refuses_a_precision_the_device_computes_wrongly(tiny_data: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the compiled check disagrees (as JAX 0.11-0.12 on CPU in bfloat16), no trial trains: one clear error."""
    from search import objective

    objective.check_precision.cache_clear()  # the verdict is kept per process
    monkeypatch.setattr(objective, "outputs_agree", lambda reference, computed: False)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "50",
                                 "--data", str(tiny_data), "--storage", url, "--precision", "bfloat16"])
    objective.check_precision.cache_clear()
    assert result.exit_code != 0 and "--precision bfloat16 computes wrong results on this device (cpu" \
        in result.stderr and "train in float32" in result.stderr, result.output
    assert "Traceback" not in result.output and not (tmp_path / "db.sqlite").exists()  # refused before any study


def test_readme_first_command_is_the_timed_demo_search() -> None:
    """One copy-pasteable line ending in .ci/demo: a real search (>= 10 sampled trials), export-best, report."""
    root = Path(__file__).parents[1]
    commands = [line for line in (root / "README.md").read_text().split("```bash")[1].splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands[0].endswith("&& bash .ci/demo")
    demo = (root / ".ci" / "demo").read_text()
    found = re.search(r"study (\w+) --trials (\d+) --epochs (\d+)", demo)
    # >= 10 sampled trials after the warm-start trial; >= 3 epochs so the pruner has rungs (1 and 3) to prune at
    assert found and found[1] == "lenet" and int(found[2]) >= 11 and int(found[3]) >= 3
    assert "--enqueue-seed-models" not in demo and "export-best lenet" in demo and "report" in demo
    assert "bash .ci/demo" in (root / ".ci" / "run").read_text()


@pytest.mark.parametrize(("command", "said"), [
    (["data", "prepare", "--out", "OUT"], "interrupted: nothing was written; run the same command again"),
    (["export-best", "lenet", "--out", "OUT"],
     "interrupted: nothing was exported (an earlier export is left as it was)"),
    (["confirm", "lenet"], "interrupted: finished seed runs are saved; run the same command again to resume"),
    (["trials", "lenet"], "interrupted"),
])
def test_ctrl_c_says_what_each_command_leaves(command: list[str], said: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command said "finished trials are saved; ... resume", which export-best or prepare never do."""
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("search.data.prepare", interrupt)
    monkeypatch.setattr("search.storage.open_storage", interrupt)
    result = runner.invoke(app, [str(tmp_path / "out") if word == "OUT" else word for word in command])
    assert result.exit_code == 130 and result.stderr.strip() == said, result.output


def test_a_file_as_data_and_a_wide_csv_as_submission_get_short_errors(tiny_data: Path, tmp_path: Path) -> None:
    """--data data/train.csv said "data/train.csv/train.csv: file not found"; scoring testX.csv listed 785 columns."""
    result = runner.invoke(app, ["study", "lenet", "--data", str(tiny_data / "train.csv"), "--storage",
                                 f"sqlite:///{tmp_path / 'db.sqlite'}"])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: --data {tiny_data / 'train.csv'}: a file; name the folder that holds the data ({tiny_data})")
    result = runner.invoke(app, ["score", str(tiny_data / "testX.csv"), "--labels", str(tiny_data / "testY.csv")])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {tiny_data / 'testX.csv'}: columns must be Id,Label, found Id,pixel0,pixel1,pixel2,... (785 columns)")


def test_the_studies_named_in_an_error_are_quoted(tmp_path: Path) -> None:
    """A blank name was invisible in the list, and a newline or a terminal escape in one broke the line or coloured
    the terminal (a review's)."""
    from search.errors import UserError
    from search.storage import load_study, open_storage

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for name in ("plain", "  ", "line\nbreak\x1b[31m"):
        optuna.create_study(study_name=name, storage=url)
    with pytest.raises(UserError) as said:
        load_study(open_storage(url), "missing")
    assert str(said.value) == r"no study 'missing' in this storage; studies: 'plain', '  ', 'line\nbreak\x1b[31m'"


def test_a_rerun_leaving_out_options_resumes_the_study_as_it_was_made(tiny_data: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--data, --subset, --no-levers and --heartbeat left out of a rerun are the study's own (the rerun read ./data,
    and was refused for each of the others); given ones still win, and a folder gone from this machine is not
    taken."""
    from search.study import resumed_settings

    data, url = tmp_path / "my data", f"sqlite:///{tmp_path / 'db.sqlite'}"
    data.mkdir()
    for name in ("train.csv", "dataset.json"):
        (data / name).write_bytes((tiny_data / name).read_bytes())
    made = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--data", str(data), "--subset",
                               "100", "--no-levers", "--heartbeat", "7", "--storage", url, "-q"])
    assert made.exit_code == 0, made.output
    monkeypatch.chdir(tmp_path)  # no data/ here
    result = runner.invoke(app, ["study", "lenet", "--trials", "2", "--epochs", "1", "--storage", url])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"resuming study 'lenet' with the options it was made with: --data '{data}' "
                                    "--subset 100 --no-levers --heartbeat 7\n"), result.stderr  # quoted for a shell
    study = load(url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert "augment" not in study.trials[1].params  # a sampled trial, without the levers
    # Given options win: another folder of the same data, a matching --subset (not said again).
    (tmp_path / "data").mkdir()
    for name in ("train.csv", "dataset.json"):
        (tmp_path / "data" / name).write_bytes((tiny_data / name).read_bytes())
    settings, said = resumed_settings(url, "lenet", {"data_dir": "data", "subset": 100, "levers": None,
                                                     "heartbeat_seconds": None, "objective": None})
    assert settings == {"data_dir": "data", "subset": 100, "levers": False, "heartbeat_seconds": 7,
                        "objective": "accuracy"} and said == ["--no-levers", "--heartbeat 7"]
    data.rename(tmp_path / "moved")  # the study's folder is gone: ./data, not a folder that is not there
    settings, said = resumed_settings(url, "lenet", {"data_dir": None, "subset": None})
    assert settings == {"subset": 100} and said == ["--subset 100"]
    result = runner.invoke(app, ["study", "lenet", "--trials", "3", "--epochs", "1", "--storage", url, "-q"])
    # Even quiet, a note says why ./data is read (a run without ./data ended in "data/train.csv: file not found").
    assert result.exit_code == 0 and result.stderr == (
        f"note: study 'lenet' was made with the data in {data}, which is not here; reading data/ instead (--data "
        "names another folder)\n"), result.output
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # neither the study's folder nor ./data: export-best says which
    result = runner.invoke(app, ["export-best", "lenet", "--storage", url])
    assert result.exit_code == 2 and result.stderr == (
        "error: data/train.csv: file not found (and no train/ folder of class folders); study 'lenet' was made with "
        f"the data in {data}, which is not here: pass --data\n"), result.output
    assert resumed_settings(url, "new", {"data_dir": None, "subset": 5}) == ({"subset": 5}, [])  # a new study
    # The study's folder back, with other data in it: said as such (it said to pass --data with that very folder).
    data.mkdir()
    (data / "dataset.json").write_bytes((tiny_data / "dataset.json").read_bytes())
    lines = (tiny_data / "train.csv").read_text().splitlines()
    (data / "train.csv").write_text("\n".join([*lines[:-1], lines[-1].rsplit(",", 1)[0] + ",7"]) + "\n")
    result = runner.invoke(app, ["study", "lenet", "--trials", "4", "--epochs", "1", "--storage", url, "-q"])
    assert result.exit_code == 2 and f"; its folder {data} now holds other data: restore that, or choose another " \
        "--study-name" in result.stderr, result.stderr
