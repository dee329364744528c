"""The one training loop: build, compile and fit a model from params, recording every epoch."""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import keras
import numpy as np
import optuna

import spaces
from search import owners, pareto, records
from search.callbacks import (
    EpochHistory,
    EpochProgress,
    ProgressFn,
    PruneDominated,
    PruneOnValAccuracy,
    StopOnInterrupt,
    StopOnNonFiniteLoss,
    finite_loss,
)
from search.config import PRECISIONS
from search.data import Dataset
from search.errors import UserError
from search.records import RetrainPlan
from search.runtime import device_name
from search.signals import interrupted, raise_if_interrupted
from spaces._blocks import make_callbacks, make_loss, make_optimizer
from spaces._common import Params
from spaces._levers import training_steps
from spaces.param_names import model_params

Values = float | tuple[float, float]  # a trial's value, or its (accuracy, steady seconds) in an accuracy-time study


# Validation batches hold up to this many 28x28 greyscale images' worth of pixels, never fewer images than a
# training batch: the batch size does not change what validation measures, and larger batches cost less per image
# (bench/start_costs.py, 12,000 images, the default CNN, 2-core CPU: 2.16 s at 32, 1.15 s at 256, 1.01 s at 1,000).
# Larger images get proportionally fewer, so memory stays bounded.
VALIDATION_PIXELS = 1000 * 28 * 28


def validation_batch_size(batch_size: int, input_shape: tuple[int, ...]) -> int:
    """Images per validation batch for a training batch size and an image shape."""
    return max(batch_size, VALIDATION_PIXELS // math.prod(input_shape))


def outputs_agree(reference: np.ndarray, computed: np.ndarray) -> bool:
    """Whether a lower-precision result is float32's within bfloat16's rounding (8 significant bits, a few
    operations deep: 5% of the output's range), and finite."""
    scale = float(np.abs(reference).max()) or 1.0
    return bool(np.isfinite(computed).all() and np.allclose(computed, reference, rtol=0.05, atol=0.05 * scale))


@functools.cache
def check_precision(precision: str) -> None:
    """Refuse a precision this device computes wrongly, before any trial trains in it.

    Found in a dry run: JAX 0.11.2 and 0.12.0 on CPU compile two ReLU convolutions and a max-pooling in bfloat16
    into a program whose output is ~20% NaN or inf (run op by op, it is right), so every validation accuracy was
    chance while training losses looked normal. A compiled stack of those layers in `precision` is compared with
    float32 on the same weights; once per process (~1 s)."""
    if precision == "float32":
        return
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)

    def stack(policy: str) -> keras.Sequential:
        """Two ReLU convolutions and a max-pooling, computing in `policy`."""
        convolutions = [keras.layers.Conv2D(32, 3, padding="same", activation="relu", dtype=policy) for _ in "ab"]
        return keras.Sequential([keras.Input(x.shape[1:]), *convolutions, keras.layers.MaxPooling2D(dtype=policy)])

    reference, lower = stack("float32"), stack(PRECISIONS[precision])
    lower.set_weights(reference.get_weights())
    outputs = [np.asarray(model.predict(x, batch_size=len(x), verbose=0), np.float32) for model in (reference, lower)]
    if not outputs_agree(*outputs):
        raise UserError(f"--precision {precision} computes wrong results on this device ({device_name()}, Keras "
                        f"backend {keras.backend.backend()}): a compiled convolution stack disagrees with float32 "
                        f"(non-finite or off by more than rounding); train in float32 (the default)")


class TrialFailed(RuntimeError):
    """Training went wrong in a way that makes the trial's result meaningless (e.g. NaN loss)."""


@dataclass
class TrainRun:
    """What one training run produced: the fitted model and its epoch record."""

    model: keras.Model
    history: EpochHistory


def training_callbacks(params: Params, history: EpochHistory,
                       callbacks: Sequence[keras.callbacks.Callback] = ()) -> list[keras.callbacks.Callback]:
    """Every callback of a training run, on either path: history first (the ones after it, such as progress and
    pruning, read the epoch it recorded), the stop on a NaN loss, the caller's, then the configuration's own."""
    return [history, StopOnNonFiniteLoss(), StopOnInterrupt(), *callbacks, *make_callbacks(params)]


