"""ResNet: a 7x7/2 stem (or, as a lever, 3x3/1), stages of two-convolution residual blocks, pooling, softmax."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spaces._common import (
    NOTEBOOK_BN_MOMENTUM,
    Params,
    suggest_activation,
    suggest_bn_momentum,
    suggest_dropout,
    suggest_training,
)
from spaces._levers import asks
from spaces._notebook import NotebookModel, Reported, seed_params

if TYPE_CHECKING:
    import keras  # imported by build(): the tables and the space above are read without Keras

NAME = "resnet"
INPUT_SIZE = 28

# The stem, the convolution before the first block: (kernel, strides). ABSENT from params it is "notebook", ResNet-18's
# ImageNet stem (7x7 at stride 2), which halves a 28x28 image before any block sees it. "small" is the stem of
# the CIFAR ResNets and wide ResNets: 3x3 at stride 1, so every stage works on twice the height and width (about
# 4x the computation; with 4 stages and no stem pooling the last one sees 4x4 pixels instead of 2x2).
STEMS: dict[str, tuple[int, int]] = {"notebook": (7, 2), "small": (3, 1)}

# Model 1 is ResNet-18's body (4 stages x 2 blocks, 64-512 filters) with biased convolutions and
# an unnormalized 1x1 projection shortcut, as the notebook built it: 11,183,621 parameters.
_RESNET18: Params = {"stages": 4, "blocks": 2, "base_filters": 64, "stem_maxpool": False,
                     "dropout": 0.0, "activation": "relu", "optimizer": "adam",
                     "learning_rate": 0.001, "batch_size": 64, "reduce_lr": False,
                     "bn_momentum": NOTEBOOK_BN_MOMENTUM}
# 50 epochs each, no ReduceLROnPlateau. The notebook's convolutions also used he_normal initialization and an
# L2(1e-4) penalty, which this space does not model (parameter counts are unaffected).
NOTEBOOK: dict[str, NotebookModel] = {
    "model1": NotebookModel(_RESNET18, 50, Reported(0.8656, 0.5257, 1824.54, 11_183_621)),
    "model2": NotebookModel({**_RESNET18, "stem_maxpool": True, "batch_size": 32}, 50,
                            Reported(0.8487, 0.5429, 2306.29, 11_183_621)),
    "model3": NotebookModel({**_RESNET18, "optimizer": "sgd", "learning_rate": 0.01}, 50,
                            Reported(0.5820, 2.1792, 1596.53, 11_183_621)),
}
SEED_MODELS: dict[str, Params] = seed_params(NOTEBOOK)

# The first trial of a new study (`--no-warm-start` skips it): a small ResNet (3 stages of one block,
# 32-128 filters) with Adam at 1e-3 and batch-norm momentum 0.9. Measured on 2,000 fashion10 images, 4 epochs,
# seeds 1-3: 0.816 validation accuracy, against 0.142 with Keras' default momentum 0.99.
DEFAULT: Params = {**_RESNET18, "stages": 3, "blocks": 1, "base_filters": 32, "reduce_lr": True,
                   "bn_momentum": 0.9}


def suggest(trial: Any, levers: bool = True) -> Params:
    """Sample depth (stages, blocks per stage), width, stem pooling, training settings
    and the accuracy levers (spaces._levers; none when levers is False)."""
    return {
        "stages": trial.suggest_int("stages", 2, 4),
        "blocks": trial.suggest_int("blocks", 1, 2),
        "base_filters": trial.suggest_categorical("base_filters", (16, 32, 64)),
        "stem_maxpool": trial.suggest_categorical("stem_maxpool", (False, True)),
        **suggest_bn_momentum(trial), **suggest_dropout(trial), **suggest_activation(trial),
        **suggest_training(trial, levers), **_suggest_stem(trial, levers),
    }


def _suggest_stem(trial: Any, levers: bool) -> Params:
    """Sample the stem with the accuracy levers; a trial handed params without one keeps the notebook's."""
    return {"stem": trial.suggest_categorical("stem", tuple(STEMS))} if levers and asks(trial, "stem") else {}


def _residual_block(x: keras.KerasTensor, filters: int, strides: int, params: Params) -> keras.KerasTensor:
    """Two 3x3 convolutions with batch norm, added to the input (projected when its shape changes)."""
    from keras import layers

    from spaces._blocks import activation, conv_block

    y = conv_block(x, filters, 3, params, strides=strides, batch_norm=True)
    y = conv_block(y, filters, 3, params, batch_norm=True, act=False)
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides)(x)
    return activation(params)(layers.Add()([y, shortcut]))


def build(params: Params, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the ResNet described by params (uncompiled)."""
    import keras
    from keras import layers

    from spaces._blocks import classifier_head, conv_block, model_input

    inputs, x = model_input(input_shape, INPUT_SIZE, params)
    kernel, strides = STEMS[params.get("stem", "notebook")]
    x = conv_block(x, params["base_filters"], kernel, params, strides=strides, batch_norm=True)
    if params["stem_maxpool"]:
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage in range(params["stages"]):
        for block in range(params["blocks"]):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(x, params["base_filters"] * 2**stage, strides, params)
    x = layers.Dropout(params["dropout"])(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, classifier_head(x, [], params, num_classes), name=NAME)
