"""Data: prepare from IDX files, validation with one-line errors, the binary cache and the split."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import search.export_files
from search.cli import app
from search.data import IDX_FILES, DataError, describe, has_test, load_dataset, load_test, prepare, read_idx, read_table
from tests.conftest import write_idx


def test_prepare_writes_kaggle_format_with_fashion5_labels(tiny_source: Path, tmp_path: Path) -> None:
    paths = prepare(tiny_source, tmp_path, "fashion5")
    assert [p.name for p in paths] == ["train.csv", "testX.csv", "testY.csv"]
    train, test, truth = (pd.read_csv(p) for p in paths)
    assert list(train.columns[:3]) == ["Id", "Label", "pixel0"] and train.shape == (500, 786)
    assert list(test.columns[:2]) == ["Id", "pixel0"] and test.shape == (100, 785)
    assert list(truth.columns) == ["Id", "Label"] and list(truth["Id"]) == list(range(100))
    # Fashion-MNIST's first training image is an ankle boot (9) -> footwear (3); second a T-shirt -> tops (0).
    assert train["Label"].iloc[:2].tolist() == [3, 0]
    assert set(train["Label"]) == {0, 1, 2, 3, 4}


def test_prepare_fashion10_keeps_original_labels(tiny_source: Path, tmp_path: Path) -> None:
    prepare(tiny_source, tmp_path, "fashion10")
    assert pd.read_csv(tmp_path / "train.csv")["Label"].iloc[:2].tolist() == [9, 0]
    assert load_dataset(tmp_path).num_classes == 10


def test_prepare_without_source_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="pass --source"):
        prepare(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepare_names_a_damaged_idx_file_and_an_out_it_cannot_make(tiny_source: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "idx"
    shutil.copytree(tiny_source, damaged)
    victim = damaged / IDX_FILES["test_y"]
    victim.write_bytes(victim.read_bytes()[:30])  # cut short: gzip's end is missing
    with pytest.raises(DataError, match=f"{victim}: not a gzipped IDX file"):
        prepare(damaged, tmp_path / "out")
    (tmp_path / "a-file").write_text("mine")
    result = CliRunner().invoke(app, ["data", "prepare", "--source", str(tiny_source),
                                      "--out", str(tmp_path / "a-file" / "data")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.strip() == f"error: {tmp_path / 'a-file' / 'data'}: Not a directory"
    result = CliRunner().invoke(app, ["data", "prepare", "--source", str(tiny_source), "--out",
                                      str(tmp_path / "a-file")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --out {tmp_path / 'a-file'}: a file, not a folder"
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize("fmt", ["csv", "folders"])
@pytest.mark.parametrize("key, change, said", [
    ("train_y", lambda a: a[:-5], "495 labels for the 500 images of train-images-idx3-ubyte.gz"),
    ("test_y", lambda a: a + 16, "label 25; Fashion-MNIST's are 0-9"),  # EMNIST letters: 26 classes
    ("test_x", lambda a: np.pad(a, ((0, 0), (2, 2), (2, 2))), "images of shape 32x32; Fashion-MNIST's are 28x28"),
], ids=["fewer-labels", "letters", "32x32"])
def test_prepare_refuses_idx_files_that_are_not_fashion_mnist(fmt: str, key: str, change: Callable, said: str,
                                                              tiny_source: Path, tmp_path: Path) -> None:
    """Well-formed IDX files of another shape ended in a traceback halfway through (a pandas length error, an
    index out of bounds, a reshape to 784 columns); the folders format wrote 32x32 images under Fashion's names."""
    other = tmp_path / "idx"
    shutil.copytree(tiny_source, other)
    write_idx(other / IDX_FILES[key], change(read_idx(tiny_source / IDX_FILES[key])))
    result = CliRunner().invoke(app, ["data", "prepare", "--source", str(other), "--out", str(tmp_path / "out"),
                                      "--format", fmt])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.strip() == f"error: {other / IDX_FILES[key]}: {said}"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("fmt", ["csv", "folders"])
