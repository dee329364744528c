"""On-device training for the JAX backend: data resident on the device, one compiled program per epoch.

`model.fit` on JAX dispatches every batch from Python; at batch 32 that overhead, not arithmetic, sets
the pace on a GPU (measured on an H100: 3.2-4.0 s per epoch of the notebook's CNN model 7 with
`model.fit`, 0.74 s with a prototype of this technique). Here an epoch is one `jax.lax.scan` over the batches, built
from Keras' stateless API, and validation is a second scan. Keras callbacks get the same epoch-level
calls as from `model.fit` (not per batch: a NaN loss is caught at the end of its epoch).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np


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
    """Arrays padded to a multiple of size, reshaped into batches, with a mask of the real rows."""
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
    `loss_fn` is the compiled loss, per image (reduction=None: padded rows are masked out here)."""
    batch_size = min(batch_size, len(x))
    # The scan needs equal batches: the last one is padded, and padded rows weigh nothing in the loss.
    x_train, y_train, train_mask = (a.reshape(-1, *a.shape[2:]) for a in _padded(x, y, batch_size))
    steps, n = len(x_train) // batch_size, len(x)
    x_val, y_val, val_mask = _padded(*validation, min(validation_batch_size, len(validation[0])))
    n_val = float(len(validation[0]))
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)

    def loss_and_updates(trainable: list, non_trainable: list, xb: jax.Array, yb: jax.Array,
                         mask: jax.Array) -> tuple[Any, Any]:
        pred, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=True)
        return jnp.sum(loss_fn(yb, pred) * mask) / jnp.sum(mask), (non_trainable, pred)

    grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

    def train_step(state: tuple, batch: tuple) -> tuple[tuple, tuple]:
        trainable, non_trainable, opt_vars = state
        (loss, (non_trainable, pred)), grads = grad_fn(trainable, non_trainable, *batch)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        correct = jnp.sum((jnp.argmax(pred, -1) == batch[1]) * batch[2])
        return (trainable, non_trainable, opt_vars), (loss * jnp.sum(batch[2]), correct)

    def val_step(carry: tuple, batch: tuple) -> tuple[tuple, None]:
        trainable, non_trainable, loss_sum, correct = carry
        xb, yb, mask = batch
        pred, _ = model.stateless_call(trainable, non_trainable, xb, training=False)
        return (trainable, non_trainable, loss_sum + jnp.sum(loss_fn(yb, pred) * mask),
                correct + jnp.sum((jnp.argmax(pred, -1) == yb) * mask)), None

    @jax.jit
    def epoch_fn(state: tuple, key: jax.Array) -> tuple[tuple, dict[str, jax.Array]]:
        order = jnp.arange(steps * batch_size)
        if shuffle:  # shuffle the real rows; the padding stays at the end
            order = order.at[:n].set(jax.random.permutation(key, n))
        batches = (x_train[order].reshape(steps, batch_size, *x.shape[1:]),
                   y_train[order].reshape(steps, batch_size), train_mask[order].reshape(steps, batch_size))
        state, (losses, correct) = jax.lax.scan(train_step, state, batches)
        (_, _, val_loss, val_correct), _ = jax.lax.scan(
            val_step, (state[0], state[1], jnp.float32(0), jnp.float32(0)), (x_val, y_val, val_mask))
        return state, {"loss": jnp.sum(losses) / n, "accuracy": jnp.sum(correct) / n,
                       "val_loss": val_loss / n_val, "val_accuracy": val_correct / n_val}

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    key = jax.random.PRNGKey(seed)
    callback_list.on_train_begin()
    for epoch in range(epochs):
        callback_list.on_epoch_begin(epoch)
        key, epoch_key = jax.random.split(key)
        state, metrics = epoch_fn(_state(model), epoch_key)  # variables are re-read: callbacks may change the lr
        _write_back(model, state)
        logs = {name: float(value) for name, value in metrics.items()}  # the one host sync per epoch
        if not np.isfinite(logs["loss"]):
            model.stop_training = True
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
