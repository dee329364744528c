"""On-device training for the JAX backend: data resident on the device, one compiled program per epoch.

`model.fit` on JAX dispatches every batch from Python; at batch 32 that overhead, not arithmetic, sets
the pace on a GPU (measured on an H100: 3.2-4.0 s per epoch of the notebook's CNN model 7 with
`model.fit`, 0.74 s with a prototype of this technique). Here an epoch is one `jax.lax.scan` over the full
batches and a step for the last, smaller one, built from Keras' stateless API, and validation is a second
scan. Keras callbacks get the same epoch-level calls as from `model.fit` (not per batch: a NaN loss is caught
at the end of its epoch, by a callback, as on the `model.fit` path).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

# Training steps per iteration of the epoch's scan (`jax.lax.scan`'s unroll). On a GPU an iteration of XLA's loop
# launches its kernels from the host and may wait there for its condition; unrolling buys fewer iterations with a
# larger program. 1 until a measurement on a GPU says otherwise (bench/xla_levers.py compares others).
SCAN_UNROLL = 1


def _state(model: keras.Model) -> tuple[list, list, list]:
    """The current values of the model's and optimizer's variables."""
    return ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables])


def _write_back(model: keras.Model, state: tuple[list, list, list]) -> None:
    """Store the trained values in the Keras variables, so callbacks and saving see them."""
    for variables, values in zip((model.trainable_variables, model.non_trainable_variables,
                                  model.optimizer.variables), state, strict=True):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)


def _padded(x: np.ndarray, y: np.ndarray, size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Arrays padded to a multiple of size, reshaped into batches, with a mask of the real rows (validation only:
    in training, padded rows would enter batch normalization's batch statistics)."""
    pad = -len(x) % size
    mask = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    batches = len(x) // size
    return (jax.device_put(x.reshape(batches, size, *x.shape[1:])), jax.device_put(y.reshape(batches, size)),
            jax.device_put(mask.reshape(batches, size)))


def fit_on_device(model: keras.Model, x: np.ndarray, y: np.ndarray, validation: tuple[np.ndarray, np.ndarray],
                  batch_size: int, epochs: int, callbacks: Sequence[keras.callbacks.Callback], *,
                  loss_fn: keras.losses.Loss, validation_batch_size: int, shuffle: bool = False,
                  seed: int = 0) -> None:
    """Train a compiled model like `model.fit(..., validation_data=validation)`, one program per epoch;
    `loss_fn` is the compiled loss, per image (reduction=None: padded validation rows are masked out here)."""
    n = len(x)
    batch_size = min(batch_size, n)
    # As in model.fit, the epoch is full batches and then one smaller batch of the rest: the scan needs equal
    # batches, and padding the last one instead would put zero rows into batch normalization's statistics.
    # The smaller batch compiles its step once more, as model.fit's does (CNN model 7 on the 2-core CPU: 4.3-4.7 s
    # to compile an epoch without one, 7.9-8.2 s with one). Filling it up with its own rows repeated compiles once,
    # but its batch statistics are exact only where it divides the batch size (otherwise weights were up to 30%
    # off model.fit's after two steps): not used.
    steps, rest = divmod(n, batch_size)
    full = steps * batch_size
    val_batches = _padded(*validation, min(validation_batch_size, len(validation[0])))
    arrays = (jax.device_put(x), jax.device_put(y), *val_batches)
    n_val = float(len(validation[0]))
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)

    def loss_and_updates(trainable: list, non_trainable: list, xb: jax.Array, yb: jax.Array) -> tuple[Any, Any]:
        """A batch's mean loss, with the updated non-trainable variables and the predictions."""
        pred, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=True)
        return jnp.mean(loss_fn(yb, pred)), (non_trainable, pred)

    grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

    def train_step(state: tuple, batch: tuple) -> tuple[tuple, tuple]:
        """One optimizer step; the new state, and the batch's summed loss and correct predictions."""
        trainable, non_trainable, opt_vars = state
        (loss, (non_trainable, pred)), grads = grad_fn(trainable, non_trainable, *batch)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        correct = jnp.sum(jnp.argmax(pred, -1) == batch[1])
        return (trainable, non_trainable, opt_vars), (loss * len(batch[1]), correct)

    def val_step(carry: tuple, batch: tuple) -> tuple[tuple, None]:
        """Add one validation batch's summed loss and correct predictions (padding rows masked out)."""
        trainable, non_trainable, loss_sum, correct = carry
        xb, yb, mask = batch
        pred, _ = model.stateless_call(trainable, non_trainable, xb, training=False)
        return (trainable, non_trainable, loss_sum + jnp.sum(loss_fn(yb, pred) * mask),
                correct + jnp.sum((jnp.argmax(pred, -1) == yb) * mask)), None

    # The arrays are arguments, not closed-over constants: JAX would write a closed-over array into the program
    # itself (the 48,000 training images: ~150 MB of it), into its compile time and into each cache entry.
    @jax.jit
    def epoch_fn(state: tuple, key: jax.Array, arrays: tuple) -> tuple[tuple, dict[str, jax.Array]]:
        """One epoch as one program: shuffle, scan the training steps, validate; the new state and the metrics."""
        xs, ys, x_val, y_val, val_mask = arrays
        if shuffle:
            order = jax.random.permutation(key, n)
            xs, ys = xs[order], ys[order]
        state, (losses, correct) = jax.lax.scan(
            train_step, state, (xs[:full].reshape(steps, batch_size, *x.shape[1:]), ys[:full].reshape(steps, -1)),
            unroll=SCAN_UNROLL)
        loss_sum, correct_sum = jnp.sum(losses), jnp.sum(correct)
        if rest:  # the last, smaller batch: its own step, traced once more for its shape
            state, (loss, last_correct) = train_step(state, (xs[full:], ys[full:]))
            loss_sum, correct_sum = loss_sum + loss, correct_sum + last_correct
        (_, _, val_loss, val_correct), _ = jax.lax.scan(
            val_step, (state[0], state[1], jnp.float32(0), jnp.float32(0)), (x_val, y_val, val_mask))
        return state, {"loss": loss_sum / n, "accuracy": correct_sum / n,
                       "val_loss": val_loss / n_val, "val_accuracy": val_correct / n_val}

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    key = jax.random.PRNGKey(seed)
    callback_list.on_train_begin()
    for epoch in range(epochs):
        callback_list.on_epoch_begin(epoch)
        key, epoch_key = jax.random.split(key)
        state, metrics = epoch_fn(_state(model), epoch_key, arrays)  # variables re-read: callbacks may change the lr
        _write_back(model, state)
        logs = {name: float(value) for name, value in metrics.items()}  # the one host sync per epoch
        callback_list.on_epoch_end(epoch, logs)  # the caller's callbacks stop on a NaN loss (search.callbacks)
        if model.stop_training:
            break
    callback_list.on_train_end()
