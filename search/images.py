"""Image folders in (DIR/train/<class>/*.png, DIR/test/*.png) decoded with Pillow and cached; and written out."""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from search import npzcache
from search.console import Console, counted, listed
from search.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")  # Pillow decodes them all
# Pillow modes without colour; every other mode (RGB, RGBA, P, CMYK, ...) is read as colour.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
CHANNELS = {"L": 1, "RGB": 3}  # the two modes images are converted to
_KIND = {"L": "greyscale", "RGB": "colour"}
# Caches made by another version of the decoding are rebuilt (2: 16-bit images scaled, not clipped; 3: 32-bit
# integer and float images scaled by their range, not as 16-bit or clipped).
DECODING = 3


@dataclass(frozen=True)
class Images:
    """Decoded images uint8 (N, H, W, C), their file names, labels (None for test) and class names."""

    names: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    fingerprint: str


def folder_name(class_name: str) -> str:
    """A class name as a folder name ("T-shirt/top" -> "T-shirt-top"); reading takes the folder name back."""
    return re.sub(r"[/\\\x00]", "-", class_name).strip().lstrip(".") or "class"


def _visible(folder: Path) -> list[os.DirEntry[str]]:
    """The folder's entries sorted by name, hidden ones (caches, .DS_Store) left out."""
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot read ({type(exc).__name__}: {exc})") from None


def _is_image(entry: os.DirEntry[str]) -> bool:
    """Whether a folder entry is a file with an image extension."""
    return entry.name.lower().endswith(EXTENSIONS) and not entry.is_dir()


def _skip_others(folder: Path, entries: list[os.DirEntry[str]]) -> None:
    """Say which files of a folder are left out for not being images (notes, Thumbs.db): as Keras'
    image_dataset_from_directory does, they are ignored rather than refused, but never silently."""
    others = [entry.name for entry in entries if not entry.is_dir() and not _is_image(entry)]
    if others:
        shown = listed(others, 3)
        Console().warn(f"note: {folder}: skipping {counted(len(others), 'file')} that "
                       f"{'are' if len(others) > 1 else 'is'} not an image ({shown}; images: {', '.join(EXTENSIONS)})")


def _image_files(folder: Path) -> list[os.DirEntry[str]]:
    """The image files of one folder, other files skipped with a note; a folder inside it is an error (its images
    would be left out)."""
    entries = _visible(folder)
    for entry in entries:
        if entry.is_dir():
            raise DataError(f"{folder / entry.name}: a folder inside {folder}; images go directly inside it")
    _skip_others(folder, entries)
    return [entry for entry in entries if _is_image(entry)]


