"""Accuracy levers shared by every architecture: augmentation, label smoothing, weight decay, schedules.

All of them live in the model (augmentation layers, inactive at inference), the loss or the optimizer, so they
run on the device with the rest of a training step. A lever's param ABSENT from params means the lever is off:
the notebook's models and each architecture's DEFAULT, written before the levers, train exactly as before.
Here is what the search samples; the layers, schedules and loss they make are in spaces._blocks."""
from __future__ import annotations

import math
from typing import Any

import optuna

from spaces.param_names import stored_name

Params = dict[str, Any]

# Augmentations in the order they run, right after the input, and the values searched for each: a float range
# (low, high, step) with 0 meaning off, or None for on/off. Their layers: spaces._blocks.AUGMENTATION_LAYERS.
AUGMENTATIONS: dict[str, tuple[float, float, float] | None] = {
    "augment_translate": (0.0, 0.15, 0.025), "augment_flip": None, "augment_erasing": (0.0, 0.5, 0.1),
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


def handed(trial: Any, name: str) -> bool:
    """Whether the trial was handed a value for param `name` (a notebook model, the warm start, a replay)."""
    given = _given(trial)
    return given is not None and name in given


def asks(trial: Any, name: str) -> bool:
    """Whether to ask the trial for lever `name`: a trial handed params without it (a notebook model, the warm
    start, a replay) runs as given, with the lever off and not recorded."""
    return _given(trial) is None or handed(trial, name)


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
            for name, spec in AUGMENTATIONS.items():
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


def training_steps(n_train: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps in a run: batches per epoch (the last one partial) times epochs."""
    return math.ceil(n_train / batch_size) * epochs
