"""The registry of architectures: one module per architecture, looked up by name."""
from __future__ import annotations

import importlib
import os
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
    for module in ("spaces._keras2", "spaces._levers"):
        importlib.import_module(module)  # their classes register themselves with Keras on import
    import keras

    return keras.saving.load_model(path, compile=compile)