def test_an_interrupted_prepare_leaves_nothing_half_written(fmt: str, tiny_source: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C before the last file: the folder is as it was (a half-prepared one held train.csv alone, trained as
    5 unnamed classes, and the same command refused to run again)."""
    to_csv = pd.DataFrame.to_csv

    def interrupted(frame: pd.DataFrame, path: Path, *args: object, **kwargs: object) -> None:
        if Path(path).name == "testY.csv":  # written last in both formats
            raise KeyboardInterrupt
        to_csv(frame, path, *args, **kwargs)  # type: ignore[call-overload]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    for out in (tmp_path / "new" / "data", mine):
        with pytest.raises(KeyboardInterrupt):
            prepare(tiny_source, out, "fashion5", fmt)
    assert not (tmp_path / "new").exists()
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    monkeypatch.undo()
    moves = []

    def interrupted_move(source: Path, target: Path, replace: bool) -> None:
        """Ctrl-C between two of the moves into place, which the moves must not notice."""
        moves.append(target)
        if len(moves) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        move_in(source, target, replace)

    move_in = search.export_files._move_in
    monkeypatch.setattr(search.export_files, "_move_in", interrupted_move)
    # SIGINT as at a terminal: inherited ignored (a CI runner's background job), it would prove nothing here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        written = prepare(tiny_source, mine, "fashion5", fmt)  # the same command runs, and its moves are not cut
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(moves) == 4 and all(path.exists() for path in written) and (mine / "dataset.json").exists()


@pytest.mark.parametrize("text", ["{not json", '{"labels": [1]}', '["a"]', "\udcff"])
def test_a_dataset_json_prepare_did_not_write_is_ignored(text: str, tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(text, errors="surrogateescape")
    assert describe(tmp_path, 2) == ("custom", ("class 0", "class 1"))


def test_load_dataset_scales_shapes_and_splits(tiny_data: Path) -> None:
    data = load_dataset(tiny_data)
    assert data.x_train.shape == (400, 28, 28, 1) and data.x_val.shape == (100, 28, 28, 1)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert data.num_classes == 5 and data.label_set == "fashion5" and data.class_names[0] == "tops"
    sub = load_dataset(tiny_data, subset=40)
    assert len(sub.x_train) == 40 and len(sub.x_val) == 10
    np.testing.assert_array_equal(sub.x_train, data.x_train[:40])  # same 80:20 split, then the first N
    with pytest.raises(DataError, match="--subset 401"):
        load_dataset(tiny_data, subset=401)


def test_cache_is_used_and_invalidated_when_the_csv_changes(tiny_data: Path, tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_bytes((tiny_data / "train.csv").read_bytes())
    first = read_table(csv, labelled=True)
    cache = tmp_path / ".train.csv.cache.npz"
    assert cache.is_file()
    again = read_table(csv, labelled=True)
    assert again.fingerprint == first.fingerprint
    np.testing.assert_array_equal(again.pixels, first.pixels)
    frame = pd.read_csv(csv)
    frame.loc[0, "Label"] = (frame.loc[0, "Label"] + 1) % 5
    frame.to_csv(csv, index=False)
    os.utime(csv, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = read_table(csv, labelled=True)
    assert changed.fingerprint != first.fingerprint and changed.labels[0] != first.labels[0]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


HEADER = "Id,Label," + ",".join(f"pixel{i}" for i in range(4))
GOOD = [HEADER, "0,0,0,10,20,255", "1,1,1,2,3,4", "2,1,0,0,0,0"]
# (lines of train.csv, what the error message must say); pixels are 2x2 images
BAD_TRAIN = {
    "empty": ([], "file is empty"),
    "header only": ([HEADER], "no data rows"),
    "extra column": (GOOD[:2] + ["1,1,1,2,3,4,5"], "line 3: 7 columns, expected 6"),
    "no Id": ([HEADER.replace("Id", "Key")] + GOOD[1:], "column 1 must be 'Id'"),
    "no Label": ([HEADER.replace("Label", "Class")] + GOOD[1:], "column 2 must be 'Label'"),
    "not square": ([HEADER + ",pixel4"] + [line + ",0" for line in GOOD[1:]], "5 pixel columns"),
    "text pixel": (GOOD[:2] + ["1,1,1,x,3,4"], "line 3, column 'pixel1': 'x'"),
    "fractional pixel": (GOOD[:2] + ["1,1,1,2.5,3,4"], "line 3, column 'pixel1': '2.5'"),
    "negative pixel": (GOOD[:2] + ["1,1,1,2,-3,4"], "line 3, column 'pixel2': '-3'"),
    "pixel over 255": (GOOD[:2] + ["1,1,1,2,3,256"], "line 3, column 'pixel3': '256'"),
    "blank pixel": (GOOD[:2] + ["1,1,1,,3,4"], "line 3, column 'pixel1': a blank cell"),
    "NaN pixel": (GOOD[:2] + ["1,1,1,NaN,3,4"], "line 3, column 'pixel1': 'NaN', expected"),  # not "a blank cell"
    # A row short of a field (a file cut short, a lost comma) was "a blank cell" in its last column.
    "short row": (GOOD[:2] + ["1,1,1,2,3"] + GOOD[3:], "line 3: 5 columns, expected 6"),
    "cut short": (GOOD + ["3,0,4"], "line 5: 3 columns, expected 6"),
    # A label of 2**32 made the class check allocate billions (the process was killed); 2**63 and 2**64 wrapped
    # around in the cast to int64 and passed as classes of the data.
    "label 2**32": (GOOD[:2] + [f"1,{2**32},1,2,3,4"] + GOOD[3:],
                    f"no row has label 2, 3, 4, 5, 6 and {2**32 - 7} more (found 3 classes, 0 to {2**32})"),
    **{f"label {big}": (GOOD[:2] + [f"1,{big},1,2,3,4"] + GOOD[3:], f"line 3, column 'Label': '{big}', expected a "
                        "non-negative integer label") for big in (2**63, 2**64)},
    "huge Id": (GOOD[:2] + [f"{2**64},1,1,2,3,4"] + GOOD[3:], f"line 3, column 'Id': '{2**64}'"),
    "fractional label": (GOOD[:2] + ["1,1.5,1,2,3,4"], "column 'Label': '1.5'"),
    "negative label": (GOOD[:2] + ["1,-1,1,2,3,4"], "column 'Label': '-1'"),
    "one class": ([HEADER, "0,1,0,0,0,0", "1,1,0,0,0,0"], "at least 2"),
    "duplicate Id": (GOOD[:2] + ["0,1,1,2,3,4"], "line 3, column 'Id': duplicate Id 0"),
    "labels 1..K": ([HEADER, "0,1,0,0,0,0", "1,2,0,0,0,0", "2,3,0,0,0,0"], "no row has label 0 (found 3"),
    "label gap": ([HEADER, "0,0,0,0,0,0", "1,2,0,0,0,0", "2,5,0,0,0,0"], "no row has label 1, 3, 4 ("),
    "trailing comma on data rows": ([HEADER] + [line + "," for line in GOOD[1:]], "trailing comma"),
    "trailing comma on every line": ([line + "," for line in GOOD], "trailing comma"),
    # A field more on every data row: pandas took the first for an index, and the labels were read as Ids.
    "a field more on every row": ([HEADER] + [line + ",7" for line in GOOD[1:]], "line 2: 7 columns, expected 6"),
    # Lines are counted in the file: pandas skips blank ones, which made the line named row + 2.
    "blank lines before a bad cell": (["", HEADER, "", GOOD[1], "", "1,1,1,x,3,4"],
                                      "line 6, column 'pixel1': 'x'"),
    "blank lines before a short row": ([HEADER, "", "\r", GOOD[1], "1,1,1,2,3", GOOD[3]], "line 5: 5 columns"),
    "blank line before a duplicate Id": ([HEADER, GOOD[1], "", "0,1,1,2,3,4"], "line 4, column 'Id': duplicate"),
    "blank line before a field more": ([HEADER, "  ", *[line + ",7" for line in GOOD[1:]]], "line 3: 7 columns"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_train_csv_gives_one_line_naming_the_place(case: str, tmp_path: Path) -> None:
    lines, expected = BAD_TRAIN[case]
    csv = _write(tmp_path / "train.csv", "\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(DataError) as info:
        read_table(csv, labelled=True)
    message = str(info.value)
    assert expected in message and str(csv) in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv"]  # no cache written


def test_header_names_are_read_in_any_case(tmp_path: Path) -> None:
    """The header check ignores case and spaces ("id", " Label"); reading the Ids by the name 'Id' then raised a
    KeyError with a traceback."""
    csv = _write(tmp_path / "train.csv", "\n".join([HEADER.replace("Id,Label", " id,label ")] + GOOD[1:]) + "\n")
    table = read_table(csv, labelled=True)
    assert table.ids.tolist() == [0, 1, 2] and table.labels.tolist() == [0, 1, 1]


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "train.csv", labelled=True)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=f"{folder}: cannot read"):
        read_table(folder, labelled=True)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 50)
    with pytest.raises(DataError, match=str(binary)):
        read_table(binary, labelled=True)


def test_testx_must_match_train_pixel_count(tmp_path: Path) -> None:
    _write(tmp_path / "testX.csv", "Id,p0,p1,p2,p3,p4,p5,p6,p7,p8\n0,1,2,3,4,5,6,7,8,9\n")
    with pytest.raises(DataError, match="9 pixel columns, expected 4"):
        load_test(tmp_path, (2, 2, 1))
    ids, x = load_test(tmp_path, (3, 3, 1))
    assert ids.tolist() == [0] and x.shape == (1, 3, 3, 1)


def test_second_load_reads_only_the_cache(tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one parse of train.csv, loads come from the cache (timed on the full 60,000 rows in bench/; CI's
    demo prepares and loads those)."""
    prepare(tiny_source, tmp_path)
    first = load_dataset(tmp_path)
    monkeypatch.setattr("search.csvfiles._parse", lambda *args: pytest.fail("CSV parsed again"))
    data = load_dataset(tmp_path)
    assert len(data.x_train) == 400 and len(data.x_val) == 100
    np.testing.assert_array_equal(data.y_val, first.y_val)


def test_cache_copied_beside_another_csv_of_same_size_and_mtime_is_not_used(tmp_path: Path) -> None:
    """The cache is tied to the CSV's content, not to its size and modification time."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    _write(first / "train.csv", "\n".join(GOOD) + "\n")
    _write(second / "train.csv", "\n".join(GOOD).replace("0,0,0,10,20,255", "0,0,9,10,20,255") + "\n")
    assert (first / "train.csv").stat().st_size == (second / "train.csv").stat().st_size
    original = read_table(first / "train.csv", labelled=True)
    shutil.copy2(first / ".train.csv.cache.npz", second / ".train.csv.cache.npz")
    stat = (first / "train.csv").stat()
    os.utime(second / "train.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    other = read_table(second / "train.csv", labelled=True)
    assert other.pixels[0, 0] == 9 and original.pixels[0, 0] == 0
    assert other.fingerprint != original.fingerprint
    assert other.fingerprint == read_table(second / "train.csv", labelled=True).fingerprint  # its own cache now


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_cache_is_rebuilt(damage: str, tmp_path: Path) -> None:
    csv = _write(tmp_path / "train.csv", "\n".join(GOOD) + "\n")
    good = read_table(csv, labelled=True)
    cache = tmp_path / ".train.csv.cache.npz"
    whole = cache.read_bytes()
    cache.write_bytes({"truncated": whole[: len(whole) // 2], "garbage": b"PK\x03\x04" + b"x" * 100,
                       "empty": b""}[damage])
    again = read_table(csv, labelled=True)
    np.testing.assert_array_equal(again.pixels, good.pixels)
    assert again.fingerprint == good.fingerprint
    assert cache.read_bytes() == whole  # rebuilt


def test_cache_writes_go_through_unique_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes writing the same cache at once never share a temporary file."""
    csv = _write(tmp_path / "train.csv", "\n".join(GOOD) + "\n")
    moved: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr("search.export_files.os.replace",  # the cache is written whole, as reports are
                        lambda src, dst: (moved.append(str(src)), real_replace(src, dst)))
    read_table(csv, labelled=True)
    (tmp_path / ".train.csv.cache.npz").unlink()
    read_table(csv, labelled=True)
    assert len(moved) == 2 and moved[0] != moved[1]
    assert all(Path(name).parent == tmp_path for name in moved)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".train.csv.cache.npz", "train.csv"]


