"""export-best: retrain the study's winner, predict testX, and write model, submission, params, history, report."""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import confusion_matrix

from search.console import Console, counted
from search.data import DataError, Dataset, has_test, is_image_tree, load_dataset, load_test, parse_image_size
from search.errors import SubsetOutOfRange, UserError
from search.export_files import EXPORT_FILES, check_out_dir, staged_out_dir
from search.figures import Section, confirmed_figure, confusion_figure, run_figure, study_sections, write_html
from search.objective import TrialFailed, rebuilt_note, retrain
from search.records import RetrainPlan, StudyRecord, TrialRecord, confirmations, other_backend_note, retrain_plan
from search.runtime import device_name, slow_loop_note
from search.tables import confirmation_table, confirmed_entry
from search.winners import accuracy_text, ranked, require_winner, unconfirmed_note, value_of

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


def data_folder(study: optuna.Study, data_dir: Path | None) -> Path:
    """The --data folder to retrain on: the one given, else the study's own where it exists here (another machine
    may keep it elsewhere), else ./data."""
    if data_dir is not None:
        return data_dir
    recorded = StudyRecord.of(study).data_dir
    return Path(recorded) if recorded and Path(recorded).is_dir() else Path("data")


def study_data(study: optuna.Study, data_dir: Path | None, image_size: str | None = None) -> Dataset:
    """The data the study searched on (same folder unless given, subset and image size), refusing data that
    changed since."""
    record = StudyRecord.of(study)
    folder = data_folder(study, data_dir)
    fix = f"pass the study's --data{f' ({record.data_dir})' if record.data_dir else ''}"
    elsewhere = data_dir is None and bool(record.data_dir) and Path(record.data_dir) != folder  # its folder is not here
    if elsewhere:
        fix = f"study {study.study_name!r} was made with the data in {record.data_dir}, which is not here: pass --data"
    size = image_size or record.image_size
    if record.image_size and not image_size and not is_image_tree(folder):  # not the user's --image-size
        raise DataError(f"study {study.study_name!r} ran on image folders at {record.image_size}, and {folder} "
                        f"holds no train/ folder: {fix}")
    try:
        data = load_dataset(folder, record.subset, parse_image_size(size))
    except SubsetOutOfRange:  # not the user's --subset: the study's, which this data cannot give
        raise DataError(f"study {study.study_name!r} ran on the first {record.subset} training images of its data, "
                        f"more than {folder} holds: {fix}") from None
    except DataError as exc:  # e.g. "data/train.csv: file not found", read in place of the study's folder
        if not elsewhere:
            raise
        raise DataError(f"{exc}; {fix}") from None
    expected = record.data_fingerprint
    if expected and expected != data.fingerprint:
        sizes = (f"; at image size {size or 'most common'}, the study's {record.image_size or 'most common'}"
                 if is_image_tree(folder) else "")  # CSV images have one size
        raise DataError(f"the training data in {folder} differs from what study {study.study_name!r} ran on "
                        f"(fingerprint {data.fingerprint}, study has {expected}{sizes}): {fix}")
    return data


