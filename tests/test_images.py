"""Image folders and colour CSVs: reading, the decoded cache, bad input, `prepare --format folders`, any shape."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import spaces
from search.cli import app
from search.data import DataError, load_dataset, load_test, prepare
from search.export_files import EXPORT_FILES
from search.score import score

runner = CliRunner()


def _image(path: Path, size: tuple[int, int], mode: str = "RGB", value: int = 0) -> Path:
    """Write one image of (width, height) `size`, its pixels a gradient offset by `value`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    grid = (np.add.outer(np.arange(height), np.arange(width)) * 7 + value) % 256
    channels = {"L": 1, "RGB": 3}[mode]
    array = np.stack([grid, (grid + 60) % 256, (grid + 120) % 256][:channels], axis=-1).astype(np.uint8)
    Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode).save(path)
    return path


def _tree(root: Path, classes: dict[str, int], size: tuple[int, int] = (8, 8), mode: str = "L",
          ext: str = "png") -> Path:
    """root/train/<class>/<i>.<ext> with `classes[name]` images each, and root/test with 4 images."""
    for label, (name, count) in enumerate(classes.items()):
        for i in range(count):
            _image(root / "train" / name / f"{i}.{ext}", size, mode, value=40 * label + i)
    for i in range(4):
        _image(root / "test" / f"t{i}.{ext}", size, mode, value=i)
    return root


def test_prepare_folders_writes_a_tree_that_reads_back_as_the_csv_data(tiny_source: Path, tiny_data: Path,
                                                                       tmp_path: Path) -> None:
    paths = prepare(tiny_source, tmp_path / "f", "fashion10", "folders")
    assert [p.name for p in paths] == ["train", "test", "testY.csv"]
    folders = sorted(p.name for p in (tmp_path / "f" / "train").iterdir())
    assert "T-shirt-top" in folders and "Ankle boot" in folders and len(folders) == 10
    data = load_dataset(tmp_path / "f")
    assert data.class_names == tuple(folders) and data.label_set == "fashion10"
    assert data.x_train.shape == (400, 28, 28, 1) and data.num_classes == 10
    csv = load_dataset(tiny_data)  # the same 500 images, as CSV
    both = np.concatenate([data.x_train, data.x_val])
    assert both.sum() == pytest.approx(np.concatenate([csv.x_train, csv.x_val]).sum(), rel=1e-6)
    truth = pd.read_csv(tmp_path / "f" / "testY.csv")
    ids, x_test = load_test(tmp_path / "f", data.input_shape)
    assert list(truth["Id"]) == list(ids) and ids[0] == "00.png" and x_test.shape == (100, 28, 28, 1)
    # Fashion-MNIST's first test image is an ankle boot: its label is the index of that folder.
    assert data.class_names[truth["Label"][0]] == "Ankle boot"
    with pytest.raises(DataError, match="train already exists"):
        prepare(tiny_source, tmp_path / "f", "fashion10", "folders")
    prepare(tiny_source, tmp_path / "csv", "fashion5")
    with pytest.raises(DataError, match="testY.csv already exists"):  # nothing of the CSV pair is replaced
        prepare(tiny_source, tmp_path / "csv", "fashion10", "folders")
    assert not (tmp_path / "csv" / "train").exists()


def test_colour_csv_is_read_channels_last(tmp_path: Path) -> None:
    pixels = np.arange(2 * 2 * 2 * 3).reshape(2, 12) * 10  # two 2x2 RGB images
    frame = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(12)])
    frame.insert(0, "Label", [0, 1])
    frame.insert(0, "Id", [0, 1])
    frame.to_csv(tmp_path / "train.csv", index=False)
    data = load_dataset(tmp_path, val_fraction=0.5)
    assert data.input_shape == (2, 2, 3)
    image = np.concatenate([data.x_train, data.x_val])[np.argsort(np.concatenate([data.y_train, data.y_val]))][0]
    np.testing.assert_allclose(image[0, 1] * 255, [30, 40, 50], rtol=1e-5)  # second pixel's red, green, blue


def test_mixed_modes_and_sizes_become_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tree(tmp_path, {"a": 3, "b": 3}, size=(12, 10), mode="RGB")
    _image(tmp_path / "train" / "a" / "grey.png", (16, 16), "L")
    data = load_dataset(tmp_path, val_fraction=0.25)
    assert data.input_shape == (10, 12, 3)  # the most common size (height 10, width 12) and the majority mode
    assert "1 of 7 images are greyscale; converting them to colour" in capsys.readouterr().err
    assert load_dataset(tmp_path, image_size=(5, 6), val_fraction=0.25).input_shape == (5, 6, 3)
    assert load_test(tmp_path, (5, 6, 3))[1].shape == (4, 5, 6, 3)


