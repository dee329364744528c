"""The one training loop: build, compile and fit a model from params, recording every epoch."""
from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np
import optuna

from search.data import Dataset
from search.errors import UserError
from search.runtime import device_name
from spaces._common import Params, make_callbacks, make_optimizer
from spaces._levers import make_loss, training_steps

EpochRow = dict[str, float]
ProgressFn = Callable[[int | None, EpochRow, int], None]


class TrialFailed(RuntimeError):
    """Training went wrong in a way that makes the trial's result meaningless (e.g. NaN loss)."""


class EpochRecorder(keras.callbacks.Callback):
    """Keeps per-epoch metrics, learning rate and seconds; reports val_accuracy to Optuna and prunes."""

    def __init__(self, trial: optuna.Trial | None = None, progress: ProgressFn | None = None,
                 epochs: int = 0) -> None:
        super().__init__()
        self.trial, self.progress, self.epochs = trial, progress, epochs
        self.history: list[EpochRow] = []
        self.n_params = 0
        self._started = 0.0
        self._lr = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Note the parameter count once the model is built."""
        self.n_params = int(self.model.count_params())

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the epoch clock and note the learning rate used in this epoch."""
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Record the epoch, report it to the trial, and stop the trial if the pruner says so."""
        logs = logs or {}
        row = {key: float(logs[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy") if key in logs}
        row.update(epoch=epoch + 1, learning_rate=self._lr, seconds=time.perf_counter() - self._started)
        self.history.append(row)
        if self.progress:
            self.progress(self.trial.number if self.trial else None, row, self.epochs)
        if not math.isfinite(row.get("loss", 0.0)):
            return  # TerminateOnNaN has stopped training; the caller fails the trial
        if self.trial is not None and "val_accuracy" in row:
            self.trial.report(row["val_accuracy"], epoch + 1)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

    @property
    def train_seconds(self) -> float:
        """Seconds spent in the recorded epochs (compilation included in the first)."""
        return float(sum(row["seconds"] for row in self.history))

    def best_epoch(self) -> tuple[int, float]:
        """The 1-based epoch with the highest validation accuracy, and that accuracy."""
        scores = [row.get("val_accuracy", float("nan")) for row in self.history]
        if not scores or all(math.isnan(s) for s in scores):
            return 0, float("nan")
        best = int(np.nanargmax(scores))
        return best + 1, float(scores[best])


@dataclass
class TrainRun:
    """What one training run produced: the fitted model and its epoch record."""

    model: keras.Model
    recorder: EpochRecorder
    extra: dict[str, Any] = field(default_factory=dict)


def train(arch: ModuleType, params: Params, data: Dataset, epochs: int, seed: int, *,
          recorder: EpochRecorder | None = None, shuffle: bool = False, full_train: bool = False,
          device_loop: bool = False) -> TrainRun:
    """Build arch from params, compile, and fit with validation every epoch; fails on a NaN/inf loss."""
    keras.backend.clear_session()  # each trial starts from an empty graph, so memory does not pile up
    gc.collect()
    keras.utils.set_random_seed(seed)
    recorder = recorder or EpochRecorder(epochs=epochs)
    recorder.epochs = epochs
    model = arch.build(params, data.input_shape, data.num_classes)
    x, y = data.x_train, data.y_train
    if full_train:
        x, y = np.concatenate([x, data.x_val]), np.concatenate([y, data.y_val])
    steps = training_steps(len(x), int(params["batch_size"]), epochs)  # a learning-rate schedule spans them
    model.compile(optimizer=make_optimizer(params, steps), loss=make_loss(params), metrics=["accuracy"])
    callbacks = [keras.callbacks.TerminateOnNaN(), recorder, *make_callbacks(params)]
    if device_loop:
        if keras.backend.backend() != "jax":
            raise UserError("the on-device training loop needs the JAX backend (--backend jax)")
        from search.device_loop import fit_on_device  # imports jax

        fit_on_device(model, x, y, (data.x_val, data.y_val), int(params["batch_size"]), epochs, callbacks,
                      loss_fn=make_loss(params, reduction=None), shuffle=shuffle, seed=seed)
    else:
        model.fit(x, y, batch_size=int(params["batch_size"]), epochs=epochs, shuffle=shuffle, verbose=0,
                  validation_data=(data.x_val, data.y_val), callbacks=callbacks)
    bad = [row for row in recorder.history if not math.isfinite(row.get("loss", 0.0))]
    if bad:
        raise TrialFailed(f"loss became {bad[0]['loss']} in epoch {bad[0]['epoch']}")
    return TrainRun(model, recorder)


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
                   progress: ProgressFn | None = None,
                   device_loop: bool = False, levers: bool = True) -> Callable[[optuna.Trial], float]:
    """The Optuna objective for `arch`: the trial's value is its best validation accuracy.

    Trials train for `epochs`, or for the `epochs` user attribute an enqueued trial carries; `levers` False
    searches without the accuracy levers (spaces._levers)."""
    backend, device = keras.backend.backend(), device_name()

    def objective(trial: optuna.Trial) -> float:
        params = arch.suggest(trial, levers=levers)
        trial.set_user_attr("backend", backend)
        trial.set_user_attr("device", device)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("device_loop", device_loop)
        # A replayed notebook model is enqueued with its own epoch count (see search.replay).
        trial_epochs = int(trial.user_attrs.get("epochs", epochs))
        recorder = EpochRecorder(trial, progress, trial_epochs)
        try:
            train(arch, params, data, trial_epochs, seed, recorder=recorder, shuffle=shuffle,
                  device_loop=device_loop)
        except optuna.TrialPruned:
            raise
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: the trial says why it ended
            trial.set_user_attr("fail_reason", _reason(exc))
            raise
        finally:
            best_epoch, _ = recorder.best_epoch()
            trial.set_user_attr("history", recorder.history)
            trial.set_user_attr("train_seconds", round(recorder.train_seconds, 3))
            trial.set_user_attr("n_params", recorder.n_params)
            trial.set_user_attr("best_epoch", best_epoch)
            trial.set_user_attr("rss_mb", resident_mb())
        return recorder.best_epoch()[1]

    return objective
