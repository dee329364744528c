"""The one training loop: build, compile and fit a model from params, recording every epoch."""
from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import keras
import numpy as np
import optuna

import spaces
from search import records
from search.data import Dataset
from search.errors import UserError
from search.records import EpochRow, RetrainPlan
from search.runtime import device_name
from spaces._common import Params, make_callbacks, make_optimizer
from spaces._levers import make_loss, training_steps

ProgressFn = Callable[[int | None, EpochRow, int], None]


class TrialFailed(RuntimeError):
    """Training went wrong in a way that makes the trial's result meaningless (e.g. NaN loss)."""


# Layer kinds the reports count, by Keras class name (recorded with the trial: reports need no Keras).
LAYER_KINDS = {"conv": ("Conv2D",), "pooling": ("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D"),
               "dense": ("Dense",)}


def layer_counts(model: keras.Model) -> dict[str, int]:
    """How many conv, pooling and dense layers the model has."""
    names = [type(layer).__name__ for layer in model.layers]
    return {kind: sum(name in classes for name in names) for kind, classes in LAYER_KINDS.items()}


class EpochHistory(keras.callbacks.Callback):
    """Records each epoch's metrics, learning rate and seconds, and the model's size."""

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
        self.rows.append({**row, "epoch": epoch + 1, "learning_rate": self._lr,
                          "seconds": time.perf_counter() - self._started})

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


class EpochProgress(keras.callbacks.Callback):
    """Shows each epoch recorded by `history` as it ends (place it after `history`)."""

    def __init__(self, history: EpochHistory, show: ProgressFn, trial_number: int | None, epochs: int) -> None:
        super().__init__()
        self.history, self.show, self.trial_number, self.epochs = history, show, trial_number, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Show the epoch's line."""
        self.show(self.trial_number, self.history.rows[-1], self.epochs)


class PruneOnValAccuracy(keras.callbacks.Callback):
    """Reports validation accuracy to the trial each epoch and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Report, then prune; a non-finite loss is left to TerminateOnNaN and the caller."""
        logs = logs or {}
        if "val_accuracy" not in logs or not math.isfinite(float(logs.get("loss", 0.0))):
            return
        self.trial.report(float(logs["val_accuracy"]), epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")


@dataclass
class TrainRun:
    """What one training run produced: the fitted model and its epoch record."""

    model: keras.Model
    history: EpochHistory


def train(arch: ModuleType, params: Params, data: Dataset, epochs: int, seed: int, *,
          history: EpochHistory | None = None, callbacks: Sequence[keras.callbacks.Callback] = (),
          shuffle: bool = False, full_train: bool = False, device_loop: bool = False) -> TrainRun:
    """Build arch from params, compile, and fit with validation every epoch; fails on a NaN/inf loss.

    `history` may be passed in so that the caller keeps the epochs of a run that raised (pruned, failed)."""
    keras.backend.clear_session()  # each trial starts from an empty graph, so memory does not pile up
    gc.collect()
    keras.utils.set_random_seed(seed)
    history = history or EpochHistory()
    model = arch.build(params, data.input_shape, data.num_classes)
    x, y = data.x_train, data.y_train
    if full_train:
        x, y = np.concatenate([x, data.x_val]), np.concatenate([y, data.y_val])
    steps = training_steps(len(x), int(params["batch_size"]), epochs)  # a learning-rate schedule spans them
    model.compile(optimizer=make_optimizer(params, steps), loss=make_loss(params), metrics=["accuracy"])
    # History first: the callbacks after it (progress, pruning) read the epoch it recorded.
    all_callbacks = [keras.callbacks.TerminateOnNaN(), history, *callbacks, *make_callbacks(params)]
    if device_loop:
        if keras.backend.backend() != "jax":
            raise UserError("the on-device training loop needs the JAX backend (--backend jax)")
        from search.device_loop import fit_on_device  # imports jax

        fit_on_device(model, x, y, (data.x_val, data.y_val), int(params["batch_size"]), epochs, all_callbacks,
                      loss_fn=make_loss(params, reduction=None), shuffle=shuffle, seed=seed)
    else:
        model.fit(x, y, batch_size=int(params["batch_size"]), epochs=epochs, shuffle=shuffle, verbose=0,
                  validation_data=(data.x_val, data.y_val), callbacks=all_callbacks)
    bad = [row for row in history.rows if not math.isfinite(row.get("loss", 0.0))]
    if bad:
        raise TrialFailed(f"loss became {bad[0]['loss']} in epoch {bad[0]['epoch']}")
    return TrainRun(model, history)


def retrain(plan: RetrainPlan, data: Dataset, *, seed: int | None = None, show: ProgressFn | None = None,
            full_train: bool = False) -> TrainRun:
    """Train a trial's configuration again as its plan says (export-best, confirm), with another seed if given."""
    history = EpochHistory()
    callbacks = [EpochProgress(history, show, None, plan.epochs)] if show else []
    return train(spaces.get(plan.arch), plan.params, data, plan.epochs, plan.seed if seed is None else seed,
                 history=history, callbacks=callbacks, full_train=full_train, device_loop=plan.device_loop)


def resident_mb() -> float:
    """This process's resident memory in MiB (Linux /proc; 0 elsewhere), to spot growth across trials."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _reason(exc: BaseException) -> str:
    """One line that says why a trial failed."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def make_objective(arch: ModuleType, data: Dataset, epochs: int, seed: int, *, shuffle: bool = False,
                   show: ProgressFn | None = None, device_loop: bool = False,
                   levers: bool = True) -> Callable[[optuna.Trial], float]:
    """The Optuna objective for `arch`: the trial's value is its best validation accuracy.

    Trials train for `epochs`, or for the epochs an enqueued trial's record carries (a replayed notebook model);
    `levers` False searches without the accuracy levers (spaces._levers)."""
    backend, device = keras.backend.backend(), device_name()

    def objective(trial: optuna.Trial) -> float:
        params = arch.suggest(trial, levers=levers)
        records.update(trial, backend=backend, device=device, seed=seed, device_loop=device_loop)
        trial_epochs = records.TrialRecord.of(trial).epochs or epochs
        history = EpochHistory()
        callbacks: list[keras.callbacks.Callback] = [EpochProgress(history, show, trial.number, trial_epochs)] \
            if show else []
        try:
            train(arch, params, data, trial_epochs, seed, history=history,
                  callbacks=[*callbacks, PruneOnValAccuracy(trial)], shuffle=shuffle, device_loop=device_loop)
        except optuna.TrialPruned:
            raise
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: the trial says why it ended
            records.update(trial, fail_reason=_reason(exc))
            raise
        finally:
            records.update(trial, history=history.rows, train_seconds=round(history.train_seconds, 3),
                           n_params=history.n_params, layers=history.layers, best_epoch=history.best_epoch()[0],
                           rss_mb=resident_mb())
        return history.best_epoch()[1]

    return objective
