"""LeNet-5: two 5x5 convolutions with pooling and a two-layer dense head, classic or modern."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spaces._common import (
    Params,
    suggest_activation,
    suggest_batch_norm,
    suggest_dropout,
    suggest_training,
)
from spaces._notebook import NotebookModel, Reported, seed_params

if TYPE_CHECKING:
    import keras  # imported by build(): the tables and the space above are read without Keras

NAME = "lenet"
INPUT_SIZE = 28

# Layouts as data. The classic one pools with stride 1 after the first convolution, as the
# notebook did (which is why it has 245,601 parameters rather than LeNet's usual 61k).
VARIANTS: dict[str, dict[str, Any]] = {
    "classic": {"filters": (6, 16), "dense": (120, 84), "first_pool_strides": 1},
    "modern": {"filters": (32, 48), "dense": (256, 84), "first_pool_strides": 2},
}
_POOLING = {"avg": "AveragePooling2D", "max": "MaxPooling2D"}  # Keras layer classes

# None of the notebook's LeNets used dropout, batch norm or ReduceLROnPlateau. Seconds are its timers.
_MODERN: Params = {"variant": "modern", "pooling": "max", "activation": "relu", "dropout": 0.0,
                   "batch_norm": False, "optimizer": "adam", "learning_rate": 0.001, "batch_size": 64,
                   "reduce_lr": False}
NOTEBOOK: dict[str, NotebookModel] = {
    # Its heading and summary table say Adam(lr=0.01); the code cell that compiled it says Adam() (0.001).
    # The code is what ran, so 0.001 here.
    "model1": NotebookModel({**_MODERN, "variant": "classic", "pooling": "avg", "activation": "tanh"}, 80,
                            Reported(0.8618, 0.5924, 332.46, 245_601)),
    "model2": NotebookModel({**_MODERN, "learning_rate": 0.0005}, 80, Reported(0.8711, 0.9235, 319.34, 368_749)),
    "model3": NotebookModel({**_MODERN, "learning_rate": 0.01}, 80, Reported(0.8464, 0.7129, 323.23, 368_749)),
    "model4": NotebookModel({**_MODERN, "batch_size": 32}, 150, Reported(0.8721, 1.34, 1098.06, 368_749)),
    "model5": NotebookModel({**_MODERN, "optimizer": "sgd", "learning_rate": 0.0001, "batch_size": 32}, 200,
                            Reported(0.8498, 0.3898, 1193.45, 368_749)),
}
SEED_MODELS: dict[str, Params] = seed_params(NOTEBOOK)

# The first trial of a new study (`--no-warm-start` skips it): the modern layout with Adam at 1e-3. Measured on
# 3,000 fashion10 images, 6 epochs, seeds 1-3: 0.839 validation accuracy (with batch norm at Keras' momentum
# 0.99: 0.574).
DEFAULT: Params = {**_MODERN, "dropout": 0.25, "reduce_lr": True}


def suggest(trial: Any, levers: bool = True) -> Params:
    """Sample the variant, pooling kind, activation (tanh too), regularization, training settings
    and the accuracy levers (spaces._levers; none when levers is False)."""
    return {
        "variant": trial.suggest_categorical("variant", tuple(VARIANTS)),
        "pooling": trial.suggest_categorical("pooling", tuple(_POOLING)),
        **suggest_activation(trial, ("tanh", "relu", "leaky_relu")),
        **suggest_dropout(trial), **suggest_batch_norm(trial), **suggest_training(trial, levers),
    }


def build(params: Params, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the LeNet described by params (uncompiled)."""
    import keras
    from keras import layers

    from spaces._blocks import classifier_head, conv_block, flattened, model_input

    layout = VARIANTS[params["variant"]]
    pool = getattr(layers, _POOLING[params["pooling"]])
    inputs, x = model_input(input_shape, INPUT_SIZE, params)
    first, second = layout["filters"]
    x = conv_block(x, first, 5, params, padding="same")
    x = pool(2, strides=layout["first_pool_strides"])(x)
    x = conv_block(x, second, 5, params, padding="valid")
    x = layers.Dropout(params["dropout"])(pool(2)(x))
    outputs = classifier_head(flattened(x, input_shape, INPUT_SIZE), layout["dense"], params, num_classes)
    return keras.Model(inputs, outputs, name=NAME)
