"""Kaggle-format CSVs in, validated arrays out; `prepare` writes Fashion-MNIST in that format."""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from search.errors import UserError

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
FASHION10 = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
             "Bag", "Ankle boot")
# label set -> (class names, new label of each Fashion-MNIST class)
LABEL_SETS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "fashion10": (FASHION10, tuple(range(10))),
    "fashion5": (("tops", "dresses & coats", "trousers", "footwear", "bags"),
                 (0, 2, 0, 1, 1, 3, 0, 3, 4, 3)),
}
IDX_FILES = {"train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
             "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz"}
META_FILE = "dataset.json"
_CACHE_VERSION = 1


class DataError(UserError):
    """A data file that cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class Table:
    """One validated CSV: Ids, uint8 pixels (N, P), labels (or None for testX) and content hash."""

    ids: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray | None
    fingerprint: str


@dataclass(frozen=True)
class Dataset:
    """Training and validation images in [0,1], shaped (N, side, side, 1), with what describes them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    fingerprint: str
    label_set: str
    class_names: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one image as the models take it."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format) into a uint8 array of its stated shape."""
    raw = gzip.open(path).read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write through a temporary file so an interrupted write never leaves a half CSV."""
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def prepare(source: Path | None, out: Path, labels: str = "fashion5", *, force: bool = False) -> list[Path]:
    """Write train.csv, testX.csv and testY.csv (Kaggle format) from the Fashion-MNIST IDX files;
    existing ones (perhaps the user's own data) are replaced only with force."""
    existing = [out / name for name in ("train.csv", "testX.csv", "testY.csv") if (out / name).exists()]
    if existing and not force:
        raise DataError(f"{existing[0]} exists; pass --force to overwrite it (or choose another --out)")
    if labels not in LABEL_SETS:
        raise DataError(f"unknown label set {labels!r}; valid: {', '.join(LABEL_SETS)}")
    src = Path(source) if source else DEFAULT_SOURCE
    missing = [name for name in IDX_FILES.values() if not (src / name).is_file()]
    if missing:
        hint = "" if source else "apt-get install dataset-fashion-mnist, or "
        raise DataError(f"no Fashion-MNIST in {src} (missing {missing[0]}): {hint}pass --source DIR")
    names, mapping = LABEL_SETS[labels]
    arrays = {key: read_idx(src / name) for key, name in IDX_FILES.items()}
    relabel = np.asarray(mapping, np.int64)
    pixel_cols = [f"pixel{i}" for i in range(28 * 28)]
    out.mkdir(parents=True, exist_ok=True)
    train = pd.DataFrame(arrays["train_x"].reshape(-1, 784), columns=pixel_cols)
    train.insert(0, "Label", relabel[arrays["train_y"]])
    train.insert(0, "Id", np.arange(len(train)))
    test = pd.DataFrame(arrays["test_x"].reshape(-1, 784), columns=pixel_cols)
    test.insert(0, "Id", np.arange(len(test)))
    truth = pd.DataFrame({"Id": np.arange(len(test)), "Label": relabel[arrays["test_y"]]})
    paths = [out / "train.csv", out / "testX.csv", out / "testY.csv"]
    for frame, path in zip((train, test, truth), paths, strict=True):
        _write_csv(frame, path)
    (out / META_FILE).write_text(json.dumps({"label_set": labels, "class_names": names}, indent=1))
    return paths


def _bad_cell(path: Path, frame: pd.DataFrame, what: str, bad: pd.DataFrame) -> DataError:
    """The error for the first True cell of `bad` (file line = row + 2, after the header)."""
    col = int(np.argmax(bad.to_numpy().any(axis=0)))
    row = int(np.argmax(bad.iloc[:, col].to_numpy()))
    value = frame.iat[row, col]
    shown = "a blank cell" if pd.isna(value) else repr(str(value))
    return DataError(f"{path}: line {row + 2}, column {frame.columns[col]!r}: {shown}, expected {what}")


def _integers(path: Path, frame: pd.DataFrame, low: int, high: int | None, what: str) -> np.ndarray:
    """Check every cell is an integer in [low, high]; return them as int64."""
    if all(pd.api.types.is_integer_dtype(dtype) for dtype in frame.dtypes):
        values = frame.to_numpy(np.int64)  # the fast path: the parser already found integers only
        if values.min() >= low and (high is None or values.max() <= high):
            return values
    numeric = frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    for bad in (numeric.isna(), numeric != np.floor(numeric), numeric < low,
                numeric > (high if high is not None else np.inf)):
        if bad.to_numpy().any():
            raise _bad_cell(path, frame, what, bad)
    return numeric.to_numpy(np.int64)


def _parse(path: Path, labelled: bool) -> Table:
    """Read and validate one CSV; every problem becomes a one-line DataError."""
    try:
        frame = pd.read_csv(path, engine="c")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        detail = (f"line {found[2]}: {found[3]} columns, expected {found[1]}" if found
                  else str(exc).strip().splitlines()[-1])
        raise DataError(f"{path}: {detail}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    heads = ["Id", "Label"] if labelled else ["Id"]
    for i, head in enumerate(heads):
        if len(frame.columns) <= i or str(frame.columns[i]).strip().lower() != head.lower():
            raise DataError(f"{path}: column {i + 1} must be {head!r}, found "
                            f"{str(frame.columns[i]) if len(frame.columns) > i else 'nothing'!r}")
    n_pixels = len(frame.columns) - len(heads)
    side = math.isqrt(n_pixels)
    if n_pixels == 0 or side * side != n_pixels:
        raise DataError(f"{path}: {n_pixels} pixel columns, expected a square image (e.g. 784 = 28x28)")
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    ids = _integers(path, frame[["Id"]], 0, None, "a non-negative integer Id")[:, 0]
    duplicated = pd.Series(ids).duplicated()
    if duplicated.any():
        row = int(np.argmax(duplicated.to_numpy()))
        raise DataError(f"{path}: line {row + 2}, column 'Id': duplicate Id {ids[row]}")
    labels = None
    if labelled:
        labels = _integers(path, frame[[frame.columns[1]]], 0, None, "a non-negative integer label")[:, 0]
        if len(np.unique(labels)) < 2:
            raise DataError(f"{path}: labels hold {len(np.unique(labels))} class, expected at least 2")
    pixels = _integers(path, frame.iloc[:, len(heads):], 0, 255, "an integer pixel 0-255").astype(np.uint8)
    return Table(ids, pixels, labels, "")


def _file_stamp(path: Path) -> np.ndarray:
    """Size and modification time: what invalidates the cache."""
    stat = path.stat()
    return np.asarray([stat.st_size, stat.st_mtime_ns], np.int64)


def read_table(path: Path, labelled: bool) -> Table:
    """A validated CSV, from its binary cache (`.<name>.cache.npz` beside it) when still fresh."""
    path = Path(path)
    cache = path.with_name(f".{path.name}.cache.npz")
    if path.is_file() and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as npz:
                if int(npz["version"]) == _CACHE_VERSION and np.array_equal(npz["stamp"], _file_stamp(path)):
                    labels = npz["labels"] if labelled else None
                    if not labelled or labels.size:
                        return Table(npz["ids"], npz["pixels"], labels, str(npz["fingerprint"]))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    table = _parse(path, labelled)
    fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    table = Table(table.ids, table.pixels, table.labels, fingerprint)
    try:
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, version=_CACHE_VERSION, stamp=_file_stamp(path), ids=table.ids, pixels=table.pixels,
                 labels=table.labels if labelled else np.zeros(0, np.int64), fingerprint=fingerprint)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only data folder still works, only without the cache
    return table


def to_images(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixel rows -> float32 images in [0,1] shaped (N, side, side, 1)."""
    side = math.isqrt(pixels.shape[1])
    return (pixels.reshape(-1, side, side, 1).astype(np.float32) / np.float32(255))


def describe(data_dir: Path, num_classes: int) -> tuple[str, tuple[str, ...]]:
    """Label set name and class names: from `dataset.json` when `prepare` wrote it, else generic."""
    meta = Path(data_dir) / META_FILE
    if meta.is_file():
        info = json.loads(meta.read_text())
        if len(info["class_names"]) == num_classes:
            return info["label_set"], tuple(info["class_names"])
    return "custom", tuple(f"class {i}" for i in range(num_classes))


def load_dataset(data_dir: Path, subset: int | None = None, val_fraction: float = 0.2,
                 split_seed: int = 42) -> Dataset:
    """train.csv -> 80:20 split (random_state 42); `subset` keeps N training and N/4 validation images."""
    table = read_table(Path(data_dir) / "train.csv", labelled=True)
    assert table.labels is not None
    x_train, x_val, y_train, y_val = train_test_split(
        table.pixels, table.labels, test_size=val_fraction, random_state=split_seed)
    if subset is not None:
        if subset < 1 or subset > len(x_train):
            raise DataError(f"--subset {subset}: must be between 1 and {len(x_train)}, the training split's size")
        n_val = max(1, math.ceil(subset * val_fraction / (1 - val_fraction)))
        x_train, y_train, x_val, y_val = x_train[:subset], y_train[:subset], x_val[:n_val], y_val[:n_val]
    num_classes = int(table.labels.max()) + 1
    label_set, class_names = describe(Path(data_dir), num_classes)
    return Dataset(to_images(x_train), y_train.astype(np.int32), to_images(x_val), y_val.astype(np.int32),
                   num_classes, table.fingerprint, label_set, class_names)


def load_test(data_dir: Path, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """testX.csv -> (Ids, images); its pixel count must match the training data's."""
    path = Path(data_dir) / "testX.csv"
    table = read_table(path, labelled=False)
    if table.pixels.shape[1] != n_pixels:
        raise DataError(f"{path}: {table.pixels.shape[1]} pixel columns, expected {n_pixels} as in train.csv")
    return table.ids, to_images(table.pixels)
