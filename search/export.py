"""export-best: retrain the study's winner, predict testX, and write model, submission, params, history, report."""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import confusion_matrix

from search.confirm import confirmation_table
from search.console import Console
from search.data import DataError, Dataset, load_dataset, load_test, parse_image_size
from search.export_files import EXPORT_FILES, check_out_dir, staged_out_dir
from search.figures import Section, confirmed_figure, confusion_figure, run_figure, study_sections, write_html
from search.objective import retrain
from search.records import StudyRecord, require_winner, retrain_plan, value_of

PACKAGES = ("keras", "tensorflow-cpu", "tensorflow", "jax", "optuna", "numpy", "pandas", "scikit-learn", "plotly")


@dataclass(frozen=True)
class Export:
    """Where the artefacts went and the retrained model's validation accuracy."""

    out_dir: Path
    val_accuracy: float
    files: tuple[Path, ...]


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape a model's numbers."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def study_data(study: optuna.Study, data_dir: Path, image_size: str | None = None) -> Dataset:
    """The data the study searched on (same subset and image size), refusing data that changed since."""
    record = StudyRecord.of(study)
    size = image_size or record.image_size
    data = load_dataset(data_dir, record.subset, parse_image_size(size))
    expected = record.data_fingerprint
    if expected and expected != data.fingerprint:
        raise DataError(f"the training data in {data_dir} (at image size {size or 'most common'}) differs from "
                        f"what study {study.study_name!r} ran on (fingerprint {data.fingerprint}, "
                        f"study has {expected})")
    return data


def predict_labels(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Class predictions (argmax of the softmax) in batches."""
    return np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=1)


def export_best(study: optuna.Study, data_dir: Path, out_dir: Path, *, epochs: int | None = None,
                full_train: bool = False, quiet: bool = False, image_size: str | None = None,
                force: bool = False) -> Export:
    """Retrain the best trial's params with its seed, evaluate, predict testX and write the five files
    (an earlier export in out_dir is replaced only with force)."""
    check_out_dir(out_dir, force)
    trial = require_winner(study)
    record = StudyRecord.of(study)
    data = study_data(study, data_dir, image_size)
    test_ids, x_test = load_test(data_dir, data.input_shape)
    plan = retrain_plan(study, trial, keras.backend.backend(), epochs)
    console = Console(quiet)
    console.say(f"retraining trial {trial.number} of {study.study_name!r} (val_accuracy {value_of(trial):.4f}) "
                f"for {plan.epochs} epochs{' on all labelled rows' if full_train else ''}")
    run = retrain(plan, data, show=console.epoch, full_train=full_train)
    val_pred = predict_labels(run.model, data.x_val)
    val_accuracy = float(np.mean(val_pred == data.y_val))
    with staged_out_dir(out_dir, force) as staging:
        pd.DataFrame({"Id": test_ids, "Label": predict_labels(run.model, x_test)}).to_csv(
            staging / "submission.csv", index=False)
        run.model.save(staging / "model.keras")
        history = pd.DataFrame(run.history.rows)
        history.to_csv(staging / "history.csv", index=False)
        params = {"arch": plan.arch, "study": study.study_name, "trial": trial.number, "value": value_of(trial),
                  "params": trial.params, "seed": plan.seed, "epochs": plan.epochs, "full_train": full_train,
                  "val_accuracy": val_accuracy, "data_fingerprint": data.fingerprint, "label_set": data.label_set,
                  "class_names": list(data.class_names), "input_shape": list(data.input_shape),
                  "image_size": record.image_size, "subset": record.subset,
                  "backend": keras.backend.backend(), "versions": versions()}
        confirmations = confirmation_table(study)
        if len(confirmations):
            params["confirmed"] = confirmations[confirmations["trial"] == trial.number].iloc[0].to_dict()
        (staging / "params.json").write_text(json.dumps(params, indent=1, default=int))  # default: NumPy ints
        matrix = confusion_matrix(data.y_val, val_pred, labels=range(data.num_classes))
        caveat = " (validation rows were also trained on)" if full_train else ""
        sections = [Section("The exported run: the notebook's six plots", run_figure(history)),
                    Section(f"Validation confusion matrix, accuracy {val_accuracy:.4f}{caveat}",
                            confusion_figure(matrix, data.class_names, "Validation confusion matrix")),
                    *study_sections(study)]
        if len(confirmations):
            labelled = confirmations.assign(label=[f"trial {n}" for n in confirmations["trial"]],
                                            group=study.study_name)
            sections.append(Section("Confirmed configurations", confirmed_figure(labelled)))
        # Param values come from the storage: escaped like every other value on the page.
        write_html(sections, staging / "report.html", f"hpsearch: {study.study_name}, trial {trial.number}",
                   f"<pre>{html.escape(json.dumps(trial.params, indent=1))}</pre>")
    return Export(out_dir, val_accuracy, tuple(out_dir / name for name in EXPORT_FILES))
