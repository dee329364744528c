"""The Keras side of every architecture: the input with its augmentation, convolution blocks, the classifier head,
and the optimizer, learning-rate schedule, loss and callbacks a trial trains with.

Only building and training import this module, and Keras with it: the search spaces (spaces._common,
spaces._levers) and each architecture's tables are read without Keras, by `hpsearch report` for one."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
from keras import layers, ops

from spaces._common import NOTEBOOK_BN_MOMENTUM, OPTIMIZERS, PLATEAU, Params
from spaces._keras2 import DecayedSGD
from spaces._levers import AUGMENTATIONS, CONSTANT, LR_SCHEDULES

# The Keras class of each optimizer and its fixed arguments. The notebook's SGD-N's `decay`, which Keras 3
# dropped, lives on in DecayedSGD.
OPTIMIZER_TABLE: dict[str, tuple[type[keras.optimizers.Optimizer], dict[str, Any]]] = {
    "sgd": (keras.optimizers.SGD, {}),
    "sgd_nesterov": (DecayedSGD, {"momentum": 0.9, "nesterov": True, "decay": 1e-6}),
    "adam": (keras.optimizers.Adam, {}),
    "adadelta": (keras.optimizers.Adadelta, {}),
}
assert tuple(OPTIMIZER_TABLE) == OPTIMIZERS, "every optimizer of the search space needs its Keras class"
# Keras 3's AdamW is Adam with weight decay (every Keras optimizer decays decoupled); the class is swapped so that
# saved models and reports name it.
WITH_WEIGHT_DECAY: dict[str, type[keras.optimizers.Optimizer]] = {"adam": keras.optimizers.AdamW}
# The layer of each augmentation at a strength. Translation fills with 0 and moves whole pixels, as the classic
# pad-and-crop does (Fashion-MNIST's background is 0). Erasing's strength is the chance that an image gets one
# noise patch of 2-33% of its area (Keras' default sizes; the paper erased with 0.5).
AUGMENTATION_LAYERS: dict[str, Callable[[float], layers.Layer]] = {
    "augment_translate": lambda factor: layers.RandomTranslation(factor, factor, fill_mode="constant",
                                                                 interpolation="nearest"),
    "augment_flip": lambda _: layers.RandomFlip("horizontal"),
    "augment_erasing": lambda chance: layers.RandomErasing(
        factor=(chance, chance), value_range=(0.0, 1.0)),  # the inputs are scaled to [0, 1] (search.data)
}
assert tuple(AUGMENTATION_LAYERS) == tuple(AUGMENTATIONS), "every augmentation searched needs its layer, in order"


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


def learning_rate(params: Params, steps: int | None) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The params' learning rate, or its schedule over `steps` training steps (all epochs)."""
    rate, schedule = float(params["learning_rate"]), params.get("lr_schedule", CONSTANT)
    if schedule == CONSTANT:
        return rate
    if not steps:
        raise ValueError(f"the {schedule!r} learning-rate schedule needs the number of training steps")
    start, warmup_fraction = LR_SCHEDULES[schedule]
    warmup = min(int(steps * warmup_fraction), steps - 1)
    return keras.optimizers.schedules.CosineDecay(rate * start, decay_steps=steps - warmup, warmup_target=rate,
                                                  warmup_steps=warmup)


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
    width is resized up to it, larger ones are kept (pass --image-size to shrink big images; `flattened` keeps
    the dense head's size). Augmentation runs before the upscaling, on fewer pixels."""
    height, width, _ = input_shape
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for layer in augmentation(params):
        x = layer(x)
    target = (max(height, size), max(width, size))
    x = x if target == (height, width) else layers.Resizing(*target)(x)
    return inputs, x


HEAD_POOLING = "head_pooling"  # the name of flattened's pooling layer, where it adds one


def flattened(x: keras.KerasTensor, input_shape: Sequence[int], size: int) -> keras.KerasTensor:
    """The last feature map flattened for the dense head, average-pooled first to about the grid it has when the
    input is size x size (the architecture's INPUT_SIZE), as torchvision's VGG and AlexNet pool to 7x7.

    Without it the dense head grew with the image's area: on 224x224 photos the notebook's AlexNet had 676M
    parameters (30M at 48x48), its CNN 51M (0.89M at 28x28). A map under twice its grid a side (from any input up
    to size x size, and a little beyond) is left as it was."""
    _, map_height, map_width, _ = x.shape
    height, width = (max(side, size) for side in input_shape[:2])  # model_input upscales smaller sides to size
    # Each side scales with the input: the grid at `size` (rounded up) is that side times size / input side. A
    # window of floor(side / grid) pixels, moved by its width, leaves from the grid to under twice it: a side
    # under twice its grid is not pooled (CIFAR's 32x32 in the CNN keeps its 8x8 map, not 4x4), and the last
    # rows or columns that fill no window are dropped. Keras 3.15's AdaptiveAveragePooling2D, made for this,
    # computed NaN on JAX (a CNN at 56x56 failed every trial) and broke TensorFlow's graph on a map 1 pixel high.
    grid = (math.ceil(map_height * size / height), math.ceil(map_width * size / width))
    window = tuple(max(1, side // cells) for side, cells in zip((map_height, map_width), grid, strict=True))
    if window != (1, 1):
        x = layers.AveragePooling2D(window, strides=window, name=HEAD_POOLING)(x)
    return layers.Flatten()(x)


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


def augmentation(params: Params) -> list[layers.Layer]:
    """The augmentation layers params switch on, in order; Keras runs them only in training."""
    made = [make(float(params[name])) for name, make in AUGMENTATION_LAYERS.items() if params.get(name)]
    compilable_on_jax(made)
    return made


def compilable_on_jax(found: Iterable[layers.Layer]) -> int:
    """On JAX, mark the augmentation layers among `found` fit for XLA; how many were marked unfit before.

    Keras marks RandomTranslation unfit for XLA whatever the backend (TensorFlow's image transform is), and one such
    layer turns compilation off for the whole model: on JAX, model.fit then ran every training step op by op from
    Python (LeNet with these levers on the 2-core CPU: 17.6 s for its first epoch, 5.5 s compiled), and predict
    too. JAX's transform compiles; the on-device loop, which compiles by itself, always did. Loading a saved model
    builds its layers anew, so spaces.load_model marks them again."""
    if keras.backend.backend() != "jax":
        return 0
    kinds = (layers.RandomTranslation, layers.RandomFlip, layers.RandomErasing)  # what AUGMENTATION_LAYERS makes
    marked = [layer for layer in found if isinstance(layer, kinds) and not layer.supports_jit]
    for layer in marked:
        layer.supports_jit = True
    return len(marked)


@keras.saving.register_keras_serializable(package="hpsearch")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing on integer labels (Keras' sparse loss has no smoothing).

    Predictions are (batch, classes) probabilities; labels stay sparse everywhere else (data, metrics)."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str | None = "sum_over_batch_size",
                 name: str = "smoothed_sparse_categorical_crossentropy", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = label_smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-image loss: one-hot the labels inside, then smoothed categorical cross-entropy."""
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), y_pred.shape[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        """The Loss config plus the smoothing, so a saved model.keras reloads with it."""
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make_loss(params: Params, reduction: str | None = "sum_over_batch_size") -> keras.losses.Loss:
    """The training loss: sparse categorical cross-entropy, label-smoothed when params ask for it."""
    if params.get("label_smoothing"):
        return SmoothedSparseCrossentropy(float(params["label_smoothing"]), reduction=reduction)
    return keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