def _stamp(files: list[os.DirEntry[str]], root: Path, target: object) -> str:
    """What a cache must match: every file's path, size, mtime, ctime, inode and device, and the target.

    Costs one stat per file and no reads. A file added, removed, replaced or edited changes it (an edit
    always moves ctime, which no program can set back), and so does a cache copied beside another tree
    (other inodes and ctimes)."""
    skip = len(str(root)) + 1  # paths relative to root, without os.path.relpath's cost per file
    rows = [(entry.path[skip:], stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
            for entry in files for stat in (entry.stat(),)]
    return hashlib.sha256(repr((DECODING, target, rows)).encode()).hexdigest()


def _headers(files: list[os.DirEntry[str]]) -> list[tuple[tuple[int, int], str]]:
    """(width, height) and mode of every image, read from its header only."""
    found = []
    for entry in files:
        try:
            with Image.open(entry.path) as image:
                found.append((image.size, "L" if image.mode in GREY_MODES else "RGB"))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{entry.path}: not a readable image ({type(exc).__name__})") from None
    return found


def _as_8_bit(image: Image.Image) -> Image.Image:
    """A greyscale image of more than 8 bits as 8-bit "L" (Pillow's convert clips every value above 255 to white,
    and a float below 1 to black). 16-bit (I;16, as a PNG opens): 65535 -> 255. 32-bit integers (I) and floats (F),
    whose mode does not say their range, by the range their values fit: 0-1 floats, 0-255, or 0-65535."""
    if not image.mode.startswith("I") and image.mode != "F":
        return image
    values = np.asarray(image, np.float64)
    top = float(values.max(initial=0.0))
    if image.mode.startswith("I;16") or 255 < top <= 65535:
        scale = 257.0
    elif image.mode == "F" and top <= 1.0:
        scale = 1 / 255  # 0.0-1.0, as numpy and scikit-image write floats
    elif top <= 255:
        scale = 1.0
    else:
        raise ValueError(f"{image.mode} pixel values up to {top:g}; 8-bit, 16-bit or 0-1 float images are read")
    if values.min(initial=0.0) < 0:
        raise ValueError(f"{image.mode} pixel values down to {values.min():g}; images hold none below 0")
    return Image.fromarray(np.clip(np.rint(values / scale), 0, 255).astype(np.uint8))


def _decode(files: list[os.DirEntry[str]], mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode every file into a uint8 (N, H, W, C) array in `mode`, resized to (height, width) `size`."""
    height, width = size
    pixels = np.empty((len(files), height, width, CHANNELS[mode]), np.uint8)
    for i, entry in enumerate(files):
        try:
            with Image.open(entry.path) as opened:
                image = _as_8_bit(opened).convert(mode)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels[i] = np.asarray(image).reshape(height, width, -1)
        except (OSError, SyntaxError, ValueError) as exc:  # e.g. truncated: the header read, the pixels not
            raise DataError(f"{entry.path}: not a readable image ({type(exc).__name__}: {exc})") from None
    return pixels


def _majority_mode(headers: list[tuple[tuple[int, int], str]], where: Path) -> str:
    """Greyscale or colour, whichever most images are; a mix is converted, with one line saying so."""
    modes = Counter(mode for _, mode in headers)
    mode = modes.most_common(1)[0][0]
    if len(modes) > 1:
        other = len(headers) - modes[mode]
        kept, converted = _KIND[mode], _KIND["RGB" if mode == "L" else "L"]
        Console().warn(f"note: {where}: {other} of {len(headers)} images are {converted}; "
                       f"converting them to {kept} like the rest")
    return mode


def _fingerprint(*parts: np.ndarray) -> str:
    """A short hash of the decoded content (names, labels, pixels), the same wherever the tree is copied."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:16]


def _cached(cache: Path, stamp: str, build: Callable[[], Images]) -> Images:
    """Images from the cache when its stamp matches, else from `build()` (then cached)."""
    found = npzcache.load(cache, stamp)
    if found is not None:
        labels = found["labels"] if found["labels"].size else None
        return Images(found["names"], found["pixels"], labels, tuple(found["class_names"].tolist()),
                      str(found["fingerprint"]))
    images = build()
    npzcache.save(cache, stamp, {"names": images.names, "pixels": images.pixels,
                                 "labels": images.labels if images.labels is not None else np.zeros(0, np.int64),
                                 "class_names": np.asarray(images.class_names, str),
                                 "fingerprint": np.asarray(images.fingerprint)})
    return images


def read_train(train_dir: Path, image_size: tuple[int, int] | None) -> Images:
    """DIR/train/<class>/*: class names from the folders (sorted), one mode and one size for all."""
    entries = _visible(train_dir)
    for entry in entries:
        if _is_image(entry):  # an image without a class: it belongs in one of the folders
            raise DataError(f"{train_dir / entry.name}: an image outside the class folders of {train_dir}")
    _skip_others(train_dir, entries)
    classes = [entry for entry in entries if entry.is_dir()]
    if len(classes) < 2:
        raise DataError(f"{train_dir}: {counted(len(classes), 'class folder')}, "
                         "expected at least 2 (one folder of images per class)")
    per_class = [_image_files(train_dir / entry.name) for entry in classes]
    for entry, files in zip(classes, per_class, strict=True):
        if not files:
            raise DataError(f"{train_dir / entry.name}: empty class folder (no {', '.join(EXTENSIONS)} files)")
    files = [file for group in per_class for file in group]
    labels = np.repeat(np.arange(len(classes)), [len(group) for group in per_class])
    names = tuple(entry.name for entry in classes)

    def build() -> Images:
        """Decode the tree: the majority mode, and --image-size or else the most common size."""
        headers = _headers(files)
        mode = _majority_mode(headers, train_dir)
        width, height = Counter(size for size, _ in headers).most_common(1)[0][0]
        size = image_size or (height, width)
        pixels = _decode(files, mode, size)
        relative = np.asarray([os.path.relpath(f.path, train_dir) for f in files], str)
        return Images(relative, pixels, labels, names,
                      _fingerprint(np.asarray(names, str), relative, labels, pixels))

    cache = train_dir.parent / f".{train_dir.name}.images.cache.npz"
    return _cached(cache, _stamp(files, train_dir, ("train", image_size)), build)


def read_test(test_dir: Path, shape: tuple[int, int, int]) -> Images:
    """DIR/test/*: unlabelled images, resized to the training (H, W); their mode must be the training's."""
    if not test_dir.is_dir():
        raise DataError(f"{test_dir}: no test folder (images to predict)")
    files = _image_files(test_dir)
    if not files:
        raise DataError(f"{test_dir}: no {', '.join(EXTENSIONS)} files to predict")

    def build() -> Images:
        """Decode the test images in the training images' mode and size."""
        mode = _majority_mode(_headers(files), test_dir)
        trained = next(name for name, channels in CHANNELS.items() if channels == shape[2])
        if mode != trained:  # the model takes the training images' channels (photos beside greyscale scans)
            Console().warn(f"note: {test_dir}: the images are {_KIND[mode]}; converting them to {_KIND[trained]} "
                           "like the training images")
        pixels = _decode(files, trained, shape[:2])
        names = np.asarray([f.name for f in files], str)
        return Images(names, pixels, None, (), _fingerprint(names, pixels))

    cache = test_dir.parent / f".{test_dir.name}.images.cache.npz"
    return _cached(cache, _stamp(files, test_dir, ("test", shape)), build)


def write_tree(out: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
               class_names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Write (pixels (N, H, W), labels) pairs as out/train/<class>/<n>.png and out/test/<n>.png.

    Returns the class names as they will be read back (folder names, sorted), the test file names and
    the test labels renumbered in that order. out is a new folder (search.data.prepare stages it)."""
    folders = [folder_name(name) for name in class_names]
    read_back = tuple(sorted(set(folders)))
    if len(read_back) != len(folders):
        raise DataError(f"class names {class_names} give duplicate folder names {folders}")
    renumber = np.asarray([read_back.index(name) for name in folders])
    test_names = np.asarray([], str)
    for part, (pixels, labels) in (("train", train), ("test", test)):
        width = len(str(len(pixels) - 1))
        names = [f"{i:0{width}d}.png" for i in range(len(pixels))]
        for folder in (set(folders) if part == "train" else {""}):
            (out / part / folder).mkdir(parents=True, exist_ok=True)
        for name, image, label in zip(names, pixels, labels, strict=True):
            Image.fromarray(image).save(out / part / (folders[label] if part == "train" else "") / name)
        test_names = np.asarray(names, str)
    return read_back, test_names, renumber[test[1]]
