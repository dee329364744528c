"""A password in a storage URL never shows: not in messages, files, attributes, nor worker command lines."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy
from typer.testing import CliRunner

from search.cli import app
from search.config import StudyConfig
from search.errors import UserError
from search.export_files import EXPORT_FILES
from search.masking import display_url, masked_as_typed, redact, secret_arguments
from search.runner import _same_study_options
from search.storage import check_url, storage_loss_said
from search.study import stored_record
from tests.conftest import load
from tests.test_processes import children

runner = CliRunner()
PASSWORD = "TopSecret123"
UNREACHABLE = f"postgresql+psycopg://hp:{PASSWORD}@127.0.0.1:1/x"


@pytest.mark.parametrize("url, shown", [
    (UNREACHABLE, "postgresql+psycopg://hp:***@127.0.0.1:1/x"),
    ("postgresql://hp:p@ss/w@rd@db-host/hp", "postgresql://hp:***@db-host/hp"),  # '@' and '/' in the password
    ("postgres ql://hp:TopSecret123@host/db", "postgres ql://hp:***@host/db"),  # does not parse
    ("hp:TopSecret123@host/db", "***@host/db"),  # no scheme at all
    ("postgresql://db-host/hp?password=TopSecret123&sslmode=require",
     "postgresql://db-host/hp?password=***&sslmode=require"),
    ("sqlite:///studies/hpsearch.db", "sqlite:///studies/hpsearch.db"),
    ("postgresql://hp:pw@db-host/hp?options=a@b", "postgresql://hp:***@db-host/hp?options=a@b"),  # '@' in the query
    ("postgresql://hp@db-host/hp?password=Top&Secret&sslmode=require",  # an unencoded '&' in the password
     "postgresql://hp@db-host/hp?password=***&sslmode=require"),
    ("postgresql://hp@db-host:5432/hp", "postgresql://hp@db-host:5432/hp"),  # a user name alone is no secret
])
def test_display_url_masks_every_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


@pytest.mark.parametrize("args", [
    ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "50"],
    ["trials", "lenet"], ["export-best", "lenet"], ["report"],
    ["study", "lenet", "--storage", f"post gres://hp:{PASSWORD}@h/db"],  # does not parse
    ["trials", "lenet", "--storage", f"redis://hp:{PASSWORD}@h/0"],  # unsupported database
    ["trials", "lenet", "--storage", f"postgresql+psycopg://hp:p@{PASSWORD}@127.0.0.1:1/x"],  # an unencoded '@'
])
def test_unreachable_server_error_hides_the_password(args: list[str], tiny_data: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    extra = ["--data", str(tiny_data)] if args[0] in ("study", "export-best") else []
    storage = [] if "--storage" in args else ["--storage", UNREACHABLE]
    result = runner.invoke(app, args + extra + storage)
    note, error = result.stderr.strip().splitlines()  # the password typed on the command line, then the error
    assert result.exit_code == 2 and PASSWORD not in result.output
    assert note.startswith("note: --storage holds a password, which `ps` shows to every user") and "HPSEARCH" in note
    assert error.startswith("error: storage '")
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("args, said", [
    (["trials", "lenet", UNREACHABLE], "Got unexpected extra argument(s)"),  # the URL without --storage
    (["data", "prepare", "--out", "x", f"postgresql://hp@h/db?password={PASSWORD}"],
     "Got unexpected extra argument(s)"),
    ([UNREACHABLE, "trials"], "No such command"),
    (["study", "lenet", f"--{UNREACHABLE}"], "No such option"),
])
def test_usage_errors_quoting_a_url_hide_its_password(args: list[str], said: str) -> None:
    """click's usage errors quote what was typed: a URL typed in the wrong place was shown whole."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and said in result.stderr and PASSWORD not in result.output, result.output
    assert "hp:***@127.0.0.1:1/x" in result.stderr or "password=***" in result.stderr


