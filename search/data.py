"""The one data entry point: a CSV pair or an image tree in, a Dataset out; `prepare` writes Fashion-MNIST."""
from __future__ import annotations

import contextlib
import gzip
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.csvfiles import pixel_shape, read_table
from search.errors import DataError, SubsetOutOfRange
from search.export_files import staged_in_folder

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
PREPARE_STAGING = ".prepare."  # the beginning of the name of the folder in --out that `data prepare` writes in
FORMATS = ("csv", "folders")


@dataclass(frozen=True)
class Dataset:
    """Training and validation images in [0,1], shaped (N, H, W, C), with what describes them."""

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
        height, width, channels = self.x_train.shape[1:]
        return int(height), int(width), int(channels)


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format) into a uint8 array of its stated shape."""
    try:
        with gzip.open(path) as handle:
            raw = handle.read()
        ndim = raw[3]
        shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, ValueError, IndexError) as exc:  # not gzip, cut short, or sizes that don't fit
        raise DataError(f"{path}: not a gzipped IDX file of Fashion-MNIST ({exc})") from None


def _checked_idx(src: Path) -> dict[str, np.ndarray]:
    """The four IDX files of src read, refused unless they are Fashion-MNIST's: 28x28 images, as many labels as
    images, labels 0-9 (other IDX sets, such as EMNIST's letters, ended in a traceback halfway through writing)."""
    arrays = {key: read_idx(src / name) for key, name in IDX_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_x"], arrays[f"{part}_y"]
        images_file, labels_file = src / IDX_FILES[f"{part}_x"], src / IDX_FILES[f"{part}_y"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{images_file}: images of shape {'x'.join(map(str, images.shape[1:])) or 'none'}; "
                            "Fashion-MNIST's are 28x28")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{labels_file}: {labels.size} labels for the {len(images)} images of {images_file.name}")
        if labels.size and labels.max() >= len(FASHION10):
            raise DataError(f"{labels_file}: label {labels.max()}; Fashion-MNIST's are 0-{len(FASHION10) - 1}")
    return arrays


def prepare(source: Path | None, out: Path, labels: str = "fashion5", fmt: str = "csv", *,
            force: bool = False) -> list[Path]:
    """Write Fashion-MNIST from its IDX files as train.csv, testX.csv and testY.csv (Kaggle format),
    or with fmt "folders" as train/<class>/*.png, test/*.png and testY.csv (Id = file name). Existing CSVs
    (perhaps the user's own data) are replaced only with force; an existing tree never is."""
    import pandas as pd  # only to write CSVs: loading a cached dataset needs no pandas

    if labels not in LABEL_SETS:
        raise DataError(f"unknown label set {labels!r}; valid: {', '.join(LABEL_SETS)}")
    if fmt not in FORMATS:  # before the checks by format: a mistyped one is named as such
        raise DataError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "csv":
        existing = [out / name for name in ("train.csv", "testX.csv", "testY.csv") if (out / name).exists()]
        if existing and not force:
            raise DataError(f"{existing[0]} exists; pass --force to overwrite it (or choose another --out)")
        trees = [out / name for name in ("train", "test") if (out / name).exists()]
        if trees:  # CSVs beside an image tree: every later command would refuse the folder
            raise DataError(f"{trees[0]} exists (an image tree?); one layout a folder: choose another --out")
    else:
        for part in ("train", "test", "testY.csv", "train.csv"):  # train.csv: one layout per folder
            if (out / part).exists():
                raise DataError(f"{out / part} already exists; remove it or choose another --out")
    src = Path(source) if source else DEFAULT_SOURCE
    missing = [name for name in IDX_FILES.values() if not (src / name).is_file()]
    if missing:
        hint = "" if source else "apt-get install dataset-fashion-mnist, or "
        raise DataError(f"no Fashion-MNIST in {src} (missing {missing[0]}): {hint}pass --source DIR")
    names, mapping = LABEL_SETS[labels]
    arrays = _checked_idx(src)
    relabel = np.asarray(mapping, np.int64)
    with staged_in_folder(out, replace=force, last=META_FILE, prefix=PREPARE_STAGING) as staging:
        if fmt == "folders":
            from search import images  # Pillow, imported only for image folders: CSVs are written where it is missing

            names, test_ids, test_labels = images.write_tree(
                staging, (arrays["train_x"], relabel[arrays["train_y"]]),
                (arrays["test_x"], relabel[arrays["test_y"]]), names)
            truth = pd.DataFrame({"Id": test_ids, "Label": test_labels})
            written = ["train", "test", "testY.csv"]
        else:
            pixel_cols = [f"pixel{i}" for i in range(28 * 28)]
            train = pd.DataFrame(arrays["train_x"].reshape(-1, 784), columns=pixel_cols)
            train.insert(0, "Label", relabel[arrays["train_y"]])
            train.insert(0, "Id", np.arange(len(train)))
            train.to_csv(staging / "train.csv", index=False)
            test = pd.DataFrame(arrays["test_x"].reshape(-1, 784), columns=pixel_cols)
            test.insert(0, "Id", np.arange(len(test)))
            test.to_csv(staging / "testX.csv", index=False)
            truth = pd.DataFrame({"Id": np.arange(len(test)), "Label": relabel[arrays["test_y"]]})
            written = ["train.csv", "testX.csv", "testY.csv"]
        truth.to_csv(staging / "testY.csv", index=False)
        (staging / META_FILE).write_text(json.dumps({"label_set": labels, "class_names": names}, indent=1))
    return [out / name for name in written]


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """--image-size "HxW" (e.g. 32x32) -> (height, width); None stays None (the most common size)."""
    if text is None:
        return None
    found = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not found or min(int(found[1]), int(found[2])) < 1:
        raise DataError(f"--image-size {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 32x32")
    return int(found[1]), int(found[2])


def image_size_text(text: str | None) -> str | None:
    """--image-size as a study records it, "HxW" (16X16 and 16x16 are one size); None stays None."""
    size = parse_image_size(text)
    return None if size is None else f"{size[0]}x{size[1]}"


def _csv_shape(pixels: np.ndarray) -> tuple[int, int, int]:
    """(H, W, C) of validated CSV pixel rows (their column count was checked when the CSV was read)."""
    shape = pixel_shape(pixels.shape[1])
    assert shape is not None
    return shape


def to_images(pixels: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C), or CSV pixel rows (N, P), -> float32 images in [0,1] shaped (N, H, W, C)."""
    if pixels.ndim == 2:
        pixels = pixels.reshape(-1, *_csv_shape(pixels))
    return pixels.astype(np.float32) / np.float32(255)


def describe(data_dir: Path, num_classes: int) -> tuple[str, tuple[str, ...]]:
    """Label set name and class names: `dataset.json` from `prepare`, else class folder names, else generic."""
    meta = Path(data_dir) / META_FILE
    # A dataset.json that `prepare` did not write (not JSON, other keys) is ignored like a missing one.
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        info = json.loads(meta.read_text())
        if len(info["class_names"]) == num_classes:
            return str(info["label_set"]), tuple(map(str, info["class_names"]))
    train = Path(data_dir) / "train"
    folders = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if train.is_dir() else []
    if len(folders) == num_classes:
        return "custom", tuple(folders)
    return "custom", tuple(f"class {i}" for i in range(num_classes))


def is_image_tree(data_dir: Path) -> bool:
    """Whether DIR holds an image tree (train/) rather than the CSV pair; both at once is an error."""
    if Path(data_dir).is_file():  # e.g. --data data/train.csv: "data/train.csv/train.csv: file not found"
        raise DataError(f"--data {data_dir}: a file; name the folder that holds the data ({Path(data_dir).parent})")
    tree = (Path(data_dir) / "train").is_dir()
    if tree and (Path(data_dir) / "train.csv").exists():
        raise DataError(f"{data_dir} holds both train.csv and a train/ folder: keep one, or move one elsewhere")
    return tree


def _labelled(data_dir: Path, image_size: tuple[int, int] | None
              ) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...] | None]:
    """Training images uint8 (N, H, W, C), labels, fingerprint and class names (folders only), from
    DIR/train/ or else DIR/train.csv."""
    if is_image_tree(data_dir):
        from search import images  # Pillow only for image folders, as in _prepare_folders

        found = images.read_train(data_dir / "train", image_size)
        assert found.labels is not None
        return found.pixels, found.labels, found.fingerprint, found.class_names
    if not (data_dir / "train.csv").exists():
        raise DataError(f"{data_dir / 'train.csv'}: file not found (and no train/ folder of class folders)")
    if image_size is not None:
        raise DataError("--image-size applies to image folders; CSV images all have one size "
                        "(each architecture resizes inside the model where it must)")
    table = read_table(data_dir / "train.csv", labelled=True)
    assert table.labels is not None
    return table.pixels.reshape(-1, *_csv_shape(table.pixels)), table.labels, table.fingerprint, None


def split_rows(n_rows: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of scikit-learn's `train_test_split(test_size=val_fraction, random_state=seed)`, the notebook's
    split, computed as it does (one seeded permutation, the first ceil(fraction x n) rows for validation):
    importing scikit-learn took seconds before every study's first epoch (tests/test_data.py checks equality)."""
    permutation = np.random.RandomState(seed).permutation(n_rows)
    n_val = math.ceil(val_fraction * n_rows)
    return permutation[n_val:], permutation[:n_val]


def load_dataset(data_dir: Path, subset: int | None = None, image_size: tuple[int, int] | None = None, *,
                 val_fraction: float = 0.2, split_seed: int = 42) -> Dataset:
    """train.csv or train/<class>/ -> 80:20 split (random_state 42); `subset` keeps N training and N/4
    validation images; `image_size` (height, width) resizes an image tree (default: its most common size)."""
    data_dir = Path(data_dir)
    pixels, labels, fingerprint, folder_names = _labelled(data_dir, image_size)
    train_rows, val_rows = split_rows(len(labels), val_fraction, split_seed)
    if subset is not None:  # rows first, then pixels: copying all 60,000 images to keep 3,000 took 0.3 s
        if subset < 1 or subset > len(train_rows):
            raise SubsetOutOfRange(f"--subset {subset}: must be between 1 and {len(train_rows)}, the training split's "
                                   "size")
        n_val = max(1, math.ceil(subset * val_fraction / (1 - val_fraction)))
        train_rows, val_rows = train_rows[:subset], val_rows[:n_val]
    x_train, x_val, y_train, y_val = pixels[train_rows], pixels[val_rows], labels[train_rows], labels[val_rows]
    num_classes = int(labels.max()) + 1
    label_set, class_names = describe(data_dir, num_classes)
    if folder_names is not None and folder_names != class_names:  # the folder name is the class name
        label_set, class_names = "custom", folder_names
    return Dataset(to_images(x_train), y_train.astype(np.int32), to_images(x_val), y_val.astype(np.int32),
                   num_classes, fingerprint, label_set, class_names)


def has_test(data_dir: Path) -> bool:
    """Whether the data folder holds images to predict (testX.csv, or test/ beside train/)."""
    data_dir = Path(data_dir)
    # exists(), not is_file(): a folder named testX.csv is an error to say (load_test), not "nothing to predict".
    return (data_dir / "test").is_dir() if is_image_tree(data_dir) else (data_dir / "testX.csv").exists()


def load_test(data_dir: Path, input_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """testX.csv or test/*.png -> (Ids, images) of the training images' shape; folder Ids are file names."""
    data_dir = Path(data_dir)
    if is_image_tree(data_dir):
        from search import images  # Pillow only for image folders, as in _prepare_folders

        found = images.read_test(data_dir / "test", input_shape)
        return found.names, to_images(found.pixels)
    path = data_dir / "testX.csv"
    table = read_table(path, labelled=False)
    if pixel_shape(table.pixels.shape[1]) != tuple(input_shape):
        raise DataError(f"{path}: {table.pixels.shape[1]} pixel columns, expected {int(np.prod(input_shape))} "
                        f"as in train.csv ({'x'.join(map(str, input_shape))})")
    return table.ids, to_images(table.pixels)
