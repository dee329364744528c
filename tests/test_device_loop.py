"""The on-device training loop (JAX): same numbers as model.fit, NaN caught, callbacks honoured.

Keras picks its backend once per process and the suite runs on TensorFlow, so these run in a JAX process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import dataclasses, json, os, sys
from pathlib import Path
from search.runtime import use_backend
use_backend("jax")
import numpy as np
import spaces
from search.data import load_dataset
from search.objective import TrialFailed, train

data = load_dataset(Path(sys.argv[1]), 120)
arch = spaces.get("lenet")
out = {}
DROPOUT = {**arch.SEED_MODELS["model2"], "dropout": 0.25}  # batch 64: a partial last batch
# The levers that act on the device: augmentation layers, label smoothing, a schedule, weight decay. Two batches of
# 60 and no smaller last one, which would compile this, the slowest graph to compile, once more on each path.
LEVERS = {**DROPOUT, "batch_size": 60, "augment": True, "augment_translate": 0.1, "augment_flip": True,
          "augment_erasing": 0.5, "label_smoothing": 0.1, "lr_schedule": "one_cycle", "use_weight_decay": True,
          "weight_decay": 0.01}
del LEVERS["reduce_lr"]
# The plateau run differs from the dropout run only in runtime values (the learning rate, a callback): it reuses
# its compiled programs on both paths (each new model costs seconds of XLA compilation on a CPU; at 1e-4 the
# validation accuracy stalls from epoch 2, so the rate is halved twice in 8 epochs).
cache = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])


def epoch_programs() -> dict[str, int]:
    """The device loop's compiled epoch programs in JAX's persistent cache, by file, with their bytes."""
    return {path.name: path.stat().st_size for path in cache.glob("jit_epoch_fn*")}


known = epoch_programs()
for name, params in (("dropout", DROPOUT), ("levers", LEVERS),
                     ("plateau", {**DROPOUT, "learning_rate": 1e-4, "reduce_lr": True})):
    runs = []
    for loop in (False, True):
        before = set(cache.glob("*"))
        run = train(arch, params, data, 8, 7, device_loop=loop)
        runs.append(run.history.rows)
        if not loop:  # model.fit compiled its steps (not op by op from Python, as with RandomTranslation it did)
            out.setdefault("fit_compiled", []).append(run.model.jit_compile)
        if not loop and name == "levers":  # and so does the model reloaded as the README says, compiled or not
            run.model.save(cache.parent / "levers.keras")
            out["loaded_compiled"] = [spaces.load_model(cache.parent / "levers.keras", compile=compiled).jit_compile
                                      for compiled in (True, False)]
    out[name] = runs
    if name == "dropout":
        out["epoch_program_bytes"] = [size for file, size in epoch_programs().items() if file not in known]
# A runtime value such as the learning rate must not compile a new program on the device: JAX's persistent cache
# (on by default, see search/runtime.py) gains no entry for the plateau run's on-device loop.
out["programs"], out["new_programs"] = len(before), sorted(path.name for path in set(cache.glob("*")) - before)
# The scan unrolled (search.device_loop.SCAN_UNROLL, a lever measured on GPUs): the same steps, so the same numbers.
import search.device_loop
unrolled, programs = {}, []
for unroll in (1, 3):
    search.device_loop.SCAN_UNROLL = unroll
    unrolled[unroll] = train(arch, {**DROPOUT, "batch_size": 30}, data, 2, 7, device_loop=True).history.rows
    programs.append(set(epoch_programs()))
search.device_loop.SCAN_UNROLL = 1
out["unrolled"] = [unrolled[1], unrolled[3]]
out["unrolled_new_programs"] = len(programs[1] - programs[0])  # the unrolled epoch is a program of its own
# bfloat16: layers compute in it on both paths (weights and the softmax output stay float32).
fitted = [train(arch, DROPOUT, data, 8, 7, device_loop=loop, precision="bfloat16") for loop in (False, True)]
out["bfloat16"] = [run.history.rows for run in fitted]
out["dtypes"] = sorted({(layer.compute_dtype, layer.variable_dtype) for run in fitted for layer in run.model.layers
                        if layer.weights})
out["output_dtype"] = fitted[1].model.layers[-1].compute_dtype
# Batch normalization with a last, smaller batch (40 images at batch 32): its statistics come from its own rows
# alone, as in model.fit (padding it to 32 rows put zeros into them: weights off by up to 100% after 2 steps).
cnn, few = spaces.get("cnn"), dataclasses.replace(data, x_train=data.x_train[:40], y_train=data.y_train[:40])
bn_params = {**cnn.SEED_MODELS["model7"], "dropout": 0.0, "head_dropout": 0.0}
bn_runs = [train(cnn, bn_params, few, 1, 7, device_loop=loop) for loop in (False, True)]
out["bn_weights"] = max(float(np.max(np.abs(np.asarray(a.value) - np.asarray(b.value))) /
                              (np.max(np.abs(np.asarray(a.value))) + 1e-12))
                        for a, b in zip(bn_runs[0].model.weights, bn_runs[1].model.weights, strict=True))
out["bn_loss"] = [run.history.rows[0]["loss"] for run in bn_runs]
poisoned = load_dataset(Path(sys.argv[1]), 120)
poisoned.x_train[0] = np.nan
try:
    train(arch, DROPOUT, poisoned, 5, 7, device_loop=True)
    out["nan"] = "trained"
except TrialFailed as exc:
    out["nan"] = str(exc)
# The images are arguments of the epoch program, not constants in it: three times the images, a program as large.
known = epoch_programs()
train(arch, DROPOUT, load_dataset(Path(sys.argv[1]), 360), 1, 7, device_loop=True)
out["epoch_program_bytes"] += [size for file, size in epoch_programs().items() if file not in known]
print(json.dumps(out))
'''


def test_device_loop_matches_model_fit_and_stops_on_nan(tiny_data: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_data)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "KERAS_BACKEND": "jax",
                                            "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name, images in (("dropout", 1), ("levers", 1), ("plateau", 1), ("bfloat16", 2)):
        fit, loop = out[name]
        assert len(fit) == len(loop) == 8
        for a, b in zip(fit, loop, strict=True):
            # Float sums may run in another order on device, so losses can drift apart slowly (measured on the
            # 2-core CPU after 8 epochs: up to 0.2% in float32, 0.1% and one image in bfloat16); accuracies may
            # differ by an image (two in bfloat16, whose 8-bit mantissa rounds more) of the 30 validation /
            # 120 training ones.
            for key, tolerance in (("loss", 0.01 * a["loss"]), ("val_loss", 0.01 * a["val_loss"]),
                                   ("accuracy", images / 120 + 1e-6), ("val_accuracy", images / 30 + 1e-6),
                                   ("learning_rate", 1e-9)):
                assert abs(a[key] - b[key]) <= tolerance, (name, key, a, b)
    plain, unrolled = out["unrolled"]  # 4 steps an epoch, unrolled 3: one iteration of 3 steps and 1 step alone
    for a, b in zip(plain, unrolled, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-4 * a["loss"] and abs(a["val_accuracy"] - b["val_accuracy"]) <= 1 / 30
    assert out["unrolled_new_programs"] == 1, out["unrolled_new_programs"]
    # Two steps in float32 leave rounding only (measured: under 1e-5 of each weight's scale).
    assert out["bn_weights"] < 1e-4 and abs(out["bn_loss"][0] - out["bn_loss"][1]) < 1e-5 * out["bn_loss"][0], out
    assert out["dtypes"] == [["bfloat16", "float32"], ["float32", "float32"]], out["dtypes"]  # softmax in float32
    assert out["output_dtype"] == "float32"
    losses = [[row["loss"] for row in out[name][0]] for name in ("bfloat16", "dropout")]
    assert losses[0] != losses[1]  # same model and seed: the precision changed the numbers, so it was applied
    learning_rates = [row["learning_rate"] for row in out["plateau"][1]]
    assert learning_rates[-1] < learning_rates[0]  # ReduceLROnPlateau acted, between compiled epochs
    scheduled = [row["learning_rate"] for row in out["levers"][1]]
    assert scheduled[0] < max(scheduled) and scheduled[-1] < max(scheduled)  # one-cycle: up, then down
    assert out["fit_compiled"] == [True, True, True]
    assert out["loaded_compiled"] == [True, True] and "doesn't support `jit_compile" not in done.stderr
    assert out["nan"] == "loss became nan in epoch 1"
    assert out["programs"] > 0 and out["new_programs"] == [], out["new_programs"]  # another learning rate: none new
    # Measured on the 2-core CPU: 247,770 and 264,690 bytes (1.07x); with the images closed over as constants, as
    # before 2026-12-03, 395,325 and 588,879 (1.49x).
    small, large = out["epoch_program_bytes"]
    assert large < 1.25 * small, out["epoch_program_bytes"]


def test_device_loop_needs_jax_and_its_refusal_writes_nothing(tiny_data: Path, tmp_path: Path) -> None:
    # A real process: there the data and storage are prepared in a forked process while Keras imports, so the
    # refusal must come before that starts (it did not: the study was left behind, holding its subset).
    result = subprocess.run([sys.executable, "-m", "search", "study", "lenet", "--device-loop", "--backend",
                             "tensorflow", "--data", str(tiny_data), "--storage", f"sqlite:///{tmp_path / 'db'}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--device-loop needs the JAX backend" in result.stderr, result.stderr
    assert not (tmp_path / "db").exists()
