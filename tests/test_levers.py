"""The accuracy levers: sampled in every space unless --no-levers, off for the notebook's models, active only in
training, and every one of them on trains every architecture."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

import spaces
from search.cli import app
from search.data import load_dataset
from search.objective import train
from spaces._blocks import SmoothedSparseCrossentropy, augmentation, make_callbacks, make_loss, make_optimizer
from spaces._common import LEARNING_RATES, OPTIMIZERS
from spaces._keras2 import DecayedSGD
from spaces._levers import AUGMENTATIONS, LR_SCHEDULES, training_steps
from spaces.param_names import model_params, stored_params
from tests.conftest import load

LEVER_KEYS = {"augment", *AUGMENTATIONS, "label_smoothing", "use_weight_decay", "weight_decay", "lr_schedule"}
# Every lever on, at a strength that changes images visibly.
ALL_ON = {"augment": True, "augment_translate": 0.15, "augment_flip": True, "augment_erasing": 0.5,
          "label_smoothing": 0.1, "use_weight_decay": True, "weight_decay": 1e-3}
# The same levers explicitly off: a model and training identical to leaving them out.
ALL_OFF = {"augment": False, "label_smoothing": 0.0, "use_weight_decay": False, "lr_schedule": "constant"}


def _sampled(name: str, levers: bool, n: int = 12) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(suggest's params, the trial's recorded params with their plain names) for n random trials of `name`'s
    space."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((spaces.get(name).suggest(trial, levers=levers), model_params(trial.params)))
        study.tell(trial, 0.5)
    return out


def _layers(model: keras.Model) -> list[str]:
    """The model's layer classes in order."""
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize("name", spaces.names())
def test_notebook_models_and_default_hold_no_lever(name: str) -> None:
    arch = spaces.get(name)
    for params in (*arch.SEED_MODELS.values(), arch.DEFAULT):
        assert not LEVER_KEYS & set(params)


@pytest.mark.parametrize("name", spaces.names())
def test_levers_are_sampled_and_recorded(name: str) -> None:
    """Each gate is asked every trial, strengths only when on; a schedule and ReduceLROnPlateau exclude each
    other; suggest returns exactly what the trial records (export-best retrains from the trial's params)."""
    rows = _sampled(name, levers=True)
    for params, recorded in rows:
        assert params == recorded
        assert {"augment", "label_smoothing", "use_weight_decay", "lr_schedule"} <= set(params)
        assert set(AUGMENTATIONS) <= set(params) if params["augment"] else not set(AUGMENTATIONS) & set(params)
        assert ("weight_decay" in params) == params["use_weight_decay"]
        assert ("reduce_lr" in params) == (params["lr_schedule"] == "constant")
    assert {params["lr_schedule"] for params, _ in rows} == {"constant", *LR_SCHEDULES}


@pytest.mark.parametrize("name", spaces.names())
def test_no_levers_samples_none(name: str) -> None:
    for params, recorded in _sampled(name, levers=False):
        assert params == recorded and not LEVER_KEYS & set(params) and "reduce_lr" in params


