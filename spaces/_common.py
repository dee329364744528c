"""Shared pieces of every architecture's search space: optimizers and their learning rates, batch sizes,
activations, dropout and batch normalization. Their Keras side (layers, optimizers) is spaces._blocks."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spaces._levers import WEIGHT_DECAYS, suggest_levers, suggest_schedule
from spaces.param_names import stored_name

Params = dict[str, Any]

# The notebook's optimizers by name (their Keras classes: spaces._blocks.OPTIMIZER_TABLE). "sgd_nesterov" is the
# notebook's SGD-N, SGD(lr, decay=1e-6, momentum=0.9, nesterov=True) in Keras 2.
OPTIMIZERS = ("sgd", "sgd_nesterov", "adam", "adadelta")
BATCH_SIZES = (32, 64, 128, 256)
ACTIVATIONS = ("relu", "leaky_relu")
# Batch normalization's momentum. Keras' default (0.99, Keras 2's too, so the notebook's models keep it)
# averages the moving statistics over hundreds of steps, and a short trial validates with statistics that
# have not settled: measured on 2,000-3,000 images for 4-6 epochs, a batch-normalized CNN reached 0.39
# validation accuracy and ResNet 0.14, against 0.86 for the CNN without it. 0.9 settles in tens of steps.
BN_MOMENTA = (0.9, 0.99)
NOTEBOOK_BN_MOMENTUM = 0.99
# The notebook's ReduceLROnPlateau settings.
PLATEAU = {"monitor": "val_accuracy", "mode": "max", "patience": 3, "factor": 0.5, "min_lr": 1e-5}


# Learning-rate range of each optimizer. One range for all (1e-4..0.3) wasted trials: measured on LeNet and
# the CNN (fashion10, 3,000 images, 2 epochs, batch 32 and 256), SGD learned little below 0.01 and diverged
# at 0.3, SGD+Nesterov diverged at 0.1, Adam fell off above 5e-3 and at 1e-4, Adadelta needs 0.1 and more
# (its Keras 2 default was 1.0, inside its range). The notebook's models keep their settings, inside or not.
LEARNING_RATES: dict[str, tuple[float, float]] = {
    "sgd": (0.01, 0.15), "sgd_nesterov": (0.002, 0.05), "adam": (2e-4, 5e-3), "adadelta": (0.1, 3.0),
}
assert set(LEARNING_RATES) == set(OPTIMIZERS), "every optimizer needs a learning-rate range"
assert set(WEIGHT_DECAYS) == set(OPTIMIZERS), "every optimizer needs a weight-decay range"


def suggest_training(trial: Any, levers: bool = True) -> Params:
    """Sample the training hyperparameters that every architecture shares; the learning rate's range
    depends on the optimizer, and Optuna stores it under the optimizer's name for it (spaces.param_names).
    `levers` adds the accuracy levers (spaces._levers)."""
    optimizer = trial.suggest_categorical("optimizer", OPTIMIZERS)
    low, high = LEARNING_RATES[optimizer]
    return {
        "optimizer": optimizer,
        "learning_rate": trial.suggest_float(stored_name("learning_rate", optimizer), low, high, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        **suggest_schedule(trial, levers), **suggest_levers(trial, optimizer, levers),
    }


def suggest_activation(trial: Any, choices: Sequence[str] = ACTIVATIONS) -> Params:
    """Sample the activation; LeakyReLU brings its slope along."""
    params: Params = {"activation": trial.suggest_categorical("activation", tuple(choices))}
    if params["activation"] == "leaky_relu":
        params["leaky_slope"] = trial.suggest_float("leaky_slope", 0.01, 0.3, log=True)
    return params


def suggest_dropout(trial: Any) -> Params:
    """Sample the dropout rate of the blocks and dense layers that use it (each builder says where)."""
    return {"dropout": trial.suggest_float("dropout", 0.0, 0.6, step=0.05)}


def suggest_bn_momentum(trial: Any) -> Params:
    """Sample how fast batch normalization's moving statistics follow the batches."""
    return {"bn_momentum": trial.suggest_categorical("bn_momentum", BN_MOMENTA)}


def suggest_batch_norm(trial: Any) -> Params:
    """Sample whether convolutions are followed by batch normalization, and its momentum when they are."""
    params: Params = {"batch_norm": trial.suggest_categorical("batch_norm", (False, True))}
    return {**params, **suggest_bn_momentum(trial)} if params["batch_norm"] else params
