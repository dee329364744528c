"""The Keras callbacks of a training run, one job each: record the epochs, stop on a NaN loss, show them, prune
the trial. All act at epoch ends: a batch hook would make Keras dispatch every step's callbacks synchronously."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import optuna
from optuna.trial import TrialState

from search import pareto
from search.records import EpochRow, TrialRecord
from search.signals import raise_if_interrupted

ProgressFn = Callable[[int | None, EpochRow, int], None]


# Layer kinds the reports count, by Keras class name (recorded with the trial: reports need no Keras).
LAYER_KINDS = {"conv": ("Conv2D",), "pooling": ("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D"),
               "dense": ("Dense",)}


def layer_counts(model: keras.Model) -> dict[str, int]:
    """How many conv, pooling and dense layers the model has."""
    names = [type(layer).__name__ for layer in model.layers]
    return {kind: sum(name in classes for name in names) for kind, classes in LAYER_KINDS.items()}


def finite_loss(logs: Mapping[str, Any] | None) -> bool:
    """Whether an epoch's logs (or recorded row) hold no NaN or inf loss (none recorded counts as finite)."""
    return math.isfinite(float((logs or {}).get("loss", 0.0)))


class EpochHistory(keras.callbacks.Callback):
    """Records each epoch's metrics, learning rate, seconds and wall-clock end, and the model's size."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[EpochRow] = []
        self.n_params = 0
        self.layers: dict[str, int] = {}
        self._started = 0.0
        self._lr = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Note the parameter and layer counts once the model is built."""
        self.n_params, self.layers = int(self.model.count_params()), layer_counts(self.model)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the epoch clock and note the learning rate used in this epoch."""
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Record the epoch."""
        logs = logs or {}
        row = {key: float(logs[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy") if key in logs}
        # ended_at (Unix seconds) places the epoch on a timeline: when the search first had this result.
        self.rows.append({**row, "epoch": epoch + 1, "learning_rate": self._lr,
                          "seconds": time.perf_counter() - self._started, "ended_at": time.time()})

    @property
    def train_seconds(self) -> float:
        """Seconds spent in the recorded epochs (compilation included in the first)."""
        return float(sum(row["seconds"] for row in self.rows))

    def best_epoch(self) -> tuple[int, float]:
        """The 1-based epoch with the highest validation accuracy, and that accuracy."""
        scores = [row.get("val_accuracy", float("nan")) for row in self.rows]
        if not scores or all(math.isnan(s) for s in scores):
            return 0, float("nan")
        best = int(np.nanargmax(scores))
        return best + 1, float(scores[best])


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training after an epoch whose loss is NaN or inf (the caller then fails the trial).

    Not Keras' TerminateOnNaN: it checks every batch, and any batch hook makes Keras 3 run callbacks in step with
    training (on JAX a host sync per step); the on-device loop can only check at epoch ends anyway."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Stop if the epoch's loss is not finite."""
        if not finite_loss(logs):
            self.model.stop_training = True


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after an epoch where Ctrl-C or SIGTERM came and a library swallowed it
    (search.signals.interrupt_received): the trial then ends as interrupted instead of training on."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Stop here if an interrupt was lost."""
        raise_if_interrupted()


class EpochProgress(keras.callbacks.Callback):
    """Shows each epoch recorded by `history` as it ends (place it after `history`)."""

    def __init__(self, history: EpochHistory, show: ProgressFn, trial_number: int | None, epochs: int) -> None:
        super().__init__()
        self.history, self.show, self.trial_number, self.epochs = history, show, trial_number, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Show the epoch's line."""
        self.show(self.trial_number, self.history.rows[-1], self.epochs)


class PruneOnValAccuracy(keras.callbacks.Callback):
    """Reports validation accuracy to the trial each epoch and stops the trial when the pruner says so, except
    after its last epoch: a trial that trained all its epochs is complete (pruned, Optuna would store its last
    epoch's accuracy instead of its best, and export, confirm and TPE would pass it over)."""

    def __init__(self, trial: optuna.Trial, planned_epochs: int) -> None:
        super().__init__()
        self.trial, self.planned_epochs = trial, planned_epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Report, then prune; a non-finite loss is left to StopOnNonFiniteLoss and the caller."""
        logs = logs or {}
        if "val_accuracy" not in logs or not finite_loss(logs):
            return
        self.trial.report(float(logs["val_accuracy"]), epoch + 1)
        if epoch + 1 < self.planned_epochs and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")


class PruneDominated(keras.callbacks.Callback):
    """Stops a trial of an accuracy-time study once completed trials dominate it (search.pareto's rule:
    Optuna cannot prune a two-objective study). Reads `history`, so place it after that."""

    def __init__(self, trial: optuna.Trial, history: EpochHistory, planned_epochs: int) -> None:
        super().__init__()
        self.trial, self.history, self.planned_epochs = trial, history, planned_epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Compare with the completed trials (other workers' too: read from the storage each epoch)."""
        if not finite_loss(logs) or epoch + 1 >= self.planned_epochs:  # after the last epoch there is nothing to save
            return
        complete = self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        finished = [TrialRecord.of(t).history for t in complete]
        if pareto.should_stop(self.history.rows, finished, epoch + 1, planned_epochs=self.planned_epochs):
            raise optuna.TrialPruned(f"dominated after epoch {epoch + 1}")