def test_other_files_are_skipped_with_a_note_and_test_images_take_the_training_mode(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What a folder of one's own images holds: notes, Thumbs.db, WebP and GIF images, colour photos to predict
    beside greyscale training images. Each stopped the run; Keras' image_dataset_from_directory ignores others."""
    _tree(tmp_path, {"a": 3, "b": 3})
    for path in (tmp_path / "train" / "a" / "notes.txt", tmp_path / "train" / "b" / "Thumbs.db",
                 tmp_path / "train" / "README", tmp_path / "test" / "list.csv"):
        path.write_text("not an image")
    _image(tmp_path / "train" / "a" / "photo.webp", (8, 8), "L", value=9)
    _image(tmp_path / "train" / "b" / "clip.gif", (8, 8), "L", value=99)
    for path in (tmp_path / "test").glob("*.png"):
        _image(path, (8, 8), "RGB")  # colour, the training images greyscale
    data = load_dataset(tmp_path, val_fraction=0.25)
    assert len(data.y_train) + len(data.y_val) == 8 and data.input_shape == (8, 8, 1)  # WebP and GIF read too
    err = capsys.readouterr().err
    assert f"note: {tmp_path / 'train' / 'a'}: skipping 1 file that is not an image (notes.txt;" in err
    assert f"note: {tmp_path / 'train'}: skipping 1 file that is not an image (README;" in err
    ids, x_test = load_test(tmp_path, data.input_shape)
    assert x_test.shape == (4, 8, 8, 1) and sorted(ids) == [f"t{i}.png" for i in range(4)]
    assert f"note: {tmp_path / 'test'}: the images are colour; converting them to greyscale like the training " \
        "images" in capsys.readouterr().err


@pytest.mark.parametrize("mode, ext, as_deep", [
    ("I;16", "png", lambda a: a.astype(np.uint16) * 257),  # 16-bit PNGs (e.g. microscopy)
    # 32-bit integer and float TIFFs, as numpy arrays save: read by their range (an 8-bit range in a 32-bit file
    # was divided by 257, near black; floats of 0-1 were clipped to 0, all black).
    ("I", "tif", lambda a: a.astype(np.int32)),
    ("I", "tif", lambda a: a.astype(np.int32) * 257),
    ("F", "tif", lambda a: a.astype(np.float32) / 255),
    ("F", "tif", lambda a: a.astype(np.float32)),
], ids=["16-bit", "32-bit-8-bit-range", "32-bit-16-bit-range", "float-0-1", "float-0-255"])
def test_deeper_greyscale_images_are_scaled_not_clipped(mode: str, ext: str, as_deep: Callable, tmp_path: Path) -> None:
    """Images of more than 8 bits read as the 8-bit images they scale down to."""
    eight_bit = _tree(tmp_path / "8", {"a": 2, "b": 2})
    deep = shutil.copytree(eight_bit, tmp_path / "16")
    for path in list(deep.rglob("*.png")):
        Image.fromarray(as_deep(np.asarray(Image.open(path)))).save(path.with_suffix(f".{ext}"))
        if ext != "png":
            path.unlink()
    assert {Image.open(path).mode for path in deep.rglob(f"*.{ext}")} == {mode}
    expected, got = load_dataset(eight_bit, val_fraction=0.25), load_dataset(deep, val_fraction=0.25)
    assert expected.x_train.max() > 0.5 and np.array_equal(got.x_train, expected.x_train)
    assert np.array_equal(load_test(deep, (8, 8, 1))[1], load_test(eight_bit, (8, 8, 1))[1])


def test_images_whose_range_is_unknown_are_refused_in_one_line(tmp_path: Path) -> None:
    """32-bit values past 16 bits have no known top: refused, naming the file, rather than read as some guess."""
    tree = _tree(tmp_path, {"a": 2, "b": 2})
    victim = sorted((tree / "train").rglob("*.png"))[0]
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(victim.with_suffix(".tif"))
    victim.unlink()
    with pytest.raises(DataError, match=r"\.tif: not a readable image \(ValueError: I pixel values up to 70000; 8-bit"):
        load_dataset(tree, val_fraction=0.25)


def test_decoded_tree_is_cached_and_invalidated_by_any_change(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path / "one", {"a": 3, "b": 3}, ext="bmp")  # BMPs of one size have one file size
    first = load_dataset(tmp_path / "one", val_fraction=0.5)
    assert (tmp_path / "one" / ".train.images.cache.npz").is_file()
    real_decode = __import__("search.images", fromlist=["_decode"])._decode
    monkeypatch.setattr("search.images._decode", lambda *a: pytest.fail("decoded again"))
    again = load_dataset(tmp_path / "one", val_fraction=0.5)
    assert again.fingerprint == first.fingerprint
    monkeypatch.setattr("search.images._decode", real_decode)
    # Same names, sizes and mtimes, other content: a copied cache must not stand in for it.
    _tree(tmp_path / "two", {"a": 3, "b": 3}, ext="bmp")
    _image(tmp_path / "two" / "train" / "a" / "0.bmp", (8, 8), "L", value=200)
    for path in (tmp_path / "one" / "train").rglob("*.bmp"):
        twin = tmp_path / "two" / "train" / path.relative_to(tmp_path / "one" / "train")
        assert twin.stat().st_size == path.stat().st_size
        os.utime(twin, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    shutil.copy2(tmp_path / "one" / ".train.images.cache.npz", tmp_path / "two" / ".train.images.cache.npz")
    other = load_dataset(tmp_path / "two", val_fraction=0.5)
    assert other.fingerprint != first.fingerprint
    # A file added to the tree is seen.
    _image(tmp_path / "one" / "train" / "b" / "9.bmp", (8, 8), "L")
    grown = load_dataset(tmp_path / "one", val_fraction=0.5)
    assert len(grown.y_train) + len(grown.y_val) == 7 and grown.fingerprint != first.fingerprint
    # A damaged cache is rebuilt.
    (tmp_path / "one" / ".train.images.cache.npz").write_bytes(b"PK\x03\x04garbage")
    rebuilt = load_dataset(tmp_path / "one", val_fraction=0.5)
    assert len(rebuilt.y_train) + len(rebuilt.y_val) == 7 and rebuilt.fingerprint == grown.fingerprint


def _bad_train(root: Path, case: str) -> str:
    """Make the broken tree of `case`; return what the error must say."""
    _tree(root, {"a": 3, "b": 3})
    if case == "unreadable image":
        (root / "train" / "a" / "1.png").write_bytes(b"not a png at all")
        return f"{root / 'train' / 'a' / '1.png'}: not a readable image"
    if case == "truncated image":
        path = _image(root / "train" / "b" / "big.png", (64, 64), "L", value=3)
        path.write_bytes(path.read_bytes()[:-40])  # the header reads, the pixels do not
        return f"{path}: not a readable image"
    if case == "folder in a class folder":
        _image(root / "train" / "b" / "more" / "0.png", (8, 8), "L")
        return f"{root / 'train' / 'b' / 'more'}: a folder inside {root / 'train' / 'b'}; images go directly inside"
    if case == "image outside the class folders":
        _image(root / "train" / "lost.png", (8, 8), "L")
        return f"{root / 'train' / 'lost.png'}: an image outside the class folders"
    if case == "empty class folder":
        (root / "train" / "c").mkdir()
        return f"{root / 'train' / 'c'}: empty class folder"
    if case == "single class":
        shutil.rmtree(root / "train" / "b")
        return "1 class folder, expected at least 2"
    if case == "no train folder":
        shutil.rmtree(root / "train")
        return "no train/ folder"
    if case == "train.csv beside train/":
        (root / "train.csv").write_text("Id,Label,pixel0\n0,0,0\n1,1,0\n")
        return "holds both train.csv and a train/ folder"
    raise AssertionError(case)


BAD_TREES = ["unreadable image", "truncated image", "folder in a class folder", "image outside the class folders",
             "empty class folder", "single class", "no train folder", "train.csv beside train/"]


@pytest.mark.parametrize("case", BAD_TREES)
def test_bad_image_tree_is_one_line_and_nothing_written(case: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    expected = _bad_train(data, case)
    before = sorted(str(p) for p in data.rglob("*"))
    db = tmp_path / "studies" / "db.sqlite"
    result = runner.invoke(app, ["study", "lenet", "--data", str(data), "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(str(p) for p in data.rglob("*") if ".cache." not in p.name) == before
    assert not db.parent.exists()


@pytest.mark.parametrize("name", spaces.names())
def test_every_architecture_builds_for_any_shape(name: str) -> None:
    arch = spaces.get(name)
    params = next(iter(arch.SEED_MODELS.values()))
    for shape in ((32, 40, 3), (20, 20, 1)):
        model = arch.build(params, shape, 3)
        out = model.predict(np.random.default_rng(0).random((2, *shape), np.float32), verbose=0)
        assert out.shape == (2, 3)


def test_score_takes_file_name_ids_and_refuses_mixed_kinds(tmp_path: Path) -> None:
    pd.DataFrame({"Id": ["a.png", "b.png"], "Label": [0, 1]}).to_csv(tmp_path / "truth.csv", index=False)
    pd.DataFrame({"Id": ["b.png", "a.png"], "Label": [1, 1]}).to_csv(tmp_path / "sub.csv", index=False)
    assert score(tmp_path / "sub.csv", tmp_path / "truth.csv").accuracy == 0.5
    pd.DataFrame({"Id": [0, 1], "Label": [0, 1]}).to_csv(tmp_path / "ints.csv", index=False)
    with pytest.raises(DataError, match="Ids are integers but .* has text"):
        score(tmp_path / "ints.csv", tmp_path / "truth.csv")


def test_colour_tree_with_mixed_sizes_through_study_export_score_and_report(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's own colour images, two sizes, a class name with spaces: every command works unchanged."""
    data, url = tmp_path / "my images", f"sqlite:///{tmp_path / 'db.sqlite'}"
    names = ["blue sky", "grass", "red square"]
    truth = []
    for label, name in enumerate(names):
        for i in range(20):
            _image(data / "train" / name / f"{i}.png", (12, 12) if i % 3 else (16, 16), value=80 * label + i)
        for i in range(2):
            _image(data / "test" / f"{name[0]}{i}.jpg", (16, 16), value=80 * label + i)
            truth.append({"Id": f"{name[0]}{i}.jpg", "Label": label})
    pd.DataFrame(truth).to_csv(tmp_path / "truth.csv", index=False)
    result = runner.invoke(app, ["study", "lenet", "--trials", "1", "--epochs", "1", "--data", str(data),
                                 "--storage", url, "--quiet"])
    assert result.exit_code == 0, result.output
    trials = runner.invoke(app, ["trials", "lenet", "--storage", url])
    assert "classes (labels 0..2): blue sky, grass, red square" in trials.stderr
    out = tmp_path / "best"
    result = runner.invoke(app, ["export-best", "lenet", "--data", str(data), "--storage", url,
                                 "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    params = json.loads((out / "params.json").read_text())
    assert params["class_names"] == names and params["input_shape"] == [12, 12, 3]
    submission = pd.read_csv(out / "submission.csv")
    assert sorted(submission["Id"]) == sorted(row["Id"] for row in truth)
    assert "red square" in (out / "report.html").read_text()
    assert "<title>hpsearch: lenet study lenet, trial 0</title>" in (out / "report.html").read_text()  # names the arch
    result = runner.invoke(app, ["score", str(out / "submission.csv"), "--labels", str(tmp_path / "truth.csv")])
    assert result.exit_code == 0 and "on 6 rows" in result.stdout, result.output
    result = runner.invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "report.html")])
    assert result.exit_code == 0, result.output
    assert "blue sky, grass, red square" in (tmp_path / "report.html").read_text()
    # One's own images do not compare with the notebook's Fashion-MNIST models: no glance, in the page or the table.
    assert "notebook" not in (tmp_path / "report.html").read_text() and "notebook" not in result.stdout
    # The study remembers the image size it ran at: another size is refused at export.
    result = runner.invoke(app, ["export-best", "lenet", "--data", str(data), "--storage", url,
                                 "--out", str(tmp_path / "other"), "--image-size", "16x16"])
    assert result.exit_code == 2 and "differs from what study 'lenet' ran on" in result.stderr
    assert "at image size 16x16, the study's most common)" in result.stderr
    # A study run at --image-size exports at that size without being told again, from the folder it was made with
    # (no --data), into a folder of its own (studies/STUDY-NAME/best: another study's export stays).
    result = runner.invoke(app, ["study", "lenet", "--study-name", "small", "--trials", "1", "--epochs", "1",
                                 "--data", str(data), "--storage", url, "--quiet", "--image-size", "10X14"])
    assert result.exit_code == 0, result.output
    assert "export with `hpsearch export-best lenet --storage" in result.stdout and "--data" not in result.stdout
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export-best", "lenet", "--study-name", "small", "--storage", url])
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "studies" / "small" / "best" / "params.json").read_text())
    assert params["input_shape"] == [10, 14, 3] and params["image_size"] == "10x14"  # as 10x14 is written
    # Resumed without its --image-size, the study takes its own; with another one, it says how to resume it.
    result = runner.invoke(app, ["study", "lenet", "--study-name", "small", "--trials", "2", "--epochs", "1",
                                 "--data", str(data), "--storage", url])
    assert result.exit_code == 0 and result.stderr.startswith(
        "resuming study 'small' with the options it was made with: --image-size 10x14\n"), result.stderr
    result = runner.invoke(app, ["study", "lenet", "--study-name", "small", "--trials", "3", "--data", str(data),
                                 "--storage", url, "--image-size", "12x12"])
    assert result.exit_code == 2 and "this run has --image-size 12x12; pass --image-size 10x14 to resume it" in \
        result.stderr, result.stderr
    # Test images are optional: without them the export is the model and its files, with no submission.csv.
    shutil.rmtree(data / "test")
    result = runner.invoke(app, ["export-best", "lenet", "--study-name", "small", "--storage", url, "--force"])
    assert result.exit_code == 0, result.output
    assert "holds no images to predict (testX.csv, or test/ beside train/): no submission.csv" in result.stderr
    assert sorted(path.name for path in (tmp_path / "studies" / "small" / "best").iterdir()) == \
        sorted(set(EXPORT_FILES) - {"submission.csv"})
    assert "submission.csv" not in result.stdout and "params.json" in result.stdout  # the files it wrote
    # Given CSV data, it said "--image-size applies to image folders" to a user who passed none.
    csv_data = tmp_path / "csv"
    csv_data.mkdir()
    (csv_data / "train.csv").write_text("Id,Label,pixel0\n0,0,1\n")
    result = runner.invoke(app, ["export-best", "lenet", "--study-name", "small", "--data", str(csv_data),
                                 "--storage", url, "--out", str(tmp_path / "csv-export")])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: study 'small' ran on image folders at 10x14, and {csv_data} holds no train/ folder: pass the "
        f"study's --data ({data.resolve()})")


def test_prepare_format_folders_at_the_cli(tiny_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "images"
    result = runner.invoke(app, ["data", "prepare", "--format", "folders", "--source", str(tiny_source),
                                 "--out", str(out)])
    assert result.exit_code == 0 and f"wrote {out / 'train'}" in result.stdout, result.output
    assert len(list((out / "train").rglob("*.png"))) == 500 and len(list((out / "test").glob("*.png"))) == 100
    again = runner.invoke(app, ["data", "prepare", "--format", "folders", "--source", str(tiny_source),
                                "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.stderr
    bad = runner.invoke(app, ["data", "prepare", "--format", "zip", "--out", str(tmp_path / "z")])
    assert bad.exit_code == 2 and "unknown format 'zip'" in bad.stderr and not (tmp_path / "z").exists()


def test_folder_names_are_the_class_names_even_if_dataset_json_says_otherwise(tmp_path: Path) -> None:
    _tree(tmp_path, {"cats": 2, "dogs": 2})
    (tmp_path / "dataset.json").write_text('{"label_set": "fashion5", "class_names": ["tops", "bags"]}')
    data = load_dataset(tmp_path, val_fraction=0.5)
    assert data.class_names == ("cats", "dogs") and data.label_set == "custom"


@pytest.mark.parametrize("text", ["32", "0x5", "axb", "32x"])
def test_bad_image_size_is_one_line(text: str, tmp_path: Path) -> None:
    _tree(tmp_path / "data", {"a": 2, "b": 2})
    result = runner.invoke(app, ["study", "lenet", "--data", str(tmp_path / "data"), "--image-size", text,
                                 "--storage", f"sqlite:///{tmp_path / 'db.sqlite'}"])
    assert result.exit_code == 2 and f"--image-size {text!r}: expected HEIGHTxWIDTH" in result.stderr
    assert not (tmp_path / "db.sqlite").exists()


def test_image_size_on_csv_data_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", "lenet", "--data", str(tiny_data), "--image-size", "32x32",
                                 "--storage", f"sqlite:///{tmp_path / 'db.sqlite'}"])
    assert result.exit_code == 2 and "--image-size applies to image folders" in result.stderr