@pytest.mark.parametrize("args", [
    ["score", UNREACHABLE],  # the URL taken for a file: its path, '//' made '/', was quoted password and all
    ["score", f"scores/?password={PASSWORD}&x=1"],
    ["data", "prepare", "--source", UNREACHABLE, "--out", "prepared"],
])
def test_a_url_typed_where_a_file_belongs_is_quoted_masked(args: list[str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and PASSWORD not in result.output, result.output
    assert ":***@127.0.0.1:1/x" in result.stderr or "password=***&x=1" in result.stderr, result.stderr


def test_a_word_that_equals_a_typed_password_is_left_as_written() -> None:
    url = "postgresql://postgres:postgres@h/db"  # a local server's defaults
    assert masked_as_typed(f"{url} and postgresql:/postgres:postgres@h/db/train.csv", url) == \
        "postgresql://postgres:***@h/db and postgresql:/postgres:***@h/db/train.csv"
    assert masked_as_typed("study 'postgres' not found", url) == "study 'postgres' not found"
    assert secret_arguments(["--storage", url, "cnn", "postgresql://postgres@h/db", "x?password=p"]) == \
        (url, "x?password=p")
    # A study name is no URL (it was shown as 'bypass=***'); an empty query password was shown as '******'.
    assert secret_arguments(["--study-name", "bypass=1"]) == ()
    empty = "sqlite:////tmp/x.db?password="
    assert masked_as_typed(f"storage {display_url(empty)!r}: no such file", empty) == \
        "storage 'sqlite:////tmp/x.db?password=***': no such file"


@pytest.mark.parametrize("password", ["a//b", "p/./q", "a/.//./b"])
def test_a_password_a_path_rewrites_is_masked_as_a_path_writes_it(password: str) -> None:
    """Taken for a path, 'postgresql://u:a//b@h/db' was quoted as postgresql:/u:a/b@h/db, its password changed."""
    url = f"postgresql://u:{password}@h/db"
    assert masked_as_typed(f"{Path(url) / 'train.csv'}: file not found", url) == \
        "postgresql:/u:***@h/db/train.csv: file not found"


def test_driver_errors_keep_their_words_when_the_url_has_a_user_alone() -> None:
    message = 'connection to server at "127.0.0.1", port 1 failed: password authentication failed for user "a"'
    assert redact(message, "postgresql://a@127.0.0.1:1/x") == message
    assert redact(f"no host {PASSWORD}", f"postgresql://hp:{PASSWORD}@h/x") == "no host ***"
    # The words after a masked query password stay (they went, up to the end of the message); a password not in
    # the URL is masked up to the next '&', where its end is not known.
    url = f"postgresql://hp@h/x?password={PASSWORD}"
    assert redact(f"bad {url} (see the docs)", url) == "bad postgresql://hp@h/x?password=*** (see the docs)"
    assert redact(f"dsn: password={PASSWORD} host=h) failed", url) == "dsn: password=*** host=h) failed"
    assert redact("dsn: password=other host=h&port=1", url) == "dsn: password=***&port=1"
    assert redact(f"dsn: password={PASSWORD}tail", url) == "dsn: password=***"  # not the secret alone: all hidden


def test_a_url_a_password_makes_unreadable_says_how_to_write_one() -> None:
    with pytest.raises(UserError, match="not a storage URL") as refused:
        check_url(f"postgresql+psycopg://hp:{PASSWORD}@:/%ss@h/db")  # SQLAlchemy reads a port of ''
    assert str(refused.value).endswith("percent-encode the password's special characters (@ as %40, : as %3A, / as "
                                       "%2F, % as %25)") and PASSWORD not in str(refused.value)
    with pytest.raises(UserError) as plain:
        check_url("postgresql+psycopg://h:5x/db")  # no password: no such hint
    assert "percent-encode" not in str(plain.value)


def test_a_password_with_an_unencoded_at_sign_is_refused_before_connecting() -> None:
    with pytest.raises(UserError, match="holds an '@'; write it as %40") as refused:
        check_url(f"postgresql+psycopg://hp:p@{PASSWORD}@db-host/x")
    assert PASSWORD not in str(refused.value) and "p@" not in str(refused.value)
    check_url(f"postgresql+psycopg://hp:p%40{PASSWORD}@db-host/x?options=a@b")  # encoded; '@' in the query


def test_hpsearch_storage_sets_the_default_and_storage_wins(tmp_path: Path, sqlite_url: str,
                                                           tiny_data: Path) -> None:
    study = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "20", "-q",
                                "--data", str(tiny_data)], env={"HPSEARCH_STORAGE": sqlite_url})
    assert study.exit_code == 0 and f"results: {sqlite_url}" in study.stdout, study.output
    assert "export with `hpsearch export-best lenet`" in study.stdout  # the variable names the storage
    env = {"HPSEARCH_STORAGE": UNREACHABLE}
    result = runner.invoke(app, ["trials", "lenet"], env=env)
    assert result.exit_code == 2 and "postgresql+psycopg://hp:***@127.0.0.1:1/x" in result.stderr
    assert PASSWORD not in result.output and "note: --storage" not in result.stderr  # not typed: no note
    result = runner.invoke(app, ["trials", "lenet", "--storage", sqlite_url], env=env)
    assert result.exit_code == 0 and "COMPLETE" in result.stdout
    for command in ("study", "trials", "report"):
        helped = runner.invoke(app, [command, "--help"], env=env)
        assert helped.exit_code == 0 and "HPSEARCH_STORAGE" in helped.stdout and PASSWORD not in helped.stdout


