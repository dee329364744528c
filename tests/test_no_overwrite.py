"""Nothing is silently overwritten or created: exports, reports, prepared data, foreign databases, missing
folders."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import search.export
from search.cli import app
from search.errors import UserError
from search.export_files import EXPORT_FILES, staged_in_folder, staged_out_dir
from tests.conftest import study_in

runner = CliRunner()


def _one_line_error(result: Result, message: str) -> None:
    """Exit 2 with `message` in one line on stderr and no traceback."""
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def lenet_study(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A storage holding a 1-trial lenet study."""
    return study_in(tmp_path_factory.mktemp("store"), tiny_data, "lenet", "--trials", "1", "--epochs", "1",
                    "--subset", "50")


def test_export_best_refuses_an_earlier_export_unless_force(lenet_study: str, tiny_data: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "best"
    export = ["export-best", "lenet", "--storage", lenet_study, "--data", str(tiny_data), "--out", str(out), "-q"]
    assert runner.invoke(app, export).exit_code == 0
    before, folder = {name: (out / name).read_bytes() for name in EXPORT_FILES}, out.stat().st_ino
    # It names the study and trial the earlier export came from: --force is not given blindly.
    _one_line_error(runner.invoke(app, export), "holds an earlier export (of study 'lenet', trial 0); pass --force")
    assert {name: (out / name).read_bytes() for name in EXPORT_FILES} == before

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # an export interrupted after some of its files were written

    monkeypatch.setattr(search.export, "write_html", broken)
    assert runner.invoke(app, [*export, "--force"]).exit_code == 130
    assert {name: (out / name).read_bytes() for name in EXPORT_FILES} == before  # old export whole, no mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no temporary folder left behind
    monkeypatch.undo()
    assert runner.invoke(app, [*export, "--force"]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORT_FILES)
    assert out.stat().st_ino != folder  # replaced whole, by a rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    # What a killed export leaves (SIGKILL removes nothing) is named, not removed: a live export's looks the same.
    (tmp_path / ".best.new-k1ll3d").mkdir()
    result = runner.invoke(app, [*export, "--force"])
    assert result.exit_code == 0 and result.stderr == (
        f"note: {tmp_path / '.best.new-k1ll3d'} was left by an interrupted export-best (killed, or still running "
        "elsewhere); remove it once no such run is going on\n"), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".best.new-k1ll3d", "best"]


def test_report_replaces_a_report_only_with_force_and_nothing_else(lenet_study: str, tmp_path: Path) -> None:
    report = ["report", "--storage", lenet_study, "--out", str(tmp_path / "report.html")]
    assert runner.invoke(app, report).exit_code == 0
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    _one_line_error(runner.invoke(app, report), "report.html exists; pass --force")
    assert runner.invoke(app, [*report, "--force"]).exit_code == 0
    assert sorted(written) == ["report.csv", "report.html"]
    mine = tmp_path / "train.csv"  # e.g. --out data/train.html beside the training data
    mine.write_text("Id,Label,pixel0\n0,1,0\n")
    result = runner.invoke(app, ["report", "--storage", lenet_study, "--out", str(tmp_path / "train.html"), "--force"])
    _one_line_error(result, "train.csv is not an hpsearch report, which is all --force replaces")
    assert mine.read_text() == "Id,Label,pixel0\n0,1,0\n" and not (tmp_path / "train.html").exists()


