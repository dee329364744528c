"""Shared pieces of every architecture: the training search space, optimizers, callbacks and layer blocks."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from spaces._keras2 import DecayedSGD
from spaces._levers import CONSTANT, WEIGHT_DECAYS, augmentation, learning_rate, suggest_levers, suggest_schedule
from spaces.param_names import stored_name

Params = dict[str, Any]

# The notebook's optimizers by name: (Keras class, fixed arguments). "sgd_nesterov" is the notebook's SGD-N,
# SGD(lr, decay=1e-6, momentum=0.9, nesterov=True) in Keras 2; its `decay` lives on in DecayedSGD.
OPTIMIZER_TABLE: dict[str, tuple[type[keras.optimizers.Optimizer], dict[str, Any]]] = {
    "sgd": (keras.optimizers.SGD, {}),
    "sgd_nesterov": (DecayedSGD, {"momentum": 0.9, "nesterov": True, "decay": 1e-6}),
    "adam": (keras.optimizers.Adam, {}),
    "adadelta": (keras.optimizers.Adadelta, {}),
}
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
OPTIMIZERS = tuple(OPTIMIZER_TABLE)
assert set(LEARNING_RATES) == set(OPTIMIZERS), "every optimizer needs a learning-rate range"
assert set(WEIGHT_DECAYS) == set(OPTIMIZERS), "every optimizer needs a weight-decay range"
# Keras 3's AdamW is Adam with weight decay (every Keras optimizer decays decoupled); the class is swapped so that
# saved models and reports name it.
WITH_WEIGHT_DECAY: dict[str, type[keras.optimizers.Optimizer]] = {"adam": keras.optimizers.AdamW}


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
    """Sample the dropout rate applied after pooling blocks and dense layers."""
    return {"dropout": trial.suggest_float("dropout", 0.0, 0.6, step=0.05)}


def suggest_bn_momentum(trial: Any) -> Params:
    """Sample how fast batch normalization's moving statistics follow the batches."""
    return {"bn_momentum": trial.suggest_categorical("bn_momentum", BN_MOMENTA)}


def suggest_batch_norm(trial: Any) -> Params:
    """Sample whether convolutions are followed by batch normalization, and its momentum when they are."""
    params: Params = {"batch_norm": trial.suggest_categorical("batch_norm", (False, True))}
    return {**params, **suggest_bn_momentum(trial)} if params["batch_norm"] else params


def make_optimizer(params: Params, steps: int | None = None) -> keras.optimizers.Optimizer:
    """Build the Keras optimizer named by params (see OPTIMIZER_TABLE) at its learning rate, or its schedule over
    `steps` training steps (spaces._levers.training_steps), with weight decay where params ask for it."""
    if params["optimizer"] not in OPTIMIZER_TABLE:
        raise ValueError(f"unknown optimizer {params['optimizer']!r}; expected one of {', '.join(OPTIMIZERS)}")
    optimizer_class, arguments = OPTIMIZER_TABLE[params["optimizer"]]
    if params.get("weight_decay"):
        optimizer_class = WITH_WEIGHT_DECAY.get(params["optimizer"], optimizer_class)
        arguments = {**arguments, "weight_decay": float(params["weight_decay"])}
    return optimizer_class(learning_rate=learning_rate(params, steps), **arguments)


def make_callbacks(params: Params) -> list[keras.callbacks.Callback]:
    """Training callbacks that params switch on (ReduceLROnPlateau as in the notebook)."""
    if not params.get("reduce_lr"):
        return []
    if params.get("lr_schedule", CONSTANT) != CONSTANT:
        raise ValueError("ReduceLROnPlateau cannot lower a scheduled learning rate; choose one of the two")
    return [keras.callbacks.ReduceLROnPlateau(**PLATEAU, verbose=0)]


def model_input(input_shape: Sequence[int], size: int,
                params: Params) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The model's (height, width, channels) input, augmented in training as params ask, then upscaled inside
    the model to at least size x size.

    `size` is the smallest side the architecture's layers take (its INPUT_SIZE): a smaller height or
    width is resized up to it, larger ones are kept (pass --image-size to shrink big images). Augmentation
    runs before the upscaling, on fewer pixels."""
    height, width, _ = input_shape
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for layer in augmentation(params):
        x = layer(x)
    target = (max(height, size), max(width, size))
    x = x if target == (height, width) else layers.Resizing(*target)(x)
    return inputs, x


def activation(params: Params) -> layers.Layer:
    """The activation layer params ask for: ReLU, tanh, or LeakyReLU with its slope."""
    if params["activation"] == "leaky_relu":
        return layers.LeakyReLU(negative_slope=params["leaky_slope"])
    return layers.Activation(params["activation"])


def conv_block(x: keras.KerasTensor, filters: int, kernel: int, params: Params, *,
               strides: int = 1, padding: str = "same", batch_norm: bool | None = None,
               act: bool = True) -> keras.KerasTensor:
    """Conv2D, then batch normalization if asked, then the activation."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding)(x)
    if params.get("batch_norm", False) if batch_norm is None else batch_norm:
        x = batch_normalization(params)(x)
    return activation(params)(x) if act else x


def batch_normalization(params: Params) -> layers.Layer:
    """A BatchNormalization layer with the params' momentum (the notebook's models leave it at Keras')."""
    return layers.BatchNormalization(momentum=params.get("bn_momentum", NOTEBOOK_BN_MOMENTUM))


def classifier_head(x: keras.KerasTensor, dense_units: Sequence[int], params: Params, num_classes: int, *,
                    dropout: float | None = None, leaky_after: float | None = None) -> keras.KerasTensor:
    """Dense layers with activation and dropout (params' unless given), then the softmax output (float32).

    `leaky_after` adds a LeakyReLU with that slope after each dense layer's activation, as the notebook's
    CNN model 4 did after its relu Dense(256)."""
    for units in dense_units:
        x = layers.Dense(units)(x)
        x = activation(params)(x)
        if leaky_after is not None:
            x = layers.LeakyReLU(negative_slope=leaky_after)(x)
        x = layers.Dropout(params["dropout"] if dropout is None else dropout)(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
