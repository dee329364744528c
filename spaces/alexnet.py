"""AlexNet: five convolutions (96@11x11 first) with overlapping max-pools, on images resized up to at least 48x48."""
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

NAME = "alexnet"
INPUT_SIZE = 48

# (filters, kernel, padding, max-pool after). On 48x48 the first convolution runs at stride 1,
# so 3x3/2 pools leave 3x3x256 for the head: 29,967,045 parameters with a 4096/4096 head.
LAYERS: list[tuple[int, int, str, bool]] = [
    (96, 11, "valid", True), (256, 5, "same", True),
    (384, 3, "same", False), (384, 3, "same", False), (256, 3, "same", True),
]

# 50 epochs each at batch 64, no ReduceLROnPlateau; SGD() is plain SGD at 0.01, Adadelta() Keras 2's at 1.0.
_ALEXNET: Params = {"dense_units": 4096, "dropout": 0.5, "batch_norm": False, "activation": "relu",
                    "optimizer": "sgd", "learning_rate": 0.01, "batch_size": 64, "reduce_lr": False}
NOTEBOOK: dict[str, NotebookModel] = {
    "model1": NotebookModel(_ALEXNET, 50, Reported(0.8742, 0.4172, 737.99, 29_967_045)),
    "model2": NotebookModel({**_ALEXNET, "optimizer": "adam", "learning_rate": 0.001}, 50,
                            Reported(0.8602, 0.4484, 964.74, 29_967_045)),
    "model3": NotebookModel({**_ALEXNET, "optimizer": "adadelta", "learning_rate": 1.0}, 50,
                            Reported(0.8524, 1.1783, 1089.75, 29_967_045)),
}
SEED_MODELS: dict[str, Params] = seed_params(NOTEBOOK)

# The first trial of a new study (`--no-warm-start` skips it): a 1024-wide head, Adam at 1e-3. Measured on
# 2,000 fashion10 images, 4 epochs, seeds 1-3: 0.761 validation accuracy (with batch norm at Keras'
# momentum 0.99: 0.211).
DEFAULT: Params = {**_ALEXNET, "dense_units": 1024, "batch_norm": False, "optimizer": "adam",
                   "learning_rate": 0.001, "reduce_lr": True}


def suggest(trial: Any, levers: bool = True) -> Params:
    """Sample head width, regularization, activation, training settings
    and the accuracy levers (spaces._levers; none when levers is False)."""
    return {
        "dense_units": trial.suggest_categorical("dense_units", (512, 1024, 2048, 4096)),
        **suggest_dropout(trial), **suggest_batch_norm(trial), **suggest_activation(trial),
        **suggest_training(trial, levers),
    }


def build(params: Params, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the AlexNet described by params (uncompiled); a smaller input is resized up to 48x48 inside."""
    import keras
    from keras import layers

    from spaces._blocks import classifier_head, conv_block, flattened, model_input

    inputs, x = model_input(input_shape, INPUT_SIZE, params)
    for filters, kernel, padding, pool in LAYERS:
        x = conv_block(x, filters, kernel, params, padding=padding)
        if pool:
            x = layers.MaxPooling2D(3, strides=2)(x)
    units = params["dense_units"]
    outputs = classifier_head(flattened(x, input_shape, INPUT_SIZE), [units, units], params, num_classes)
    return keras.Model(inputs, outputs, name=NAME)
