"""Choosing the Keras backend before Keras is imported, and naming the device it runs on."""
from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from search.errors import UserError

# The backends hpsearch is tested on (Keras also has torch; nothing here tests it, so it is not offered).
BACKENDS = ("tensorflow", "jax")
# How to install each backend (the project's extras; TensorFlow comes with the project, so only a pinned-out one
# is missing).
INSTALL = {"tensorflow": "pip install tensorflow-cpu (tensorflow off x86-64; on a GPU: pip install -e '.[gpu]', "
                         "--backend jax)",
           "jax": "pip install -e '.[jax]' (on an NVIDIA GPU: '.[gpu]')"}
# Modules that JAX's CUDA builds install (`pip install 'jax[cuda13]'` or cuda12): their presence, not an
# import of JAX, tells that JAX can use an NVIDIA GPU.
JAX_CUDA_MODULES = ("jax_cuda13_plugin", "jax_cuda12_plugin")
NVIDIA_DEVICE = Path("/dev/nvidiactl")
# Packages that Keras imports at start-up when they are installed, for features hpsearch does not use:
# scikit-learn for keras.wrappers' estimators, pandas for DataFrame inputs, and, on TensorFlow, JAX for
# TensorFlow Lite's converter. Each import is guarded by Keras and TensorFlow (`try: import ... except
# ImportError`), so hpsearch lets it fail: 3.80 s instead of 5.49 s on the 2-core CPU (bench/start_costs.py;
# tests/test_runtime.py checks that they stay out and can still be imported afterwards).
SKIPPED_AT_KERAS_IMPORT = {"tensorflow": ("sklearn", "pandas", "jax"), "jax": ("sklearn", "pandas")}


def _installed(module: str) -> bool:
    """Whether a top-level module can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def installed_backend(name: str | None) -> str | None:
    """name, if it is a backend offered here and its package is installed; else None."""
    return name if name in BACKENDS and _installed(name) else None


def jax_gpu_available() -> bool:
    """JAX with a CUDA plugin is installed and the NVIDIA driver's device is present."""
    return NVIDIA_DEVICE.exists() and any(_installed(module) for module in JAX_CUDA_MODULES)


def default_backend() -> str:
    """The backend a user gets without asking: JAX where it can use a GPU, else TensorFlow (faster on CPU
    for these models), else JAX if TensorFlow is missing (as on the GPU machine without a CUDA plugin)."""
    if jax_gpu_available():
        return "jax"
    if not _installed("tensorflow") and _installed("jax"):
        return "jax"
    return "tensorflow"


def chosen_backend(name: str | None) -> str:
    """The backend `use_backend` would select (the given name, else KERAS_BACKEND, else `default_backend()`),
    checked, without importing Keras."""
    # An empty --backend is refused, not taken as the default (an unset shell variable, most likely).
    chosen = name if name is not None else os.environ.get("KERAS_BACKEND") or default_backend()
    given = "" if name is not None or not os.environ.get("KERAS_BACKEND") else \
        " (from $KERAS_BACKEND; --backend overrides it)"
    if chosen not in BACKENDS:
        raise UserError(f"unknown backend {chosen!r}{given}; valid: {', '.join(BACKENDS)}")
    if not _installed(chosen):  # else Keras' import died with a 70-line traceback
        raise UserError(f"backend {chosen!r}{given} is not installed here; install it with {INSTALL[chosen]}")
    return chosen


def use_backend(name: str | None) -> str:
    """Select the Keras backend (`chosen_backend`) and import Keras on it."""
    chosen = chosen_backend(name)
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
        # Trials with the same graph reuse compiled programs across processes (measured on an H100: the
        # first epoch of an identical graph went from 22.1 s to 4.8 s).
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path.home() / ".cache" / "hpsearch" / "jax"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    first_import = "keras" not in sys.modules
    with _native_stderr_captured(), _not_importable(SKIPPED_AT_KERAS_IMPORT[chosen]):
        import keras  # noqa: F401 - imported here, once, so its native start-up logs can be hidden
    if chosen == "jax":
        _keras_without_tensorflow()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing warnings between trials are expected
    # Keras' import leaves ~400,000 objects that live as long as the process; frozen, they are no longer
    # scanned by the full gc.collect that every trial's clear_session runs (measured on the 2-core CPU with
    # TensorFlow: 0.22-0.25 s a collection before, under 0.01 s after). Only right after that import: later,
    # freezing would keep whatever garbage exists by then (a test process calls this many times).
    if first_import:
        gc.freeze()
    return chosen


def _keras_without_tensorflow() -> None:
    """On JAX, Keras takes TensorFlow to be missing, even where it is installed (beside JAX on a CPU machine)."""
    # keras.utils.set_random_seed, which starts every trial, imports TensorFlow where it can, only to seed tf.data
    # pipelines, which hpsearch does not use (its arrays are NumPy): 2.5-3 s of each JAX process's first trial on
    # the 2-core CPU, and TensorFlow's native start-up lines on the terminal. Keras asks once and remembers the
    # answer (its LazyModule). The GPU machine has no TensorFlow: there this changes nothing.
    from keras.src.utils import module_utils

    with _not_importable(("tensorflow",)):
        module_utils.tensorflow.available  # noqa: B018 - the property caches False when the import fails


@contextlib.contextmanager
def _not_importable(modules: tuple[str, ...]) -> Iterator[None]:
    """Within the block, importing any of these (not yet imported) top-level modules raises ImportError; after
    it they import as usual. Python's own rule: a None in sys.modules stops an import."""
    blocked = [name for name in modules if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[None]:
    """Send fd 2 to a temporary file: TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL. When the block
    raises (e.g. a failed import), what it wrote is shown on the restored stderr: the native diagnostics; not on
    Ctrl-C, which would show them once per worker."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield
        except KeyboardInterrupt:  # Ctrl-C while Keras imports: the start-up lines are no diagnosis
            raise
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read())
                sys.stderr.flush()


def training_details(device_loop: bool, precision: str) -> list[str]:
    """The ways of training that change a trial's numbers and seconds beyond device and backend, in words."""
    return [*(["on-device training loop"] if device_loop else []), *([precision] if precision != "float32" else [])]


def training_line(device: str, backend: str, details: Sequence[str] = ()) -> str:
    """The line `study` and `replay` say at start: where they train, on which backend, and how."""
    return f"training on {device} ({', '.join([f'Keras backend {backend}', *details])})"


def slow_loop_note(device_loop: bool, device: str, *, retrain: bool = False) -> str:
    """The note that the on-device loop is about to run on a CPU, where it is slow; "" elsewhere or without it.
    `retrain`: for export-best and confirm, which repeat a trial as it trained (they have no --no-device-loop)."""
    if not device_loop or device != "cpu":
        return ""
    why = "a trial that used it retrains with it, as it trained" if retrain else "--no-device-loop"
    return f"note: on a CPU the on-device loop trains several times slower than model.fit; it is made for GPUs ({why})"


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
    raise UserError(f"Keras runs on {backend}; hpsearch supports {', '.join(BACKENDS)}")
