"""`hpsearch score`: accuracy, per-class accuracy and confusion matrix of a submission against true labels."""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from search.csvfiles import INT64_MAX, file_line
from search.data import META_FILE, DataError, describe


@dataclass(frozen=True)
class Score:
    """A submission's accuracy, per-class accuracy and confusion matrix (rows true, columns predicted)."""

    accuracy: float
    per_class: pd.DataFrame
    confusion: pd.DataFrame


def _read_id_label(path: Path) -> pd.DataFrame:
    """An Id,Label CSV with integer labels and integer or text Ids (image file names), or a one-line error."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an Id,Label CSV file")
    try:
        raw = path.read_bytes()
        frame = pd.read_csv(io.BytesIO(raw))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:  # e.g. permission denied
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable Id,Label CSV ({str(exc).strip().splitlines()[-1]})") from None
    if list(frame.columns[:2]) != ["Id", "Label"]:
        found = ",".join(map(str, frame.columns[:4])) + (f",... ({len(frame.columns)} columns)"
                                                         if len(frame.columns) > 4 else "")
        raise DataError(f"{path}: columns must be Id,Label, found {found}")  # testX.csv has 785
    if frame.empty:  # its empty Label column, of no type, was said to "hold integers only"
        raise DataError(f"{path}: no data rows")
    if not pd.api.types.is_integer_dtype(frame["Label"]):
        raise DataError(f"{path}: column 'Label' must hold integers only")
    # pandas reads a label past int64's largest as uint64, which the cast to int for scoring wrapped round to -1.
    outside = (frame["Label"] < 0) | (frame["Label"] > INT64_MAX)
    if outside.any():
        row = int(outside.to_numpy().argmax())
        label = frame["Label"].iloc[row]
        raise DataError(f"{path}: {'negative ' if label < 0 else ''}label {label} on line {file_line(raw, row)}; "
                        "labels are 0..K-1")
    if frame["Id"].isna().any():
        line = file_line(raw, int(frame["Id"].isna().to_numpy().argmax()))
        raise DataError(f"{path}: column 'Id' has a blank cell on line {line}")
    if pd.api.types.is_float_dtype(frame["Id"]):  # were said to be "text (file names)"
        raise DataError(f"{path}: column 'Id' holds decimal numbers (e.g. {frame['Id'].iloc[0]}); Ids are integers "
                        "or image file names")
    if frame["Id"].duplicated().any():
        raise DataError(f"{path}: duplicate Id {frame['Id'][frame['Id'].duplicated()].iloc[0]}")
    return frame


def _meta(path: Path) -> dict:
    """A params.json or dataset.json as a dict ({} if it is missing or not a JSON object)."""
    with contextlib.suppress(OSError, ValueError):
        found = json.loads(path.read_text())
        return found if isinstance(found, dict) else {}
    return {}


def _names_in(meta: dict) -> tuple[str, ...]:
    """The class names a params.json or dataset.json holds (none where it holds no list of them)."""
    names = meta.get("class_names")
    return tuple(map(str, names)) if isinstance(names, list) else ()


def score(submission: Path, labels: Path) -> Score:
    """Compare a submission with the true labels; Ids must match one to one."""
    pred, truth = _read_id_label(submission), _read_id_label(labels)
    kinds = ["integers" if pd.api.types.is_integer_dtype(frame["Id"]) else "text (file names)"
             for frame in (pred, truth)]
    if kinds[0] != kinds[1]:
        raise DataError(f"{submission}: Ids are {kinds[0]} but {labels} has {kinds[1]}; score a submission "
                        "against the labels of the same data")
    if len(pred) != len(truth):
        raise DataError(f"{submission}: {len(pred)} rows, but {labels} has {len(truth)}")
    merged = truth.merge(pred, on="Id", how="left", suffixes=("_true", "_pred"))
    missing = merged["Label_pred"].isna()
    if missing.any():
        raise DataError(f"{submission}: no prediction for Id {merged['Id'][missing].iloc[0]} "
                        f"({int(missing.sum())} Ids of {labels} missing)")
    y_true, y_pred = merged["Label_true"].to_numpy(), merged["Label_pred"].astype(int).to_numpy()
    # The data's class count as its dataset.json or the export's params.json names it: a small test set may lack
    # the last class's rows, so that its labels alone undercount.
    export = _meta(submission.parent / "params.json")  # what an export-best submission was predicted for
    exported = _names_in(export)
    n_classes = len(_names_in(_meta(labels.parent / META_FILE))) or len(exported) or int(y_true.max()) + 1
    if y_true.max() >= n_classes:
        raise DataError(f"{labels}: has label {y_true.max()}, but its data has {n_classes} classes; score a "
                        "submission against the labels of the same data")
    if y_pred.max() >= n_classes:  # a model of another label set (e.g. 10 classes scored against 5)
        raise DataError(f"{submission}: predicts label {y_pred.max()}, but {labels} has labels 0..{n_classes - 1}; "
                        "score a submission against the labels of the same data")
    label_set, names = describe(labels.parent, n_classes)
    if label_set == "custom" and len(exported) == n_classes:  # the names the model was trained with
        names = exported
    predicted_for = str(export.get("label_set") or "")
    if predicted_for and label_set != "custom" and predicted_for != label_set:  # both named: compare them
        raise DataError(f"{submission}: predicted for {predicted_for} (its params.json), but {labels} holds "
                        f"{label_set} labels; score a submission against the labels of the same data")
    if exported and len(exported) != n_classes:
        raise DataError(f"{submission}: predicted for {len(exported)} classes (its params.json), but {labels} has "
                        f"{n_classes}; score a submission against the labels of the same data")
    matrix = confusion_matrix(y_true, y_pred, labels=range(n_classes))
    support = matrix.sum(axis=1)
    per_class = pd.DataFrame({"class": names, "support": support,
                              "accuracy": np.divide(np.diag(matrix), support, out=np.full(n_classes, np.nan),
                                                    where=support > 0).round(4)})
    confusion = pd.DataFrame(matrix, index=pd.Index(names, name="true"), columns=names)
    return Score(float(np.mean(y_true == y_pred)), per_class, confusion)