@pytest.mark.filterwarnings("ignore:Fixed parameter learning_rate")  # some notebook rates lie outside the ranges
@pytest.mark.parametrize("name", spaces.names())
def test_enqueued_notebook_models_run_as_given(name: str) -> None:
    """A queued configuration without levers (a notebook model, the warm start) trains with them off."""
    arch = spaces.get(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    queued = [*arch.SEED_MODELS.values(), arch.DEFAULT]
    for params in queued:
        study.enqueue_trial(stored_params(params))
    for params in queued:
        trial = study.ask()
        assert arch.suggest(trial) == params == model_params(trial.params)
        study.tell(trial, 0.5)
    lever = {**arch.DEFAULT, "lr_schedule": "cosine"}  # a queued trial that names a lever gets it, and the rest off
    lever.pop("reduce_lr")
    study.enqueue_trial(stored_params(lever))
    assert arch.suggest(study.ask()) == lever
    everything = {**arch.DEFAULT, **ALL_ON}
    assert arch.suggest(optuna.trial.FixedTrial(stored_params(everything))) == everything


def test_no_levers_study_from_the_command_line(tiny_data: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = CliRunner().invoke(app, ["study", "lenet", "--no-levers", "--no-warm-start", "--trials", "2",
                                      "--epochs", "1", "--subset", "60", "--data", str(tiny_data), "--storage",
                                      url, "--quiet"])
    assert result.exit_code == 0, result.output
    trials = load(url).trials
    assert len(trials) == 2 and all(not LEVER_KEYS & set(t.params) for t in trials)


@pytest.mark.parametrize("name", spaces.names())
def test_augmentation_runs_only_in_training(name: str) -> None:
    """With every augmentation on, predict is deterministic and equals the same weights without augmentation;
    with the levers off, the model is the one without them (same layers, same parameter count)."""
    arch = spaces.get(name)
    keras.utils.set_random_seed(1)
    augmented = arch.build({**arch.DEFAULT, **ALL_ON}, (28, 28, 1), 5)
    plain = arch.build(arch.DEFAULT, (28, 28, 1), 5)
    assert _layers(augmented)[1:4] == ["RandomTranslation", "RandomFlip", "RandomErasing"]
    assert _layers(augmented)[:1] + _layers(augmented)[4:] == _layers(plain)
    assert augmented.count_params() == plain.count_params()
    plain.set_weights(augmented.get_weights())
    x = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
    first = augmented.predict(x, verbose=0)
    np.testing.assert_array_equal(first, augmented.predict(x, verbose=0))
    np.testing.assert_allclose(first, plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    off = arch.build({**arch.DEFAULT, **ALL_OFF}, (28, 28, 1), 5)
    assert _layers(off) == _layers(plain) and off.count_params() == plain.count_params()


def test_augmentation_changes_training_images() -> None:
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((8, 28, 28, 1), np.float32)
    for name in AUGMENTATIONS:
        params = {name: True if AUGMENTATIONS[name] is None else AUGMENTATIONS[name][1]}
        (layer,) = augmentation(params)
        assert not np.array_equal(keras.ops.convert_to_numpy(layer(x, training=True)), x), name
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    assert augmentation({"augment": True, "augment_translate": 0.0, "augment_flip": False}) == []


def test_label_smoothing_loss_is_categorical_crossentropy_on_smoothed_one_hot() -> None:
    assert type(make_loss({})) is keras.losses.SparseCategoricalCrossentropy
    assert type(make_loss({"label_smoothing": 0.0})) is keras.losses.SparseCategoricalCrossentropy
    y = np.array([0, 2, 1], np.int32)
    pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]], np.float32)
    smoothed = np.eye(3)[y] * 0.9 + 0.1 / 3
    expected = -np.sum(smoothed * np.log(pred), axis=1)
    per_image = make_loss({"label_smoothing": 0.1}, reduction=None)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(per_image(y, pred)), expected, rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(per_image(y[:, None], pred)), expected, rtol=1e-5)
    mean = make_loss({"label_smoothing": 0.1})
    assert float(mean(y, pred)) == pytest.approx(expected.mean(), rel=1e-5)
    assert SmoothedSparseCrossentropy.from_config(mean.get_config()).label_smoothing == 0.1


@pytest.mark.parametrize("schedule", sorted(LR_SCHEDULES))
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_schedules_and_weight_decay_in_every_optimizer(optimizer: str, schedule: str) -> None:
    rate = LEARNING_RATES[optimizer][0]
    params = {"optimizer": optimizer, "learning_rate": rate, "lr_schedule": schedule, "weight_decay": 1e-3}
    built = make_optimizer(params, steps=100)
    # Each optimizer keeps its class with weight decay on (Keras decays in all of them); Adam becomes AdamW.
    assert type(built) is {"sgd": keras.optimizers.SGD, "sgd_nesterov": DecayedSGD, "adam": keras.optimizers.AdamW,
                           "adadelta": keras.optimizers.Adadelta}[optimizer]
    assert built.weight_decay == 1e-3
    start, warmup = LR_SCHEDULES[schedule]
    variable = keras.Variable(np.ones(2, np.float32))
    built.build([variable])
    decay = built.decay if isinstance(built, DecayedSGD) else 0.0  # SGD-N's Keras 2 decay still applies
    for step, expected in ((0, rate * start), (int(100 * warmup), rate), (100, 0.0)):
        built.iterations.assign(step)
        assert float(built.learning_rate) == pytest.approx(expected / (1 + decay * step), rel=1e-4, abs=1e-9)
    built.iterations.assign(int(100 * warmup))
    built.apply([np.zeros(2, np.float32)], [variable])  # no gradient: only the decoupled weight decay acts
    assert float(variable.numpy()[0]) == pytest.approx(1 - 1e-3 * rate / (1 + decay * 100 * warmup), rel=1e-4)


