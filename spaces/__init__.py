"""The registry of architectures: one module per architecture, looked up by name."""
from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras  # imported by load_model only: naming the architectures needs no Keras

_MODULES = ("cnn", "resnet", "lenet", "vgg16", "alexnet")


class UnknownArchitecture(ValueError):
    """Raised for a name that is not in the registry; the message lists the valid ones."""


def names() -> list[str]:
    """Names of every registered architecture, in the notebook's order."""
    return list(_MODULES)


def require(name: str) -> None:
    """Check that `name` is registered, without importing Keras."""
    if name not in _MODULES:
        raise UnknownArchitecture(f"unknown architecture {name!r}; valid: {', '.join(_MODULES)}")


def get(name: str) -> ModuleType:
    """The module of architecture `name` (NAME, INPUT_SIZE, SEED_MODELS, DEFAULT, suggest, build)."""
    require(name)
    return importlib.import_module(f"spaces.{name}")


def load_model(path: str | os.PathLike[str], *, compile: bool = True) -> keras.Model:  # noqa: A002 - Keras' name
    """An exported model.keras, after registering hpsearch's own Keras classes (the notebook's decayed SGD, the
    smoothed loss), which keras.saving.load_model alone cannot find. The model takes float32 pixels / 255, shaped
    (N, height, width, channels)."""
    import keras

    from spaces._blocks import compilable_on_jax  # its module and spaces._keras2 register their classes on import

    with warnings.catch_warnings():
        # A model saved compiled with XLA and an augmentation layer: compiling it while loading warns that the
        # layer cannot, before compilable_on_jax can say otherwise.
        warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")
        model = keras.saving.load_model(path, compile=compile)
    # Private, but what Keras itself asks whether a model compiles: every layer, the inner models' (ensembles) too.
    if compilable_on_jax(model._flatten_layers()):
        model.jit_compile = True  # loading (compiled or not) decided on XLA before the layers were marked
    return model
