"""Choosing the Keras backend before Keras is imported, and naming the device it runs on."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from collections.abc import Callable, Iterator

from search.errors import UserError

BACKENDS = ("tensorflow", "jax", "torch")


def use_backend(name: str | None) -> str:
    """Select the Keras backend: the given name, else KERAS_BACKEND, else tensorflow."""
    chosen = name or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if chosen not in BACKENDS:
        raise UserError(f"unknown backend {chosen!r}; valid: {', '.join(BACKENDS)}")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != chosen:
        raise UserError(f"Keras is already running on {sys.modules['keras'].backend.backend()}; "
                        f"start a new process for {chosen}")
    os.environ["KERAS_BACKEND"] = chosen
    # TensorFlow's C++ log (start-up lines, a harmless grappler "remapper failed" for LeakyReLU) stays off
    # the terminal; its errors still surface as Python exceptions. TF_CPP_MIN_LOG_LEVEL=0 shows it all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Don't grab the whole GPU in one process: several workers share one card.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if chosen == "jax":
        # Trials with the same graph reuse compiled programs across processes (on the H100 this cut a
        # first epoch from 22.1 s to 4.8 s, ../shared/gpu/README.md).
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path.home() / ".cache" / "hpsearch" / "jax"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    with _native_stderr_captured() as captured:
        try:
            import keras  # noqa: F401 - imported here, once, so its native start-up logs can be hidden
        except BaseException:
            sys.stderr.write(captured())
            raise
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing warnings between trials are expected
    return chosen


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[Callable[[], str]]:
    """Send fd 2 to a temporary file: TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 2)

        def captured() -> str:
            sink.seek(0)
            return sink.read()

        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def device_name() -> str:
    """The device Keras computes on, e.g. 'cpu' or the GPU's name."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else str(device.device_kind)
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu") if gpus else "cpu"
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
