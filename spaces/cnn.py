"""The notebook's custom CNN: two blocks of two convolutions, max-pooling and dropout, then a dense head."""
from __future__ import annotations

from typing import Any

import keras
from keras import layers

from spaces._common import (Params, classifier_head, conv_block, model_input, suggest_activation,
                            suggest_batch_norm, suggest_dropout, suggest_training)

NAME = "cnn"
INPUT_SIZE = 28

_BASE: Params = {"filters1": 32, "kernel1": 5, "filters2": 64, "kernel2": 3, "dense_units": 256,
                 "dropout": 0.25, "batch_norm": False, "activation": "relu", "reduce_lr": False}
# Models 1-6 share the layers (886,245 parameters) and differ in training settings; model 7 adds
# batch normalization and ReduceLROnPlateau. The training settings are the notebook's own values.
SEED_MODELS: dict[str, Params] = {
    "model1": {**_BASE, "optimizer": "sgd_nesterov", "learning_rate": 0.01, "batch_size": 32},
    "model2": {**_BASE, "optimizer": "adam", "learning_rate": 0.001, "batch_size": 64},
    "model3": {**_BASE, "optimizer": "adadelta", "learning_rate": 0.001, "batch_size": 128},
    "model4": {**_BASE, "optimizer": "adam", "learning_rate": 0.0005, "batch_size": 128, "dropout": 0.5},
    "model5": {**_BASE, "optimizer": "adam", "learning_rate": 0.001, "batch_size": 64,
               "activation": "leaky_relu", "leaky_slope": 0.1},
    "model6": {**_BASE, "optimizer": "sgd", "learning_rate": 0.01, "batch_size": 32, "reduce_lr": True},
    "model7": {**_BASE, "optimizer": "sgd_nesterov", "learning_rate": 0.01, "batch_size": 32,
               "batch_norm": True, "reduce_lr": True},
}

# The first trial of a new study (`--no-warm-start` skips it): Adam at 1e-3, batch 64, batch norm and
# ReduceLROnPlateau; chosen from the learning-rate measurements in spaces/_common.py and the notebook's runs.
DEFAULT: Params = {"filters1": 32, "kernel1": 3, "filters2": 64, "kernel2": 3, "dense_units": 256,
                   "dropout": 0.25, "batch_norm": True, "activation": "relu", "optimizer": "adam",
                   "learning_rate": 0.001, "batch_size": 64, "reduce_lr": True}


def suggest(trial: Any) -> Params:
    """Sample filters, kernels, dense width, regularization, activation and training settings."""
    return {
        "filters1": trial.suggest_categorical("filters1", (16, 32, 64)),
        "kernel1": trial.suggest_categorical("kernel1", (3, 5)),
        "filters2": trial.suggest_categorical("filters2", (32, 64, 128)),
        "kernel2": trial.suggest_categorical("kernel2", (3, 5)),
        "dense_units": trial.suggest_categorical("dense_units", (128, 256, 512)),
        **suggest_dropout(trial), **suggest_batch_norm(trial), **suggest_activation(trial),
        **suggest_training(trial),
    }


def build(params: Params, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the CNN described by params (uncompiled)."""
    inputs, x = model_input(input_shape, INPUT_SIZE)
    for filters, kernel in ((params["filters1"], params["kernel1"]), (params["filters2"], params["kernel2"])):
        x = conv_block(x, filters, kernel, params)
        x = conv_block(x, filters, kernel, params)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(params["dropout"])(x)
    outputs = classifier_head(layers.Flatten()(x), [params["dense_units"]], params, num_classes)
    return keras.Model(inputs, outputs, name=NAME)