@pytest.mark.parametrize("n_rows", [5, 101, 60_000])
def test_split_is_scikit_learns_train_test_split(n_rows: int) -> None:
    from sklearn.model_selection import train_test_split

    from search.data import split_rows

    rows = np.arange(n_rows)
    expected_train, expected_val = train_test_split(rows, test_size=0.2, random_state=42)
    train, val = split_rows(n_rows, 0.2, 42)
    assert np.array_equal(train, expected_train) and np.array_equal(val, expected_val)


def test_a_folder_named_testx_csv_is_an_error_not_nothing_to_predict(tmp_path: Path) -> None:
    """export-best said "holds no images to predict ... no submission.csv" and exported without one."""
    _write(tmp_path / "train.csv", "\n".join(GOOD) + "\n")
    (tmp_path / "testX.csv").mkdir()
    assert has_test(tmp_path)
    with pytest.raises(DataError, match=f"{tmp_path / 'testX.csv'}: cannot read"):
        load_test(tmp_path, (2, 2, 1))


def test_an_out_that_cannot_be_written_is_named_as_out(tiny_source: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only --out was named as the hidden staging folder prepare could not make in it."""
    def read_only(prefix: str, dir: Path) -> str:  # noqa: A002 - tempfile's name
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir / f"{prefix}x1y2"))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(DataError) as raised:
        prepare(tiny_source, tmp_path)
    assert str(raised.value) == f"--out {tmp_path}: cannot write there (Read-only file system)"


def test_ids_and_labels_are_exact_up_to_int64(tmp_path: Path) -> None:
    """Hashed 64-bit Ids load (a bound at 2**53 refused them), and a label past 2**53 is named as written."""
    csv = _write(tmp_path / "train.csv", "\n".join([HEADER, f"{2**60},0,1,2,3,4", f"{2**63 - 1},1,1,2,3,4"]) + "\n")
    assert read_table(csv, labelled=True).ids.tolist() == [2**60, 2**63 - 1]
    csv.write_text("\n".join([HEADER, "0,0,1,2,3,4", f"1,{2**53 + 1},1,2,3,4"]) + "\n")
    with pytest.raises(DataError, match=f"found 2 classes, 0 to {2**53 + 1}"):
        read_table(csv, labelled=True)
