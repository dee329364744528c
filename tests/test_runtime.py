"""Which Keras backend a user gets without asking: JAX where it can use a GPU, TensorFlow on CPU."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from search import runtime
from search.errors import UserError


@pytest.mark.parametrize("device, installed, expected", [
    (True, {"tensorflow", "jax", "jax_cuda13_plugin"}, "jax"),       # `pip install '.[gpu]'` on a GPU machine
    (True, {"tensorflow", "jax", "jax_cuda12_plugin"}, "jax"),
    (False, {"tensorflow", "jax", "jax_cuda13_plugin"}, "tensorflow"),  # CUDA wheels but no GPU driver
    (True, {"tensorflow", "jax"}, "tensorflow"),                        # a GPU, but JAX without CUDA
    (False, {"tensorflow", "jax"}, "tensorflow"),                       # the CPU install with the jax extra
    (False, {"jax"}, "jax"),                                            # no TensorFlow at all
])
def test_default_backend(device: bool, installed: set[str], expected: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    node = tmp_path / "nvidiactl"
    if device:
        node.touch()
    monkeypatch.setattr(runtime, "NVIDIA_DEVICE", node)
    monkeypatch.setattr(runtime, "_installed", lambda module: module in installed)
    assert runtime.default_backend() == expected


def test_keras_backend_variable_and_option_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process runs TensorFlow (conftest); asking for it explicitly or by KERAS_BACKEND keeps it."""
    monkeypatch.setattr(runtime, "jax_gpu_available", lambda: True)  # would pick jax if nothing was said
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert runtime.use_backend(None) == "tensorflow"
    monkeypatch.delenv("KERAS_BACKEND")
    assert runtime.use_backend("tensorflow") == "tensorflow"


@pytest.mark.parametrize("name", ["torch", "numpy", "tensorflw"])
def test_an_untested_or_unknown_backend_is_refused_naming_the_valid_ones(name: str) -> None:
    with pytest.raises(runtime.UserError, match="valid: tensorflow, jax"):
        runtime.use_backend(name)


@pytest.mark.parametrize("backend", runtime.BACKENDS)
def test_keras_imports_without_the_packages_training_does_not_need(backend: str) -> None:
    """In a fresh process, use_backend leaves scikit-learn, pandas (and JAX on TensorFlow) unimported; afterwards
    they import as usual and Keras trains. Fails if a Keras upgrade needs one of them to import."""
    if not runtime._installed(backend):
        pytest.skip(f"{backend} is not installed")
    code = textwrap.dedent(f"""
        import sys
        from search.runtime import SKIPPED_AT_KERAS_IMPORT, use_backend
        use_backend({backend!r})
        print(sorted(name for name in SKIPPED_AT_KERAS_IMPORT[{backend!r}] if name in sys.modules))
        import keras, numpy as np, pandas, sklearn
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(np.zeros((8, 4)), np.zeros(8), verbose=0)
        print(keras.backend.backend(), pandas.DataFrame({{"a": [1]}}).shape, sklearn.__name__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[]", f"{backend} (1, 1) sklearn"]


def test_a_jax_study_needs_neither_tensorflow_nor_pillow(tiny_data: Path, tmp_path: Path) -> None:
    """The GPU image has JAX but no TensorFlow or Pillow: a study on CSV data on its default path (the on-device
    loop), and its export, with Pillow unimportable, train without importing TensorFlow though it is installed
    here (Keras' set_random_seed imported it, for 2.5-3 s and its start-up lines on the terminal), and would fail
    on a new top-level import of Pillow on that path."""
    if not runtime._installed("jax"):
        pytest.skip("jax is not installed")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    code = textwrap.dedent(f"""
        import sys
        from search.runtime import _not_importable
        with _not_importable(("PIL",)):
            from search.cli import app
            for args in (["study", "lenet", "--device-loop", "--trials", "1", "--epochs", "1", "--subset", "50",
                          "--data", {str(tiny_data)!r}], ["export-best", "lenet", "--out", {str(tmp_path / "best")!r}]):
                try:
                    app([*args, "--backend", "jax", "--storage", {url!r}, "--quiet"])
                except SystemExit as exit:
                    print("tensorflow imported:", "tensorflow" in sys.modules, "exit", exit.code)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": ""})
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "tensorflow imported: False exit 0", \
        done.stdout[-500:] + done.stderr[-2000:]
    assert "1 finished trial (" in done.stdout
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr  # TensorFlow's native lines
    # The GPU's default path, here on a CPU: said to be slow there (a review waited 57 s for an epoch, unwarned),
    # also by export-best, which retrains the trial with it.
    slow = "note: on a CPU the on-device loop trains several times slower than model.fit; it is made for GPUs"
    assert done.stderr.count(f"{slow} (--no-device-loop)") == 1, done.stderr
    assert done.stderr.count(f"{slow} (a trial that used it retrains with it, as it trained)") == 1, done.stderr
    assert (tmp_path / "best" / "model.keras").is_file()


def test_an_unknown_backend_from_the_environment_says_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(UserError, match=r"unknown backend 'torch' \(from \$KERAS_BACKEND; --backend overrides it\)"):
        runtime.chosen_backend(None)
    with pytest.raises(UserError, match=r"unknown backend 'theano'; valid"):
        runtime.chosen_backend("theano")


def test_a_backend_not_installed_is_one_line_before_anything_is_written(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    """--backend jax (or KERAS_BACKEND=jax) without JAX installed ended in Keras' 72-line import traceback, exit 1."""
    from typer.testing import CliRunner

    from search.cli import app

    monkeypatch.setattr(runtime, "_installed", lambda module: module != "jax")
    with pytest.raises(UserError, match=r"backend 'jax' is not installed here; install it with pip install -e "):
        runtime.chosen_backend("jax")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(UserError, match=r"backend 'jax' \(from \$KERAS_BACKEND; --backend overrides it\) is not"):
        runtime.chosen_backend(None)
    storage = tmp_path / "db.sqlite"
    result = CliRunner().invoke(app, ["study", "lenet", "--data", str(tmp_path), "--storage", f"sqlite:///{storage}"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "backend 'jax' (from $KERAS_BACKEND; --backend overrides it) is not installed here" in result.stderr
    assert not storage.exists()


def test_native_stderr_is_hidden_unless_the_block_fails(capfd: pytest.CaptureFixture[str]) -> None:
    """Keras' native start-up lines stay off the terminal; a failed import shows them (its diagnostics)."""
    with runtime._native_stderr_captured():
        os.write(2, b"native start-up line\n")
    assert "native start-up line" not in capfd.readouterr().err
    with pytest.raises(ImportError), runtime._native_stderr_captured():
        os.write(2, b"libcudart.so.12: cannot open shared object file\n")
        raise ImportError("keras")
    assert "libcudart.so.12: cannot open shared object file" in capfd.readouterr().err
    # Ctrl-C while Keras imports is no failure to diagnose: the start-up lines came once per worker.
    with pytest.raises(KeyboardInterrupt), runtime._native_stderr_captured():
        os.write(2, b"oneDNN custom operations are on\n")
        raise KeyboardInterrupt
    assert "oneDNN" not in capfd.readouterr().err