def train(arch: ModuleType, params: Params, data: Dataset, epochs: int, seed: int, *,
          history: EpochHistory | None = None, callbacks: Sequence[keras.callbacks.Callback] = (),
          shuffle: bool = False, full_train: bool = False, device_loop: bool = False,
          schedule_epochs: int | None = None, precision: str = "float32") -> TrainRun:
    """Build arch from params, compile, and fit with validation every epoch; fails on a NaN/inf loss.

    `history` may be passed in so that the caller keeps the epochs of a run that raised (pruned, failed);
    a learning-rate schedule spans `schedule_epochs` (default: `epochs`); `precision` is a key of PRECISIONS."""
    # Each trial starts from an empty graph, so memory does not pile up (clear_session also runs gc.collect).
    keras.backend.clear_session()
    raise_if_interrupted()  # a Ctrl-C in clear_session's garbage collection is swallowed by Python
    keras.config.set_dtype_policy(PRECISIONS[precision])  # after clear_session, which resets the policy
    keras.utils.set_random_seed(seed)
    history = history or EpochHistory()
    model = arch.build(params, data.input_shape, data.num_classes)
    x, y = data.x_train, data.y_train
    if full_train:
        x, y = np.concatenate([x, data.x_val]), np.concatenate([y, data.y_val])
    steps = training_steps(len(x), int(params["batch_size"]), schedule_epochs or epochs)  # what a schedule spans
    model.compile(optimizer=make_optimizer(params, steps), loss=make_loss(params), metrics=["accuracy"])
    all_callbacks = training_callbacks(params, history, callbacks)
    validation_batch = validation_batch_size(int(params["batch_size"]), data.input_shape)
    if device_loop:
        if keras.backend.backend() != "jax":
            raise UserError("the on-device training loop needs the JAX backend (--backend jax)")
        from search.device_loop import fit_on_device  # imports jax

        fit_on_device(model, x, y, (data.x_val, data.y_val), int(params["batch_size"]), epochs, all_callbacks,
                      loss_fn=make_loss(params, reduction=None), validation_batch_size=validation_batch,
                      shuffle=shuffle, seed=seed)
    else:
        model.fit(x, y, batch_size=int(params["batch_size"]), epochs=epochs, shuffle=shuffle, verbose=0,
                  validation_data=(data.x_val, data.y_val), validation_batch_size=validation_batch,
                  callbacks=all_callbacks)
    bad = [row for row in history.rows if not finite_loss(row)]
    if bad:
        raise TrialFailed(f"loss became {bad[0]['loss']} in epoch {bad[0]['epoch']}")
    return TrainRun(model, history)


def retrain(plan: RetrainPlan, data: Dataset, *, seed: int | None = None, show: ProgressFn | None = None,
            full_train: bool = False) -> TrainRun:
    """Train a trial's configuration again as its plan says (export-best, confirm), with another seed if given."""
    check_precision(plan.precision)
    history = EpochHistory()
    callbacks = [EpochProgress(history, show, None, plan.epochs)] if show else []
    return train(spaces.get(plan.arch), plan.params, data, plan.epochs, plan.seed if seed is None else seed,
                 history=history, callbacks=callbacks, full_train=full_train, device_loop=plan.device_loop,
                 schedule_epochs=plan.schedule_epochs, precision=plan.precision, shuffle=plan.shuffle)


# What a resumed study whose architecture changed since its trials goes on with.
MIXED = ("this study's new trials are other models than its old ones, ranked with them (a new --study-name keeps them "
         "apart)")