def test_report_refuses_an_out_that_its_csv_would_replace(lenet_study: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--storage", lenet_study, "--out", str(tmp_path / "report.csv")])
    _one_line_error(result, "name the HTML file")
    assert not any(tmp_path.iterdir())


def test_report_makes_no_folder_but_studies(lenet_study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a mistyped --out made a folder of its own
    result = runner.invoke(app, ["report", "--storage", lenet_study, "--out", "studeis/report.html"])
    _one_line_error(result, "--out studeis/report.html: folder studeis does not exist; create it first")
    assert not any(tmp_path.iterdir())
    assert runner.invoke(app, ["report", "--storage", lenet_study]).exit_code == 0  # the default folder is made
    assert sorted(p.name for p in (tmp_path / "studies").iterdir()) == ["report.csv", "report.html"]


@pytest.mark.parametrize("out", [".", "..", "folder"])
def test_report_refuses_a_folder_as_out(out: str, lenet_study: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work" / "folder").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    result = runner.invoke(app, ["report", "--storage", lenet_study, "--out", out, "--force"])
    _one_line_error(result, "a folder; name the HTML file")
    assert [p.name for p in tmp_path.rglob("*")] == ["work", "folder"]  # no folder.csv beside it


def test_export_best_refuses_an_out_it_cannot_make_before_retraining(lenet_study: str, tiny_data: Path,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("mine")

    def retrained(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained before the --out check")

    monkeypatch.setattr(search.export, "retrain", retrained)
    result = runner.invoke(app, ["export-best", "lenet", "--storage", lenet_study, "--data", str(tiny_data),
                                 "--out", str(tmp_path / "a-file" / "best")])
    _one_line_error(result, f"cannot make a folder in {tmp_path / 'a-file'}")


@pytest.mark.parametrize("out", [".", "./", "..", "{cwd}"])
def test_export_best_refuses_the_current_folder_before_retraining(out: str, lenet_study: str, tiny_data: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The export swaps its folder in by renames, which the current folder (empty or not) cannot take part in."""
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    monkeypatch.setattr(search.export, "retrain", lambda *args, **kwargs: pytest.fail("retrained"))
    result = runner.invoke(app, ["export-best", "lenet", "--storage", lenet_study, "--data", str(tiny_data),
                                 "--out", out.format(cwd=tmp_path / "empty"), "--force"])
    _one_line_error(result, "the current folder or one above it")
    assert [p.name for p in tmp_path.rglob("*")] == ["empty"]


@pytest.mark.parametrize("command", ["export-best", "confirm", "trials"])
def test_arch_must_be_the_studys_own(command: str, lenet_study: str, tiny_data: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = ["--data", str(tiny_data)] if command != "trials" else []  # trials listed lenet's as cnn's
    result = runner.invoke(app, [command, "cnn", "--study-name", "lenet", "--storage", lenet_study, *data])
    _one_line_error(result, "study 'lenet' holds lenet trials, not cnn; name lenet as ARCH")
    assert not any(tmp_path.iterdir())


def test_export_best_never_replaces_a_folder_of_other_files(lenet_study: str, tiny_data: Path,
                                                            tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["export-best", "lenet", "--storage", lenet_study, "--data", str(tiny_data),
                                 "--out", str(tmp_path), "--force"])
    _one_line_error(result, "holds other files (notes.txt)")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    for name in ("a.csv", "b.csv", "train.csv"):  # more than it names: it says how many more (it named 3 of 4)
        (tmp_path / name).write_text("mine")
    result = runner.invoke(app, ["export-best", "lenet", "--storage", lenet_study, "--data", str(tiny_data),
                                 "--out", str(tmp_path), "--force"])
    _one_line_error(result, "holds other files (a.csv, b.csv, notes.txt and 1 more)")


def test_prepare_csv_refuses_a_folder_holding_an_image_tree(tiny_source: Path, tmp_path: Path) -> None:
    (tmp_path / "train" / "cats").mkdir(parents=True)
    (tmp_path / "dataset.json").write_text("{}")
    prepare = ["data", "prepare", "--source", str(tiny_source), "--out", str(tmp_path), "--force"]
    _one_line_error(runner.invoke(app, prepare), "train exists (an image tree?); one layout a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.json", "train"]
    assert (tmp_path / "dataset.json").read_text() == "{}"


def test_prepare_refuses_to_overwrite_data_unless_force(tiny_source: Path, tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("Id,Label\n0,1\n")
    prepare = ["data", "prepare", "--source", str(tiny_source), "--out", str(tmp_path)]
    _one_line_error(runner.invoke(app, prepare), "train.csv exists; pass --force")
    assert (tmp_path / "train.csv").read_text() == "Id,Label\n0,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv"]
    (tmp_path / ".prepare.k1ll3d").mkdir()  # what a killed prepare leaves: named, not removed
    result = runner.invoke(app, [*prepare, "--force"])
    assert result.exit_code == 0 and f"note: {tmp_path / '.prepare.k1ll3d'} was left by an interrupted data " \
        "prepare" in result.stderr
    assert (tmp_path / "train.csv").stat().st_size > 100_000 and (tmp_path / ".prepare.k1ll3d").is_dir()


@pytest.mark.parametrize("args", [["trials", "lenet"], ["report"], ["export-best", "lenet"],
                                  ["confirm", "lenet"], ["study", "lenet"]])
def test_commands_leave_another_programs_sqlite_file_alone(args: list[str], tiny_data: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
    connection.close()
    before = db.read_bytes()
    data = ["--data", str(tiny_data)] if args[0] in ("study", "export-best", "confirm") else []
    result = runner.invoke(app, [*args, *data, "--storage", f"sqlite:///{db}"])
    _one_line_error(result, "not an Optuna storage")
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_read_only_commands_refuse_a_file_that_is_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the checkout, where the demo's studies/report.html may exist
    text = tmp_path / "notes.db"
    text.write_text("just some text, long enough to be read as a database header.....\n" * 3)
    for args in (["trials", "lenet"], ["report"]):
        _one_line_error(runner.invoke(app, [*args, "--storage", f"sqlite:///{text}"]), "not an SQLite database")
        _one_line_error(runner.invoke(app, [*args, "--storage", f"journal:///{text}"]), "not an Optuna journal file")
    assert text.read_text().startswith("just some text") and [p.name for p in tmp_path.iterdir()] == ["notes.db"]


@pytest.mark.parametrize("text", ["my notes, one line without a newline", '{"a": 1}\n', "\x89PNG\r\n"])
def test_study_leaves_a_file_that_is_no_journal_alone(text: str, tiny_data: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "notes.log"
    notes.write_bytes(text.encode())
    result = runner.invoke(app, ["study", "lenet", "--data", str(tiny_data), "--storage", f"journal:///{notes}"])
    _one_line_error(result, "not an Optuna journal file")
    assert notes.read_bytes() == text.encode() and [p.name for p in tmp_path.iterdir()] == ["notes.log"]


@pytest.mark.parametrize("make_url, message", [
    (lambda tmp: f"sqlite:///{tmp / 'nonexistent-dir' / 'x.db'}", "nonexistent-dir does not exist"),
    (lambda tmp: f"journal:///{tmp / 'nonexistent-dir' / 'x.log'}", "nonexistent-dir does not exist"),
    (lambda tmp: f"sqlite:///{tmp / 'file.txt' / 'x.db'}", "file.txt does not exist"),  # parent is a file
    # Three slashes: a path relative to this folder, as SQLAlchemy reads sqlite:///; the user meant /tmp/...
    (lambda tmp: f"journal://{tmp / 'x.log'}", "(the path is relative to this folder; for "),
])
def test_storage_folder_is_created_only_for_the_default(make_url: Callable[[Path], str], message: str,
                                                        tiny_data: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    (tmp_path / "file.txt").write_text("x")
    result = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "20", "-q",
                                 "--data", str(tiny_data), "--storage", make_url(tmp_path)])
    _one_line_error(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    result = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "20", "-q",
                                 "--data", str(tiny_data)])
    assert result.exit_code == 0 and (tmp_path / "studies" / "hpsearch.db").is_file()  # the default folder is made


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_a_reader_given_three_slashes_for_an_absolute_path_says_so(scheme: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`trials`, `report`, `export-best` said only "no such journal file" for journal:///tmp/x.log, where
    /tmp/x.log exists: `study` says the path is relative, and that an absolute one takes four slashes."""
    absolute = tmp_path / "x.log"
    absolute.write_text("")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["trials", "lenet", "--storage", f"{scheme}://{absolute}"])  # // + /tmp...: three
    _one_line_error(result, f"no such {'journal' if scheme == 'journal' else 'database'} file (the path is relative "
                            f"to this folder; for {absolute} write four slashes)")
    elsewhere = runner.invoke(app, ["trials", "lenet", "--storage", f"{scheme}:///{tmp_path}/missing.log"])
    assert elsewhere.exit_code == 2 and "four slashes" not in elsewhere.stderr  # no hint where none is found


def test_score_on_a_folder_is_one_line(tiny_data: Path) -> None:
    _one_line_error(runner.invoke(app, ["score", str(tiny_data), "--labels", str(tiny_data / "testY.csv")]),
                    "is a folder, not an Id,Label CSV file")
    _one_line_error(runner.invoke(app, ["score", str(tiny_data / "testY.csv"), "--labels", str(tiny_data)]),
                    "is a folder")


def test_export_stopped_by_sigterm_while_writing_leaves_no_staging_folder(lenet_study: str, tiny_data: Path,
                                                                          tmp_path: Path) -> None:
    """`timeout` or kill during the write: the half-written staging folder is removed, as on Ctrl-C."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        import search.export
        search.export.write_html = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGTERM)  # the last file
        from search.cli import main
        sys.argv = ["hpsearch", "export-best", "lenet", "--storage", {lenet_study!r}, "--data", {str(tiny_data)!r},
                    "--out", {str(tmp_path / "best")!r}, "-q"]
        main()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert list(tmp_path.iterdir()) == []  # neither best/ nor a .best.new-* folder


def test_a_prepare_that_finds_its_files_written_meanwhile_keeps_nothing(tmp_path: Path) -> None:
    """Two `data prepare` into one folder both found it free, and the second replaced the first's files without
    --force. Each name is claimed as it is moved in, and the run that finds one taken moves back what it moved:
    here an image tree's prepare meets a CSV prepare's testY.csv after moving its test/ folder."""
    out = tmp_path / "data"
    with pytest.raises(UserError, match=f"{out / 'testY.csv'} appeared while this ran .*; this run wrote nothing"), \
            staged_in_folder(out, replace=False, last="dataset.json", prefix=".prepare.") as staging:
        for folder in ("test", "train"):
            (staging / folder / "bags").mkdir(parents=True)
        for name in ("dataset.json", "testY.csv"):
            (staging / name).write_text("mine")
        (out / "testY.csv").write_text("the other run's")  # meanwhile
    assert sorted(p.name for p in out.iterdir()) == ["testY.csv"]
    assert (out / "testY.csv").read_text() == "the other run's"
    with staged_in_folder(out, replace=True, last="dataset.json", prefix=".prepare.") as staging:  # --force
        for name in ("dataset.json", "testY.csv"):
            (staging / name).write_text("mine")
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "testY.csv"]
    assert (out / "testY.csv").read_text() == "mine"


def test_a_ctrl_c_between_an_exports_two_renames_waits_for_both(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt after the old export was moved aside, before the new one took its place, left neither at --out
    (the new one removed, the old one in a hidden folder)."""
    out = tmp_path / "best"
    out.mkdir()
    (out / "model.keras").write_text("old")
    rename = os.replace

    def interrupted_after(source: str | os.PathLike, target: str | os.PathLike) -> None:
        rename(source, target)
        if Path(target).name == "best" and Path(target).parent != tmp_path:  # the old export moved aside
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C would, between the two renames

    monkeypatch.setattr(os, "replace", interrupted_after)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the CLI (xdist's workers differ)
    try:
        with staged_out_dir(out, force=True) as staging:
            (staging / "model.keras").write_text("new")
    except KeyboardInterrupt:  # taken between the renames (as it was): the assertion below says what it left
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (out / "model.keras").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["best"]
