"""The course notebook's models as data: each one's params, epochs and what the notebook reported."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Where every number in `Reported` was measured (the notebook ran on Kaggle's GPU).
NOTEBOOK_SETUP = "Kaggle GPU, Keras 2.3, TF 2.1"


@dataclass(frozen=True)
class Reported:
    """What the notebook printed for one model after its last epoch (accuracies as fractions)."""

    val_accuracy: float
    val_loss: float
    seconds: float
    n_params: int
    train_accuracy: float | None = None  # only the CNN section printed it
    where: str = NOTEBOOK_SETUP


@dataclass(frozen=True)
class NotebookModel:
    """One of the notebook's models: the params `build` reads, its epoch count, and its reported result."""

    params: dict[str, Any]
    epochs: int
    reported: Reported


def seed_params(models: dict[str, NotebookModel]) -> dict[str, dict[str, Any]]:
    """The params of each notebook model, by name: what `study --enqueue-seed-models` queues."""
    return {name: model.params for name, model in models.items()}


def scaled_epochs(epochs: int, scale: float) -> int:
    """The notebook's epochs shortened in proportion for a quick replay (at least one)."""
    return max(1, round(epochs * scale))