def rebuilt_note(arch: str, trial: optuna.trial.FrozenTrial, data: Dataset, *, resumed: bool = False) -> str:
    """A note where the trial's params, built (not trained) by this hpsearch, make a model of another size than the
    trial recorded: the architecture's code changed since it trained (e.g. the dense head of large images, pooled
    since), so the model is not the one the trial measured; "" where the sizes agree or none was recorded.
    `resumed`: said as a study resumes (whose new trials are then other models), where params that no longer
    build are said too, and the resume goes on."""
    recorded = records.TrialRecord.of(trial).n_params
    if not recorded:
        return ""
    try:
        built = spaces.get(arch).build(model_params(trial.params), data.input_shape, data.num_classes).count_params()
    except Exception as exc:  # noqa: BLE001 - params of an older space: said, and the resume goes on as before
        if not resumed:
            raise
        return (f"note: trial {trial.number} no longer builds with this hpsearch ({_reason(exc)}): the architecture "
                f"changed since; {MIXED}")
    finally:
        keras.backend.clear_session()  # the trials build their own
    if built == recorded:
        return ""
    return (f"note: trial {trial.number} trained a model of {recorded:,} parameters; rebuilt by this hpsearch it has "
            f"{built:,}, " + (f"as the architecture changed since: {MIXED}" if resumed else
                              "so it is not the model the trial measured (a new study searches the current "
                              "architecture)"))


def resumed_architecture_note(study: optuna.Study, arch: str, data: Dataset) -> str:
    """At a resume, rebuilt_note for the study's first complete trial that recorded its size."""
    trial = next((t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                  if records.TrialRecord.of(t).n_params), None)
    return "" if trial is None else rebuilt_note(arch, trial, data, resumed=True)


def resident_mb() -> float:
    """This process's resident memory in MiB (Linux /proc; 0 elsewhere), to spot growth across trials."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _reason(exc: BaseException) -> str:
    """One line that says why a trial failed."""
    if interrupted(exc):
        return records.INTERRUPTED
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def make_objective(arch: ModuleType, data: Dataset, epochs: int, seed: int, *, shuffle: bool = False,
                   show: ProgressFn | None = None, device_loop: bool = False, levers: bool = True,
                   accuracy_time: bool = False, prune: bool = True,
                   precision: str = "float32") -> Callable[[optuna.Trial], Values]:
    """The Optuna objective for `arch`: the trial's value is its best validation accuracy, or with
    `accuracy_time` the pair (best validation accuracy, steady training seconds), pruned by search.pareto's rule.

    Trials train for `epochs`, or for the epochs an enqueued trial's record carries (a replayed notebook model);
    `levers` False searches without the accuracy levers (spaces._levers)."""
    check_precision(precision)
    backend, device = keras.backend.backend(), device_name()

    def objective(trial: optuna.Trial) -> Values:
        """One trial: sample its params, train with pruning, record what it did; its value(s)."""
        history = EpochHistory()
        # Everything inside the try: a Ctrl-C while the params are sampled must still be recorded as one (an
        # interrupted warm start without its fail_reason was not queued again, and the study lost it).
        try:
            raise_if_interrupted()  # one that came between trials and was swallowed: this trial is not started
            records.update(trial, worker=owners.owner(), backend=backend, device=device, seed=seed,
                           device_loop=device_loop, precision=precision, shuffle=shuffle)
            params = arch.suggest(trial, levers=levers)
            trial_epochs = records.TrialRecord.of(trial).epochs or epochs
            callbacks: list[keras.callbacks.Callback] = \
                [EpochProgress(history, show, trial.number, trial_epochs)] if show else []
            if not accuracy_time:
                callbacks.append(PruneOnValAccuracy(trial, trial_epochs))  # the study's pruner decides (or never)
            elif prune:
                callbacks.append(PruneDominated(trial, history, trial_epochs))
            train(arch, params, data, trial_epochs, seed, history=history, callbacks=callbacks, shuffle=shuffle,
                  device_loop=device_loop, precision=precision)
        except optuna.TrialPruned:
            raise
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: the trial says why it ended
            records.update(trial, fail_reason=_reason(exc))
            raise
        finally:
            records.update(trial, history=history.rows, train_seconds=round(history.train_seconds, 3),
                           n_params=history.n_params, layers=history.layers, best_epoch=history.best_epoch()[0],
                           rss_mb=resident_mb())
        accuracy = history.best_epoch()[1]
        return (accuracy, round(pareto.steady_seconds(history.rows), 3)) if accuracy_time else accuracy

    return objective
