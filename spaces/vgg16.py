"""VGG: stacks of 3x3 convolutions between max-pools, on images resized up to at least 48x48; depth from a table."""
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

NAME = "vgg16"
INPUT_SIZE = 48

# One table drives every depth: numbers are conv filters, "M" a 2x2 max-pool (as timm's vgg cfgs).
CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}

# SGD() is Keras 2's plain SGD at 0.01; 50 epochs each, no ReduceLROnPlateau. Model 3's heading says 30
# epochs, its log "Epoch 50/50": 50 here. (The notebook's model 2 was not kept.)
_VGG16: Params = {"depth": 16, "dense_units": 4096, "dropout": 0.5, "batch_norm": False,
                  "activation": "relu", "optimizer": "sgd", "learning_rate": 0.01,
                  "batch_size": 64, "reduce_lr": False}
NOTEBOOK: dict[str, NotebookModel] = {
    "model1": NotebookModel(_VGG16, 50, Reported(0.8603, 0.6540, 1751.95, 33_616_581)),
    "model3": NotebookModel({**_VGG16, "optimizer": "adam", "learning_rate": 0.001}, 50,
                            Reported(0.1970, 1.6096, 1238.64, 33_616_581)),
}
SEED_MODELS: dict[str, Params] = seed_params(NOTEBOOK)

# The first trial of a new study (`--no-warm-start` skips it): VGG-11 with batch norm at momentum 0.9, a
# 512-wide head and Adam at 1e-3. Measured on 2,000 fashion10 images, 4 epochs, seeds 1-3: 0.773 validation
# accuracy; 0.521 without batch norm, 0.167 with it at Keras' momentum 0.99.
DEFAULT: Params = {**_VGG16, "depth": 11, "dense_units": 512, "batch_norm": True, "bn_momentum": 0.9,
                   "optimizer": "adam", "learning_rate": 0.001, "reduce_lr": True}


def suggest(trial: Any, levers: bool = True) -> Params:
    """Sample depth (11/13/16), head width, regularization, activation, training settings
    and the accuracy levers (spaces._levers; none when levers is False)."""
    return {
        "depth": trial.suggest_categorical("depth", tuple(CFGS)),
        "dense_units": trial.suggest_categorical("dense_units", (512, 1024, 2048, 4096)),
        **suggest_dropout(trial), **suggest_batch_norm(trial), **suggest_activation(trial),
        **suggest_training(trial, levers),
    }


def build(params: Params, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the VGG described by params (uncompiled); a smaller input is resized up to 48x48 inside."""
    import keras
    from keras import layers

    from spaces._blocks import classifier_head, conv_block, flattened, model_input

    inputs, x = model_input(input_shape, INPUT_SIZE, params)
    for item in CFGS[params["depth"]]:
        x = layers.MaxPooling2D()(x) if item == "M" else conv_block(x, int(item), 3, params)
    units = params["dense_units"]
    outputs = classifier_head(flattened(x, input_shape, INPUT_SIZE), [units, units], params, num_classes)
    return keras.Model(inputs, outputs, name=NAME)