def predict_labels(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Class predictions (argmax of the softmax) in batches."""
    return np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=1)


def val_accuracy_of(model: keras.Model, data: Dataset) -> float:
    """The model's validation accuracy."""
    return float(np.mean(predict_labels(model, data.x_val) == data.y_val))


def averaged_model(models: list[keras.Model], input_shape: tuple[int, ...], mirror: bool = False) -> keras.Model:
    """One model whose output is the mean softmax of the members (an ensemble) and, with `mirror`, of each member
    on the horizontally mirrored image too (test-time augmentation); each member keeps its own layers."""
    inputs = keras.Input(input_shape)
    # The mirror is a keras.ops node of the functional graph, not a custom layer that loading would need.
    views = [inputs, keras.ops.flip(inputs, axis=-2)] if mirror else [inputs]  # NHWC: axis -2 is the width
    # Members are wrapped under unique names: several may share their architecture's model name.
    members = [keras.Sequential([model], name=f"member_{i}") for i, model in enumerate(models)]
    outputs = [member(view) for member in members for view in views]
    # float32 whatever precision the members trained in (the dtype policy of the last retrain is still set).
    return keras.Model(inputs, keras.layers.Average(dtype="float32")(outputs), name="ensemble")


def mirrored_by_default(plans: list[RetrainPlan]) -> bool:
    """Whether export-best averages over mirrored images when not told: when every member trained on randomly
    mirrored images, so that a mirrored image is one the model learned to classify as its original."""
    return all(plan.params.get("augment_flip") for plan in plans)


def _readable(value: Any) -> Any:
    """A JSON value with its floats to 4 significant digits (0.15000000000000002 reads 0.15), for a page."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: _readable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_readable(item) for item in value]
    return value


def export_best(study: optuna.Study, data_dir: Path | None, out_dir: Path, *, epochs: int | None = None,
                full_train: bool = False, quiet: bool = False, image_size: str | None = None,
                force: bool = False, within: float | None = None, ensemble: int = 1, seeds: int = 1,
                mirror: bool | None = None) -> Export:
    """Retrain the study's winner (with `ensemble` K > 1, its K best trials) with its seed (with `seeds` S > 1, that
    seed and the S - 1 next, as `confirm` does), average the softmax of the K x S runs, evaluate, predict the test
    images and write the five files (without test images, no submission.csv; an earlier export is replaced only
    with force). `mirror` averages each prediction with the mirrored image's (default: when every member trained
    mirrored)."""
    check_out_dir(out_dir, force)
    members = ranked(study, within)[:ensemble]
    if not members:
        require_winner(study)  # the one-line error
    if len(members) < ensemble:
        raise UserError(f"--ensemble {ensemble}: study {study.study_name!r} has only "
                        f"{counted(len(members), 'complete trial')}")
    record = StudyRecord.of(study)
    folder = data_folder(study, data_dir)
    data = study_data(study, data_dir, image_size)  # data_dir: None, where the study's folder is read
    # Test images are optional (a folder of one's own images may have none): then no submission is written.
    test = load_test(folder, data.input_shape) if has_test(folder) else None
    # Each member trial once per seed: its own seed first, so a single run repeats the trial.
    plans = [replace(plan, seed=plan.seed + i) for plan in
             (retrain_plan(study, trial, keras.backend.backend(), epochs) for trial in members) for i in range(seeds)]
    run_trials = [trial for trial in members for _ in range(seeds)]  # the trial of each plan
    console, runs = Console(quiet), []
    if within is None and (note := unconfirmed_note(study)):
        console.warn(note)
    confirmed = confirmations(study)
    for trial in members:  # said before any training
        for note in (other_backend_note(trial, keras.backend.backend()), rebuilt_note(record.arch, trial, data)):
            if note:
                console.warn(note)
    if note := slow_loop_note(any(plan.device_loop for plan in plans), device_name(), retrain=True):
        console.warn(note)
    for trial, plan in zip(run_trials, plans, strict=True):
        # After `confirm`, the winner is chosen by its mean over seeds: say so beside its single run (a Pareto
        # pick, --within, is chosen by its single run).
        console.say(f"retraining trial {trial.number} of {study.study_name!r} "
                    f"({accuracy_text(trial, confirmed if within is None else {})}) "
                    f"with seed {plan.seed} for {counted(plan.epochs, 'epoch')}"
                    f"{' on all labelled rows' if full_train else ''}")
        try:
            runs.append(retrain(plan, data, show=console.epoch, full_train=full_train))
        except TrialFailed as exc:  # e.g. a rate near the edge of its range diverges with another seed
            raise UserError(f"retraining trial {trial.number} with seed {plan.seed} failed: {exc}; nothing was "
                            "written") from None
    models = [run.model for run in runs]
    one_view = models[0] if len(models) == 1 else averaged_model(models, data.input_shape)
    if mirror is None:
        mirror = mirrored_by_default(plans)
        if mirror:
            console.say("predicting each image as the mean of it and its mirror image: the model trained on "
                        "mirrored images (--no-mirror turns this off)")
    model = averaged_model(models, data.input_shape, mirror=True) if mirror else one_view
    val_pred = predict_labels(model, data.x_val)
    val_accuracy = float(np.mean(val_pred == data.y_val))
    trial, plan = members[0], plans[0]
    if test is None:
        console.warn(f"{folder} holds no images to predict (testX.csv, or test/ beside train/): no submission.csv")
    with staged_out_dir(out_dir, force) as staging:
        if test is not None:
            pd.DataFrame({"Id": test[0], "Label": predict_labels(model, test[1])}).to_csv(
                staging / "submission.csv", index=False)
        model.save(staging / "model.keras")
        history = pd.DataFrame(runs[0].history.rows)
        pd.concat([pd.DataFrame(run.history.rows).assign(trial=t.number, seed=p.seed)
                   for run, t, p in zip(runs, run_trials, plans, strict=True)]
                  ).to_csv(staging / "history.csv", index=False)
        params = {"arch": plan.arch, "study": study.study_name, "trial": trial.number, "value": value_of(trial),
                  "params": plan.params, "seed": plan.seed, "epochs": plan.epochs, "full_train": full_train,
                  "val_accuracy": val_accuracy, "data_fingerprint": data.fingerprint, "label_set": data.label_set,
                  "class_names": list(data.class_names), "input_shape": list(data.input_shape),
                  "input_scaling": "float32 pixels / 255, channels last",
                  "image_size": record.image_size, "subset": record.subset, "objective": record.objective,
                  "backend": keras.backend.backend(), "precision": plan.precision, "device_loop": plan.device_loop,
                  "versions": versions()}
        params["test_time_mirror"] = mirror
        if mirror:
            params["val_accuracy_without_mirror"] = val_accuracy_of(one_view, data)
        if len(trial.values or ()) > 1:  # its second objective (search.pareto.steady_seconds), and its wall seconds
            params["steady_seconds"], params["train_seconds"] = trial.values[1], TrialRecord.of(trial).train_seconds
        if within is not None:
            params["pick"] = f"fastest-within {within} points of accuracy on the Pareto front"
        if len(runs) > 1:
            params["ensemble"] = [{"trial": t.number, "value": value_of(t), "params": p.params, "seed": p.seed,
                                   "epochs": p.epochs, "precision": p.precision, "device_loop": p.device_loop,
                                   "val_accuracy": val_accuracy_of(r.model, data)}
                                  for t, p, r in zip(run_trials, plans, runs, strict=True)]
        confirmed_table = confirmation_table(study)
        if (entry := confirmed_entry(confirmed_table, trial.number)) is not None:
            params["confirmed"] = entry
        (staging / "params.json").write_text(json.dumps(params, indent=1, default=int))  # default: NumPy ints
        matrix = confusion_matrix(data.y_val, val_pred, labels=range(data.num_classes))
        caveat = (" (validation rows were also trained on)" if full_train else "") + \
            (", each image averaged with its mirror image" if mirror else "")
        numbers = ", ".join(str(t.number) for t in members)
        what = f"trial {trial.number}"
        if len(runs) > 1:
            what = f"ensemble of trial{'s' * (ensemble > 1)} {numbers}" + (f", {seeds} seeds each" if seeds > 1 else "")
        first = f", the first of {len(runs)} runs" if len(runs) > 1 else ""  # an ensemble's members, seeds
        sections = [Section(f"The exported run (trial {trial.number}{first}): the notebook's six plots",
                            run_figure(history)),
                    Section(f"Validation confusion matrix ({what}), accuracy {val_accuracy:.4f}{caveat}",
                            confusion_figure(matrix, data.class_names, "Validation confusion matrix")),
                    *study_sections(study, marked=[t.number for t in members])]
        if len(confirmed_table):
            labelled = confirmed_table.assign(label=[f"trial {n}" for n in confirmed_table["trial"]],
                                            group=study.study_name)
            sections.append(Section("Confirmed configurations", confirmed_figure(labelled)))
        # params.json as a whole (the page showed only the params: no accuracy, seed, epochs or confirmed mean), its
        # floats shortened for reading; values come from the storage, escaped like every other value on the page.
        write_html(sections, staging / "report.html", f"hpsearch: {plan.arch} study {study.study_name}, {what}",
                   f"<pre>{html.escape(json.dumps(_readable(params), indent=1, default=int))}</pre>")
    return Export(out_dir, val_accuracy, tuple(out_dir / name for name in EXPORT_FILES if (out_dir / name).exists()))