def test_schedule_needs_steps_and_excludes_plateau() -> None:
    params = {"optimizer": "adam", "learning_rate": 1e-3, "lr_schedule": "cosine", "reduce_lr": True}
    with pytest.raises(ValueError, match="needs the number of training steps"):
        make_optimizer(params)
    with pytest.raises(ValueError, match="ReduceLROnPlateau cannot lower a scheduled learning rate"):
        make_callbacks(params)
    assert training_steps(65, 32, 3) == 9  # 3 batches per epoch, the last one partial


@pytest.mark.parametrize("name", spaces.names())
def test_every_lever_on_trains(name: str, tiny_data: Path) -> None:
    """Every lever on, a schedule each (two epochs, 64 images; the DEFAULTs are the cheap configurations)."""
    arch = spaces.get(name)
    data = load_dataset(tiny_data, 64)
    schedule = sorted(LR_SCHEDULES)[spaces.names().index(name) % len(LR_SCHEDULES)]
    params = {**arch.DEFAULT, **ALL_ON, "lr_schedule": schedule, "batch_size": 32}
    params.pop("reduce_lr")
    history = train(arch, params, data, 2, 3).history.rows
    assert len(history) == 2 and all(math.isfinite(row["loss"]) for row in history)
    assert 0 <= history[-1]["accuracy"] <= 1 and 0 <= history[-1]["val_accuracy"] <= 1
    assert history[1]["learning_rate"] != history[0]["learning_rate"]  # the schedule moved the rate


def test_model_with_every_lever_saves_and_reloads(tmp_path: Path) -> None:
    """export-best's model.keras reloads with its augmentation layers, smoothed loss, schedule and AdamW."""
    arch = spaces.get("lenet")
    params = {**arch.DEFAULT, **ALL_ON, "lr_schedule": "cosine"}
    model = arch.build(params, (28, 28, 1), 5)
    model.compile(optimizer=make_optimizer(params, steps=10), loss=make_loss(params), metrics=["accuracy"])
    x, y = np.random.default_rng(0).random((8, 28, 28, 1), np.float32), np.arange(8, dtype=np.int32) % 5
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(reloaded.loss) is SmoothedSparseCrossentropy and type(reloaded.optimizer) is keras.optimizers.AdamW
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_run_stopped_at_the_best_epoch_keeps_the_schedule_span(tiny_data: Path) -> None:
    """export-best and confirm retrain to a trial's best epoch: with the schedule spanning the trial's epochs, that
    run repeats the trial's first epochs exactly (same rates, same scores); squeezed into fewer epochs, it would not."""
    arch = spaces.get("lenet")
    data = load_dataset(tiny_data, 64)
    params = {**arch.DEFAULT, "lr_schedule": "cosine"}
    params.pop("reduce_lr")
    trial = train(arch, params, data, 4, 3).history.rows
    again = train(arch, params, data, 2, 3, schedule_epochs=4).history.rows
    squeezed = train(arch, params, data, 2, 3).history.rows
    for key in ("learning_rate", "loss", "val_accuracy"):
        assert [row[key] for row in again] == pytest.approx([row[key] for row in trial[:2]], rel=1e-5), key
    assert squeezed[1]["learning_rate"] != pytest.approx(trial[1]["learning_rate"], rel=1e-3)


def test_spaces_load_model_reloads_hpsearch_classes_in_a_fresh_process(tmp_path: Path) -> None:
    """The README's way to reload an export: `import spaces` alone registered neither DecayedSGD nor the smoothed
    loss (the architecture modules load lazily), so keras.saving.load_model failed on both."""
    arch = spaces.get("lenet")
    params = {**arch.DEFAULT, **ALL_ON, "optimizer": "sgd_nesterov", "use_weight_decay": False, "weight_decay": 0.0}
    model = arch.build(params, (28, 28, 1), 5)
    model.compile(optimizer=make_optimizer(params), loss=make_loss(params), metrics=["accuracy"])
    x, y = np.random.default_rng(0).random((8, 28, 28, 1), np.float32), np.arange(8, dtype=np.int32) % 5
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    script = ("import sys, spaces; model = spaces.load_model(sys.argv[1]); "
              "print(type(model.optimizer).__name__, type(model.loss).__name__)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.keras")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["DecayedSGD", "SmoothedSparseCrossentropy"]