@pytest.fixture
def secret_postgres(postgres_database: sqlalchemy.URL) -> str:
    """A fresh database on the test server, as a URL carrying a password (the server trusts local users)."""
    return postgres_database.set(password=PASSWORD).render_as_string(hide_password=False)


def _watch_command_lines(proc: subprocess.Popen, seen: list[bytes]) -> None:
    """Collect the command lines of proc and its children until it ends (short polling)."""
    while proc.poll() is None:
        seen.extend(children(proc.pid).values())
        with contextlib.suppress(OSError):
            seen.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes())
        time.sleep(0.05)


def test_password_in_no_output_file_attribute_or_worker_argv(secret_postgres: str, tiny_data: Path,
                                                             tmp_path: Path) -> None:
    """The study gets the URL from $HPSEARCH_STORAGE, so no command line may hold the password (a worker
    would show its parent's argv for an instant between fork and exec); the other commands get --storage."""
    storage, printed = ["--storage", secret_postgres], []
    command = [sys.executable, "-m", "search", "study", "lenet", "--trials", "2", "--workers", "2", "--epochs", "1",
               "--subset", "50", "--data", str(tiny_data)]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HPSEARCH_STORAGE": secret_postgres})
    seen: list[bytes] = []
    watcher = threading.Thread(target=_watch_command_lines, args=(proc, seen))
    watcher.start()
    printed.extend(proc.communicate(timeout=600))
    watcher.join()
    assert proc.returncode == 0, printed[1][-2000:]
    assert any(b"worker" in line for line in seen)  # the workers were caught running
    assert not any(PASSWORD.encode() in line for line in seen)
    (tmp_path / "report").mkdir()  # report makes no folder but the default studies/
    for args in (["trials", "lenet"], ["export-best", "lenet", "--data", str(tiny_data), "--out", "export"],
                 ["report", "--out", "report/report.html"]):
        done = subprocess.run([sys.executable, "-m", "search", *args, *storage], cwd=tmp_path, capture_output=True,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        printed += [done.stdout, done.stderr]
    assert {p.name for p in (tmp_path / "export").iterdir()} == set(EXPORT_FILES)
    assert not any(PASSWORD.encode() in text for text in printed)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 7 and not [p for p in written if PASSWORD.encode() in p.read_bytes()]
    study = load(secret_postgres)
    attributes = json.dumps([study.user_attrs] + [
        [t.user_attrs, t.system_attrs, t.params] for t in study.trials], default=str)
    assert PASSWORD not in attributes


def test_the_next_commands_study_prints_can_be_pasted_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its hint named the storage and study unquoted (a space split them) and a password URL masked (no login)."""
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    odd = StudyConfig(arch="lenet", storage="sqlite:////tmp/st ore/ü db.db", study_name="my study")
    assert shlex.split(_same_study_options(odd)) == ["--storage", odd.storage, "--study-name", "my study"]
    secret = StudyConfig(arch="lenet", storage=UNREACHABLE)
    assert _same_study_options(secret) == ' --storage "$HPSEARCH_STORAGE"'
    monkeypatch.setenv("HPSEARCH_STORAGE", UNREACHABLE)
    assert _same_study_options(secret) == ""  # the variable already names it
    assert _same_study_options(StudyConfig(arch="lenet")) == " --storage sqlite:///studies/hpsearch.db"


def _refuses_as_empty(url: str) -> None:
    """trials and report say a new, empty database holds no studies yet, and write no tables into it."""
    for command in (["trials", "lenet"], ["report"]):
        result = runner.invoke(app, command, env={"HPSEARCH_STORAGE": url})  # where a password belongs
        assert result.exit_code == 2 and result.stderr.strip() == (
            f"error: no hpsearch studies in {display_url(url)} (no Optuna tables yet); run `hpsearch study ARCH` "
            "first"), result.output
        assert PASSWORD not in result.output
    assert stored_record(url, "lenet") is None  # a study's start asks too (for options left out): a new one
    engine = sqlalchemy.create_engine(url)
    assert not sqlalchemy.inspect(engine).get_table_names()
    engine.dispose()


def test_an_empty_sqlite_file_holds_no_studies_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It gave "cannot open (no such table: version_info)"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.db").touch()
    _refuses_as_empty("sqlite:///empty.db")
    assert (tmp_path / "empty.db").stat().st_size == 0


def test_an_empty_postgresql_database_holds_no_studies_yet(secret_postgres: str) -> None:
    """It gave 'cannot open (relation "version_info" does not exist)'."""
    _refuses_as_empty(secret_postgres)


def test_a_study_on_a_password_url_tells_how_to_name_it_again(secret_postgres: str, tiny_data: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    result = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--subset", "20", "-q",
                                 "--data", str(tiny_data), "--storage", secret_postgres])
    assert result.exit_code == 0 and PASSWORD not in result.output, result.output
    assert 'export with `hpsearch export-best lenet --storage "$HPSEARCH_STORAGE"`' in result.stdout
    assert "with HPSEARCH_STORAGE set to this storage's URL: it holds a password" in result.stdout


def test_losing_the_storage_mid_run_is_one_masked_line() -> None:
    """A database stopped under a running study: Optuna raised another error while handling the driver's, and
    each worker printed hundreds of lines of tracebacks holding the URL."""
    url = "postgresql+psycopg://hp:TopSecret123@db-host/hp"
    driver = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(
        f"connection to {url} failed: Connection refused"))
    with pytest.raises(UserError) as said, storage_loss_said(url):
        try:
            raise driver
        except sqlalchemy.exc.OperationalError:
            raise UnboundLocalError("cannot access local variable 'updated_state'") from None  # as Optuna did
    assert str(said.value).startswith("lost the storage 'postgresql+psycopg://hp:***@db-host/hp' (")
    assert "TopSecret123" not in str(said.value) and "run the same command again once it is back" in str(said.value)
    for other in (UserError("storage ...: cannot open (...)"), RuntimeError("a bug")):  # left as they are
        with pytest.raises(type(other)) as kept, storage_loss_said(url):
            raise other
        assert kept.value is other


def test_a_server_that_asks_for_a_password_the_url_lacks_says_where_it_goes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq's own words, "fe_sendauth: no password supplied", said nothing of where hpsearch takes a password from.
    The driver's error as psycopg raises it from a server that asks for one (the test server trusts everyone)."""
    import search.storage

    def asks_for_a_password(url: str, **kwargs: object) -> None:
        raise sqlalchemy.exc.OperationalError("connect", {}, Exception(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: no password '
            "supplied"))

    monkeypatch.setattr(search.storage, "SteadyHeartbeatStorage", asks_for_a_password)
    result = runner.invoke(app, ["trials", "lenet"], env={"HPSEARCH_STORAGE": "postgresql+psycopg://hp@db-host/x"})
    assert result.exit_code == 2 and result.stderr.strip().endswith(
        "fe_sendauth: no password supplied); give the password in $HPSEARCH_STORAGE's URL or in ~/.pgpass "
        "(README: many machines)"), result.output
