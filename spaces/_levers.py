"""Accuracy levers shared by every architecture: augmentation, label smoothing, weight decay, schedules.

All of them live in the model (augmentation layers, inactive at inference), the loss or the optimizer, so they
run on the device with the rest of a training step. A lever's param ABSENT from params means the lever is off:
the notebook's models and each architecture's DEFAULT, written before the levers, train exactly as before."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import keras
import optuna
from keras import layers, ops

from spaces.param_names import stored_name

Params = dict[str, Any]

# Augmentations in the order they run, right after the input: (values searched, layer at a strength). A float
# range (low, high, step) with 0 meaning off, or None for on/off. Translation fills with 0 and moves whole
# pixels, as the classic pad-and-crop does (Fashion-MNIST's background is 0). Erasing's strength is the chance
# that an image gets one noise patch of 2-33% of its area (Keras' default sizes; the paper erased with 0.5).
AUGMENTATIONS: dict[str, tuple[tuple[float, float, float] | None, Callable[[float], layers.Layer]]] = {
    "augment_translate": ((0.0, 0.15, 0.025), lambda factor: layers.RandomTranslation(
        factor, factor, fill_mode="constant", interpolation="nearest")),
    "augment_flip": (None, lambda _: layers.RandomFlip("horizontal")),
    "augment_erasing": ((0.0, 0.5, 0.1), lambda chance: layers.RandomErasing(
        factor=(chance, chance), value_range=(0.0, 1.0))),  # the inputs are scaled to [0, 1] (search.data)
}
LABEL_SMOOTHING = (0.0, 0.2, 0.05)  # (low, high, step); 0 is off
# Keras 3 decays weights decoupled from the gradient in every optimizer (AdamW's rule): each step shrinks them
# by weight_decay x learning rate. So each optimizer's range is about 1e-6..1e-4 of shrink per step at the
# middle of its learning-rate range (spaces._common.LEARNING_RATES); not measured yet.
WEIGHT_DECAYS: dict[str, tuple[float, float]] = {
    "sgd": (3e-5, 3e-3), "sgd_nesterov": (1e-4, 1e-2), "adam": (1e-3, 1e-1), "adadelta": (2e-6, 2e-4),
}
# Learning-rate schedules as keras.optimizers.schedules.CosineDecay: (start as a fraction of the learning rate,
# fraction of all steps spent warming up to it linearly); then a cosine down to 0 at the last step.
# "cosine": a short warm-up from a tenth (large rates on fresh weights can diverge), then SGDR's cosine without
# restarts. "one_cycle": Smith's one-cycle with PyTorch OneCycleLR's defaults (up from lr/25 over 30% of the
# steps, then down to ~0); its warm-up is linear rather than cosine, and momentum is not cycled.
LR_SCHEDULES: dict[str, tuple[float, float]] = {"cosine": (0.1, 0.05), "one_cycle": (1 / 25, 0.3)}
CONSTANT = "constant"  # no schedule: the learning rate stays, unless ReduceLROnPlateau lowers it


def _given(trial: Any) -> dict[str, Any] | None:
    """The params a trial was handed instead of sampling them (a FixedTrial's, an enqueued trial's), else None."""
    # Optuna has no public accessor for either; tests/test_levers.py checks both, so an upgrade that moves them
    # fails there. Trials of other kinds (bench/peers.py's KerasTuner adapter) sample every lever.
    if isinstance(trial, optuna.trial.FixedTrial):
        return trial._params
    if isinstance(trial, optuna.trial.Trial):
        return trial._fixed_params or None  # {} for a trial the sampler fills
    return None


def asks(trial: Any, name: str) -> bool:
    """Whether to ask the trial for lever `name`: a trial handed params without it (a notebook model, the warm
    start, a replay) runs as given, with the lever off and not recorded."""
    given = _given(trial)
    return given is None or name in given


def _suggest_range(trial: Any, name: str, spec: tuple[float, float, float]) -> float:
    """A float on the (low, high, step) grid of spec."""
    low, high, step = spec
    return trial.suggest_float(name, low, high, step=step)


def suggest_schedule(trial: Any, levers: bool = True) -> Params:
    """Sample the learning-rate schedule and, for a constant rate, ReduceLROnPlateau (Keras refuses to set the
    rate of an optimizer that follows a schedule, so the two exclude each other)."""
    params: Params = {}
    if levers and asks(trial, "lr_schedule"):
        params["lr_schedule"] = trial.suggest_categorical("lr_schedule", (CONSTANT, *LR_SCHEDULES))
    if params.get("lr_schedule", CONSTANT) == CONSTANT:
        params["reduce_lr"] = trial.suggest_categorical("reduce_lr", (False, True))
    return params


def suggest_levers(trial: Any, optimizer: str, levers: bool = True) -> Params:
    """Sample augmentation (on/off, then each one's strength), label smoothing and weight decay (on/off, then
    its rate in the optimizer's range); nothing when levers is False."""
    params: Params = {}
    if not levers:
        return params
    if asks(trial, "augment"):
        params["augment"] = trial.suggest_categorical("augment", (False, True))
        if params["augment"]:
            for name, (spec, _) in AUGMENTATIONS.items():
                params[name] = (_suggest_range(trial, name, spec) if spec
                                else trial.suggest_categorical(name, (False, True)))
    if asks(trial, "label_smoothing"):
        params["label_smoothing"] = _suggest_range(trial, "label_smoothing", LABEL_SMOOTHING)
    if asks(trial, "use_weight_decay"):
        params["use_weight_decay"] = trial.suggest_categorical("use_weight_decay", (False, True))
        if params["use_weight_decay"]:
            low, high = WEIGHT_DECAYS[optimizer]
            params["weight_decay"] = trial.suggest_float(stored_name("weight_decay", optimizer), low, high, log=True)
    return params


def augmentation(params: Params) -> list[layers.Layer]:
    """The augmentation layers params switch on, in order; Keras runs them only in training."""
    made = [make(float(params[name])) for name, (_, make) in AUGMENTATIONS.items() if params.get(name)]
    compilable_on_jax(made)
    return made


def compilable_on_jax(found: Iterable[layers.Layer]) -> int:
    """On JAX, mark the augmentation layers among `found` fit for XLA; how many were marked unfit before.

    Keras marks RandomTranslation unfit for XLA whatever the backend (TensorFlow's image transform is), and one such
    layer turns compilation off for the whole model: on JAX, model.fit then ran every training step op by op from
    Python (LeNet with these levers on the 2-core CPU: 17.6 s for its first epoch, 5.5 s compiled), and predict
    too. JAX's transform compiles; the on-device loop, which compiles by itself, always did. Loading a saved model
    builds its layers anew, so spaces.load_model marks them again."""
    if keras.backend.backend() != "jax":
        return 0
    kinds = (layers.RandomTranslation, layers.RandomFlip, layers.RandomErasing)  # what AUGMENTATIONS makes
    marked = [layer for layer in found if isinstance(layer, kinds) and not layer.supports_jit]
    for layer in marked:
        layer.supports_jit = True
    return len(marked)


def learning_rate(params: Params, steps: int | None) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The params' learning rate, or its schedule over `steps` training steps (all epochs)."""
    rate, schedule = float(params["learning_rate"]), params.get("lr_schedule", CONSTANT)
    if schedule == CONSTANT:
        return rate
    if not steps:
        raise ValueError(f"the {schedule!r} learning-rate schedule needs the number of training steps")
    start, warmup_fraction = LR_SCHEDULES[schedule]
    warmup = min(int(steps * warmup_fraction), steps - 1)
    return keras.optimizers.schedules.CosineDecay(rate * start, decay_steps=steps - warmup, warmup_target=rate,
                                                  warmup_steps=warmup)


def training_steps(n_train: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps in a run: batches per epoch (the last one partial) times epochs."""
    return math.ceil(n_train / batch_size) * epochs


@keras.saving.register_keras_serializable(package="hpsearch")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing on integer labels (Keras' sparse loss has no smoothing).

    Predictions are (batch, classes) probabilities; labels stay sparse everywhere else (data, metrics)."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str | None = "sum_over_batch_size",
                 name: str = "smoothed_sparse_categorical_crossentropy", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = label_smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-image loss: one-hot the labels inside, then smoothed categorical cross-entropy."""
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), y_pred.shape[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        """The Loss config plus the smoothing, so a saved model.keras reloads with it."""
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make_loss(params: Params, reduction: str | None = "sum_over_batch_size") -> keras.losses.Loss:
    """The training loss: sparse categorical cross-entropy, label-smoothed when params ask for it."""
    if params.get("label_smoothing"):
        return SmoothedSparseCrossentropy(float(params["label_smoothing"]), reduction=reduction)
    return keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
