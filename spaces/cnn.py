"""The notebook's custom CNN: two blocks of two convolutions, max-pooling and dropout, then a dense head."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spaces._common import (
    NOTEBOOK_BN_MOMENTUM,
    Params,
    suggest_activation,
    suggest_batch_norm,
    suggest_dropout,
    suggest_training,
)
from spaces._levers import handed
from spaces._notebook import NotebookModel, Reported, seed_params

if TYPE_CHECKING:
    import keras  # imported by build(): the tables and the space above are read without Keras

NAME = "cnn"
INPUT_SIZE = 28

# The notebook's LeakyReLU slope (alpha=0.1) for model 4's LeakyReLU after the relu Dense(256).
HEAD_LEAKY_SLOPE = 0.1
# Where batch normalization goes when batch_norm is on. "before_activation": after every convolution, before
# its activation. "notebook": model 7's own layout, BN after the activation of convolutions 1-3 and after the
# second block's dropout instead of after convolution 4 (same four BN layers: 768 parameters).
BATCH_NORM_LAYOUTS = ("before_activation", "notebook")
_NOTEBOOK_BN_AFTER_CONV = ((0, 0), (0, 1), (1, 0))  # (block, convolution)
_NOTEBOOK_BN_AFTER_BLOCK = (1,)

# Models 1-6 share the layers (886,245 parameters); the notebook trained every one for 50 epochs, with
# batch 32 except model 6. Reported: accuracies from its summary table, losses from each run's last line,
# seconds from its timers.
_BASE: Params = {"filters1": 32, "kernel1": 5, "filters2": 64, "kernel2": 3, "dense_units": 256,
                 "dropout": 0.25, "head_dropout": 0.25, "head_leaky_relu": False, "batch_norm": False,
                 "activation": "relu", "optimizer": "adam", "learning_rate": 0.001, "batch_size": 32,
                 "reduce_lr": False}
_PLATEAU: Params = {**_BASE, "reduce_lr": True}
_SGD_N: Params = {**_PLATEAU, "optimizer": "sgd_nesterov", "learning_rate": 0.01}
NOTEBOOK: dict[str, NotebookModel] = {
    "model1": NotebookModel(_BASE, 50, Reported(0.8880, 0.3498, 626.66, 886_245, train_accuracy=0.9345)),
    "model2": NotebookModel(_PLATEAU, 50, Reported(0.9068, 0.2798, 620.27, 886_245, train_accuracy=0.9569)),
    "model3": NotebookModel({**_PLATEAU, "head_dropout": 0.5}, 50,
                            Reported(0.9020, 0.2937, 620.14, 886_245, train_accuracy=0.9474)),
    # The notebook's title for model 6 mentions LeakyReLU; its code has none, and model 4's is here.
    "model4": NotebookModel({**_PLATEAU, "head_leaky_relu": True}, 50,
                            Reported(0.9048, 0.3230, 618.72, 886_245, train_accuracy=0.9684)),
    "model5": NotebookModel(_SGD_N, 50, Reported(0.9078, 0.2696, 534.04, 886_245, train_accuracy=0.9530)),
    # Batch 128 as its heading and the notebook's text say (its result line repeats "BS: 32"; its time is a third).
    "model6": NotebookModel({**_SGD_N, "batch_size": 128}, 50,
                            Reported(0.9073, 0.2311, 201.29, 886_245, train_accuracy=0.920)),
    "model7": NotebookModel({**_SGD_N, "batch_norm": True, "batch_norm_layout": "notebook",
                             "bn_momentum": NOTEBOOK_BN_MOMENTUM}, 50,
                            Reported(0.9112, 0.2488, 927.53, 887_013, train_accuracy=0.9514)),
}
SEED_MODELS: dict[str, Params] = seed_params(NOTEBOOK)

# The first trial of a new study (`--no-warm-start` skips it): the narrow end of the space (16 and 32 filters of
# 3x3, a 128-wide head), no dropout, Adam at 3e-3, batch 32, ReduceLROnPlateau, no batch norm. Measured with
# bench/defaults.py on 3,000 fashion10 images over 9 epochs: the narrow widths reached 0.864 validation accuracy
# (seeds 1-3) at 1.1-1.7 s a steady epoch, against 0.866 at 2.6-4.2 s for the notebook's widths at batch 64, so
# they are good sooner; Adam at 3e-3 instead of 1e-3 gave 0.800 after the first epoch instead of 0.765 (0.868 vs
# 0.864 after 9); then, on seeds 4-8, no dropout instead of 0.25 gave 0.808 / 0.849 after epochs 1 / 2 instead of
# 0.794 / 0.828, and 0.870 instead of 0.862 at best. Batch norm (momentum 0.9) ended at 0.873 (seeds 1-3) but
# made every epoch about a quarter slower. The search samples dropout and batch norm; this is only its start.
DEFAULT: Params = {**_PLATEAU, "filters1": 16, "kernel1": 3, "filters2": 32, "dense_units": 128, "learning_rate": 0.003,
                   "dropout": 0.0, "head_dropout": 0.0}


def suggest(trial: Any, levers: bool = True) -> Params:
    """Sample filters, kernels, dense width, dropouts, head LeakyReLU, batch norm, activation, training
    and the accuracy levers (spaces._levers; none when levers is False)."""
    return {
        "filters1": trial.suggest_categorical("filters1", (16, 32, 64)),
        "kernel1": trial.suggest_categorical("kernel1", (3, 5)),
        "filters2": trial.suggest_categorical("filters2", (32, 64, 128)),
        "kernel2": trial.suggest_categorical("kernel2", (3, 5)),
        "dense_units": trial.suggest_categorical("dense_units", (128, 256, 512)),
        **suggest_dropout(trial),
        "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.6, step=0.05),
        **_suggest_batch_norm_layout(trial), **_suggest_activation_and_head(trial), **suggest_training(trial, levers),
    }


def _suggest_activation_and_head(trial: Any) -> Params:
    """Sample the activation and, where it changes the model, the LeakyReLU after the head's dense layer: after
    a leaky_relu activation. After relu it is the identity (model 4's own), which to the sampler was a dimension
    of noise; a trial handed it (model 4, the warm start) keeps it as given."""
    params = suggest_activation(trial)
    if params["activation"] == "leaky_relu" or handed(trial, "head_leaky_relu"):
        params["head_leaky_relu"] = trial.suggest_categorical("head_leaky_relu", (False, True))
    return params


def _suggest_batch_norm_layout(trial: Any) -> Params:
    """Sample batch normalization and, when it is on, where it goes."""
    params = suggest_batch_norm(trial)
    if params["batch_norm"]:
        params["batch_norm_layout"] = trial.suggest_categorical("batch_norm_layout", BATCH_NORM_LAYOUTS)
    return params


def build(params: Params, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the CNN described by params (uncompiled)."""
    import keras
    from keras import layers

    from spaces._blocks import batch_normalization, classifier_head, conv_block, flattened, model_input

    inputs, x = model_input(input_shape, INPUT_SIZE, params)
    # A param missing is the space's first form, which had none of these (trials stored before 2026-11-25): BN
    # before each activation, the head's dropout the blocks', no head LeakyReLU (also where relu makes it moot).
    notebook_bn = params["batch_norm"] and params.get("batch_norm_layout") == "notebook"
    blocks = ((params["filters1"], params["kernel1"]), (params["filters2"], params["kernel2"]))
    for block, (filters, kernel) in enumerate(blocks):
        for conv in range(2):
            x = conv_block(x, filters, kernel, params, batch_norm=False if notebook_bn else None)
            if notebook_bn and (block, conv) in _NOTEBOOK_BN_AFTER_CONV:
                x = batch_normalization(params)(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(params["dropout"])(x)
        if notebook_bn and block in _NOTEBOOK_BN_AFTER_BLOCK:
            x = batch_normalization(params)(x)
    outputs = classifier_head(flattened(x, input_shape, INPUT_SIZE), [params["dense_units"]], params, num_classes,
                              dropout=params.get("head_dropout", params["dropout"]),
                              leaky_after=HEAD_LEAKY_SLOPE if params.get("head_leaky_relu") else None)
    return keras.Model(inputs, outputs, name=NAME)
