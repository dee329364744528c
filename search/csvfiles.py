"""Kaggle-format CSVs (Id, Label, pixel...): parsed, validated with one-line errors, and cached by content."""
from __future__ import annotations

import hashlib
import io
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from search import npzcache
from search.console import listed
from search.errors import DataError

INT64_MAX = int(np.iinfo(np.int64).max)

if TYPE_CHECKING:
    import pandas as pd  # imported where a CSV is parsed: a study that reads the cache never needs pandas


@dataclass(frozen=True)
class Table:
    """One validated CSV: Ids, uint8 pixels (N, P), labels (or None for testX) and content hash."""

    ids: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray | None
    fingerprint: str


def pixel_shape(n_pixels: int) -> tuple[int, int, int] | None:
    """(side, side, channels) of a row of pixel columns: side^2 is greyscale, 3 x side^2 colour (RGB,
    channels last: pixel0-2 are the first pixel's red, green, blue); no count can be both."""
    for channels in (1, 3):
        side = math.isqrt(n_pixels // channels)
        if n_pixels and side * side * channels == n_pixels:
            return side, side, channels
    return None


def _filled_lines(raw: bytes) -> Iterator[tuple[int, bytes]]:
    """The lines of a CSV that pandas reads, the header first, each with its number in the file: blank ones are
    skipped (so a data row's line is not its row + 2 where blank lines come before it)."""
    start = 0
    for number in itertools.count(1):
        end = raw.find(b"\n", start)
        line = raw[start:] if end < 0 else raw[start:end]
        if line.strip():
            yield number, line.rstrip(b"\r")
        if end < 0:
            return
        start = end + 1


def _row_line(raw: bytes, row: int) -> tuple[int, bytes]:
    """Data row `row` (0 is the first after the header) as its line's number in the file and its bytes; past the
    last line, (row + 2, b"")."""
    return next(itertools.islice(_filled_lines(raw), row + 1, None), (row + 2, b""))


def file_line(raw: bytes, row: int) -> int:
    """The file line of data row `row` (0 is the first after the header)."""
    return _row_line(raw, row)[0]


def _bad_cell(path: Path, raw: bytes, frame: pd.DataFrame, what: str, bad: pd.DataFrame) -> DataError:
    """The error for the first True cell of `bad`, naming its line in the file (raw)."""
    import pandas as pd

    col = int(np.argmax(bad.to_numpy().any(axis=0)))
    row = int(np.argmax(bad.iloc[:, col].to_numpy()))
    value = frame.iat[row, col]
    shown = "a blank cell" if pd.isna(value) else repr(str(value))
    return DataError(f"{path}: line {file_line(raw, row)}, column {frame.columns[col]!r}: {shown}, expected {what}")


def _integers(path: Path, raw: bytes, frame: pd.DataFrame, low: int, high: int, what: str) -> np.ndarray:
    """Check every cell is an integer in [low, high]; return them as int64 (raw: the file, for the error's line)."""
    import pandas as pd

    if all(pd.api.types.is_integer_dtype(dtype) for dtype in frame.dtypes):
        values = frame.to_numpy(np.int64)  # the fast path: the parser already found integers only
        if values.min() >= low and values.max() <= high:
            return values
    numeric = frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    # float64 rounds int64's largest value up to 2**63, which would wrap around in the cast to int64: refused too.
    for bad in (numeric.isna(), numeric != np.floor(numeric), numeric < low, numeric > high, numeric >= 2.0**63):
        if bad.to_numpy().any():
            raise _bad_cell(path, raw, frame, what, bad)
    return numeric.to_numpy(np.int64)


def _check_short_rows(path: Path, raw: bytes, frame: pd.DataFrame) -> None:
    """A row with fewer fields than the header (a file cut short, a lost comma): pandas fills it up with blanks,
    which the cells' check would call "a blank cell"; say it as a row one field long is said."""
    short = frame.iloc[:, -1].isna().to_numpy()
    if not short.any():
        return
    row = int(np.argmax(short))
    number, line = _row_line(raw, row)
    fields = line.count(b",") + 1 if line else len(frame.columns)
    if fields < len(frame.columns):
        raise DataError(f"{path}: line {number}: {fields} columns, expected {len(frame.columns)}")


def _check_classes(path: Path, labels: np.ndarray) -> None:
    """Labels must be 0..K-1 with every class present (K >= 2): a gap would become an empty class."""
    present = np.unique(labels)
    if len(present) < 2:
        raise DataError(f"{path}: labels hold {len(present)} class, expected at least 2")
    count = int(present[-1]) + 1 - len(present)  # labels missing below the largest (np.unique sorts)
    if count:
        # The first few, from the gaps between the labels present, not from a set of every label up to the largest
        # (a label of 2**32 took all memory).
        missing: list[int] = []
        labels_present = present.tolist()
        for below, label in zip([-1, *labels_present[:-1]], labels_present, strict=True):
            missing += range(below + 1, min(label, below + 1 + 5 - len(missing)))  # up to 5 in all
        shown = listed(missing, len(missing), total=count)
        raise DataError(f"{path}: labels must be 0..K-1 with every class present; no row has label {shown} "
                        f"(found {len(present)} classes, {int(present[0])} to {int(present[-1])})")


def _parse(path: Path, raw: bytes, labelled: bool, fingerprint: str) -> Table:
    """Read and validate one CSV (its bytes in `raw`); every problem becomes a one-line DataError."""
    import pandas as pd

    try:
        # Only an empty cell is missing: "nan" or "NA" in a cell is shown as written, not as "a blank cell".
        frame = pd.read_csv(io.BytesIO(raw), engine="c", keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        detail = (f"line {found[2]}: {found[3]} columns, expected {found[1]}" if found
                  else str(exc).strip().splitlines()[-1])
        raise DataError(f"{path}: {detail}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    # Data rows with one field more than the header make pandas take the first column as the index
    # (shifting every column by one); a trailing comma on every line adds an empty unnamed column.
    (_, header), (number, first_row) = (list(itertools.islice(_filled_lines(raw), 2)) + [(0, b""), (0, b"")])[:2]
    extra_field = first_row.count(b",") == header.count(b",") + 1
    empty_last = str(frame.columns[-1]).startswith("Unnamed:") and frame.iloc[:, -1].isna().all()
    if (extra_field and first_row.endswith(b",")) or empty_last:
        raise DataError(f"{path}: lines end with a trailing comma (an extra empty field); remove it")
    if extra_field:  # read as is, the labels were taken for Ids ("duplicate Id 1") or the pixels for labels
        raise DataError(f"{path}: line {number}: {first_row.count(b',') + 1} columns, expected "
                        f"{header.count(b',') + 1} (as the header names)")
    heads = ["Id", "Label"] if labelled else ["Id"]
    for i, head in enumerate(heads):
        if len(frame.columns) <= i or str(frame.columns[i]).strip().lower() != head.lower():
            raise DataError(f"{path}: column {i + 1} must be {head!r}, found "
                            f"{str(frame.columns[i]) if len(frame.columns) > i else 'nothing'!r}")
    n_pixels = len(frame.columns) - len(heads)
    if pixel_shape(n_pixels) is None:
        raise DataError(f"{path}: {n_pixels} pixel columns, expected a square image: side^2 greyscale "
                        "(e.g. 784 = 28x28) or 3 x side^2 colour, channels last (e.g. 3072 = 32x32x3)")
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    _check_short_rows(path, raw, frame)
    ids = _integers(path, raw, frame.iloc[:, [0]], 0, INT64_MAX, "a non-negative integer Id")[:, 0]
    duplicated = pd.Series(ids).duplicated()
    if duplicated.any():
        row = int(np.argmax(duplicated.to_numpy()))
        raise DataError(f"{path}: line {file_line(raw, row)}, column 'Id': duplicate Id {ids[row]}")
    labels = None
    if labelled:
        labels = _integers(path, raw, frame[[frame.columns[1]]], 0, INT64_MAX, "a non-negative integer label")[:, 0]
        _check_classes(path, labels)
    pixels = _integers(path, raw, frame.iloc[:, len(heads):], 0, 255, "an integer pixel 0-255").astype(np.uint8)
    return Table(ids, pixels, labels, fingerprint)


def content_hash(path: Path) -> str:
    """SHA-256 of the file, streamed: what ties the cache and the study to the CSV's content."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    return digest.hexdigest()


def read_table(path: Path, labelled: bool) -> Table:
    """A validated CSV, from its binary cache (`.<name>.cache.npz` beside it) when it holds this content."""
    path = Path(path)
    cache = path.with_name(f".{path.name}.cache.npz")
    # Hashing the 60,000-row train.csv (133 MB) takes about 0.1 s, far less than parsing it, and unlike
    # size and mtime it cannot be fooled by a cache copied beside another file.
    kind = "labelled" if labelled else "unlabelled"
    digest = content_hash(path)
    cached = npzcache.load(cache, f"{kind}:{digest}")
    if cached is not None:
        return Table(cached["ids"], cached["pixels"], cached["labels"] if labelled else None, digest[:16])
    raw = path.read_bytes()  # parse the very bytes that are hashed, even if the file changes meanwhile
    digest = hashlib.sha256(raw).hexdigest()
    table = _parse(path, raw, labelled, digest[:16])
    npzcache.save(cache, f"{kind}:{digest}",
                  {"ids": table.ids, "pixels": table.pixels,
                   "labels": table.labels if table.labels is not None else np.zeros(0, np.int64)})
    return table
