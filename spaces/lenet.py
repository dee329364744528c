"""LeNet-5: two 5x5 convolutions with pooling and a two-layer dense head, classic or modern."""
from __future__ import annotations

from typing import Any

import keras
from keras import layers

from spaces._common import (Params, classifier_head, conv_block, model_input, suggest_activation,
                            suggest_batch_norm, suggest_dropout, suggest_training)

NAME = "lenet"
INPUT_SIZE = 28

# Layouts as data. The classic one pools with stride 1 after the first convolution, as the
# notebook did (which is why it has 245,601 parameters rather than LeNet's usual 61k).
VARIANTS: dict[str, dict[str, Any]] = {
    "classic": {"filters": (6, 16), "dense": (120, 84), "first_pool_strides": 1},
    "modern": {"filters": (32, 48), "dense": (256, 84), "first_pool_strides": 2},
}
_POOLING = {"avg": layers.AveragePooling2D, "max": layers.MaxPooling2D}

_MODERN: Params = {"variant": "modern", "pooling": "max", "activation": "relu", "dropout": 0.25,
                   "batch_norm": False, "optimizer": "adam", "learning_rate": 0.001, "batch_size": 64,
                   "reduce_lr": False}
SEED_MODELS: dict[str, Params] = {
    "model1": {"variant": "classic", "pooling": "avg", "activation": "tanh", "dropout": 0.0,
               "batch_norm": False, "optimizer": "sgd", "learning_rate": 0.01, "batch_size": 32,
               "reduce_lr": False},
    "model2": _MODERN,
    "model3": {**_MODERN, "optimizer": "sgd_nesterov", "learning_rate": 0.01, "batch_size": 32},
    "model4": {**_MODERN, "dropout": 0.5, "batch_size": 128, "reduce_lr": True},
    "model5": {**_MODERN, "activation": "leaky_relu", "leaky_slope": 0.1},
}

# The first trial of a new study (`--no-warm-start` skips it): the modern layout with Adam at 1e-3.
DEFAULT: Params = {**_MODERN, "batch_norm": True, "reduce_lr": True}


def suggest(trial: Any) -> Params:
    """Sample the variant, pooling kind, activation (tanh too), regularization and training settings."""
    return {
        "variant": trial.suggest_categorical("variant", tuple(VARIANTS)),
        "pooling": trial.suggest_categorical("pooling", tuple(_POOLING)),
        **suggest_activation(trial, ("tanh", "relu", "leaky_relu")),
        **suggest_dropout(trial), **suggest_batch_norm(trial), **suggest_training(trial),
    }


def build(params: Params, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the LeNet described by params (uncompiled)."""
    layout = VARIANTS[params["variant"]]
    pool = _POOLING[params["pooling"]]
    inputs, x = model_input(input_shape, INPUT_SIZE)
    first, second = layout["filters"]
    x = conv_block(x, first, 5, params, padding="same")
    x = pool(2, strides=layout["first_pool_strides"])(x)
    x = conv_block(x, second, 5, params, padding="valid")
    x = layers.Dropout(params["dropout"])(pool(2)(x))
    outputs = classifier_head(layers.Flatten()(x), layout["dense"], params, num_classes)
    return keras.Model(inputs, outputs, name=NAME)
