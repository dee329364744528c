"""Shared fixtures: tiny real Fashion-MNIST data in the Kaggle format, and the CPU backend."""
from __future__ import annotations

import gzip
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy
from typer.testing import CliRunner

from search.data import DEFAULT_SOURCE, IDX_FILES, prepare, read_idx
from search.runtime import use_backend
from search.storage import open_storage

use_backend("tensorflow")  # before any test imports Keras


@pytest.fixture(autouse=True)
def float32_after_each_test() -> Iterator[None]:
    """Every test starts in float32. Training in bfloat16 (an in-process `study --precision bfloat16`) leaves Keras'
    global dtype policy at mixed_bfloat16, as a `study` process ends with it; a later test in the same test process
    then built layers that computed in bfloat16 (an augmentation test failed on rounding, by test order)."""
    yield
    import keras

    keras.config.set_dtype_policy("float32")


def as_foreground_job() -> None:
    """Popen preexec_fn: SIGINT handled as in a terminal's foreground job. A background job of a
    non-interactive shell (e.g. a CI runner's `cmd &`) starts with SIGINT ignored, and Python keeps it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an array as a gzipped IDX file, the format Fashion-MNIST ships in."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IDX files holding the first 500 training and 100 test images of the real Fashion-MNIST."""
    out = tmp_path_factory.mktemp("idx")
    sizes = {"train_x": 500, "train_y": 500, "test_x": 100, "test_y": 100}
    for key, name in IDX_FILES.items():
        write_idx(out / name, read_idx(DEFAULT_SOURCE / name)[: sizes[key]])
    return out


@pytest.fixture(scope="session")
def tiny_data(tiny_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder (train.csv, testX.csv, testY.csv) made by `prepare` from the tiny IDX files."""
    out = tmp_path_factory.mktemp("data")
    prepare(tiny_source, out, "fashion5")
    return out


def study_in(folder: Path, data: Path, *args: str) -> str:
    """Run `hpsearch study ARGS` (quiet, through the CLI) on data into a new SQLite file in folder; its URL."""
    from search.cli import app

    url = f"sqlite:///{folder / 'db.sqlite'}"
    result = CliRunner().invoke(app, ["study", *args, "--data", str(data), "--storage", url, "-q"])
    assert result.exit_code == 0, result.output
    return url


def load(url: str, name: str = "lenet") -> optuna.Study:
    """A study of a storage URL, by name (the architecture's, unless the test named it)."""
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.fixture
def postgres_database() -> Iterator[sqlalchemy.URL]:
    """A fresh database on the test server ($HPSEARCH_TEST_POSTGRES, which `source .ci/postgres.sh` sets; skipped
    without it), as a URL; dropped afterwards."""
    base = os.environ.get("HPSEARCH_TEST_POSTGRES")
    if not base:
        pytest.skip("HPSEARCH_TEST_POSTGRES is not set")
    url = sqlalchemy.engine.make_url(base)
    name = f"test_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    yield url.set(database=name)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite storage URL in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` (CI), tests that share a module-wide fixture run in one process, so the fixture is
    made once; every other test goes to whichever process is free."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info and any(fixture.scope == "module" for fixtures in info.name2fixturedefs.values()
                        for fixture in fixtures):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
