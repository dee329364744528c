"""The registry of architectures: one module per architecture, looked up by name."""
from __future__ import annotations

import importlib
from types import ModuleType

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
