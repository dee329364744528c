"""Benchmark: plain `model.fit` against hpsearch's trial paths, per architecture and batch size; prints JSON.

Paths (PATHS): `plain_fit` is plain Keras in float32; `hpsearch` is hpsearch's own training (`search.objective.
train`); on JAX, `device_loop` is its on-device training loop; a `_bf16` suffix trains in bfloat16
(`--precision bfloat16`). All paths train the same notebook model on the same data for the same epochs, in
the same process (so with the JAX compilation cache that hpsearch turns on: a path's first run compiles, later
repeats may find the programs cached). Reported per path, medians over the repeats: `fixed_s`, everything beyond
the steady epochs (build, compile, first-epoch compilation, transfers), and each repeat's in `fixed_runs_s`
(the first cold, later ones with a warm cache); `steady_epoch_s`, the median of epochs 2..E; the best and last
validation accuracy and, against plain `model.fit`, the difference in points (accuracy parity). E.g.
    KERAS_BACKEND=jax python bench/trial_speed.py --data /tmp/data --archs cnn:model7 --epochs 4
and on CPU for a quick check: python bench/trial_speed.py --subset 2000 --epochs 2 --archs lenet,cnn
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from search.config import DEFAULT_SEED
from search.runtime import device_name, use_backend

# hpsearch's trial paths: name -> (on-device loop, precision). "plain_fit" is measured beside them.
PATHS: dict[str, tuple[bool, str]] = {"hpsearch": (False, "float32"), "hpsearch_bf16": (False, "bfloat16"),
                                      "device_loop": (True, "float32"), "device_loop_bf16": (True, "bfloat16")}
Run = tuple[float, float, float, float]  # fixed s, steady epoch s, best and last validation accuracy


def measure_once(run: Callable[[], list[dict]], epochs: int) -> Run:
    """One training run: (fixed seconds beyond the steady epochs, steady epoch seconds, best and last val acc)."""
    started = time.perf_counter()
    rows = run()
    wall = time.perf_counter() - started
    seconds = [row["seconds"] for row in rows]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    accuracies = [float(row["val_accuracy"]) for row in rows]
    return wall - steady * epochs, steady, max(accuracies), accuracies[-1]


def summarize(runs: list[Run], n_train: int) -> dict[str, Any]:
    """Medians over repeated runs, and each run's fixed and steady seconds."""
    fixed, steady, best, last = (statistics.median(r[i] for r in runs) for i in range(4))
    return {"fixed_s": round(fixed, 3), "steady_epoch_s": round(steady, 4), "images_per_s": round(n_train / steady, 1),
            "best_val_accuracy": round(best, 4), "last_val_accuracy": round(last, 4),
            "fixed_runs_s": [round(r[0], 3) for r in runs], "steady_runs_s": [round(r[1], 4) for r in runs]}


def plain_fit(arch: ModuleType, params: dict, data: Any, epochs: int) -> list[dict]:
    """Plain Keras: build, compile, `model.fit` with validation in float32; the epoch rows."""
    import keras

    from search.objective import EpochHistory
    from spaces._blocks import make_callbacks, make_loss, make_optimizer
    from spaces._levers import training_steps

    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(DEFAULT_SEED)
    model = arch.build(params, data.input_shape, data.num_classes)
    steps = training_steps(len(data.x_train), int(params["batch_size"]), epochs)
    model.compile(optimizer=make_optimizer(params, steps), loss=make_loss(params), metrics=["accuracy"])
    timer = EpochHistory()
    model.fit(data.x_train, data.y_train, batch_size=params["batch_size"], epochs=epochs, shuffle=False,
              validation_data=(data.x_val, data.y_val), verbose=0, callbacks=[timer, *make_callbacks(params)])
    return timer.rows


def trial_path(arch: ModuleType, params: dict, data: Any, epochs: int, device_loop: bool,
               precision: str) -> list[dict]:
    """hpsearch's own training (search.objective.train); the epoch rows."""
    from search.objective import train

    return train(arch, params, data, epochs, DEFAULT_SEED, device_loop=device_loop,
                 precision=precision).history.rows


def chosen_models(archs: str) -> list[tuple[str, str | None]]:
    """`cnn:model7,lenet` -> [("cnn", "model7"), ("lenet", None)] (None: the architecture's first model)."""
    return [(name, model or None) for name, _, model in (item.partition(":") for item in archs.split(","))]


def main() -> None:
    """Measure every requested (architecture, batch) pair on every path and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--archs", default="cnn,resnet,lenet,vgg16,alexnet",
                        help="architectures, each optionally with its notebook model: cnn:model7,lenet")
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; medians are reported")
    parser.add_argument("--paths", default=None, help=f"of {', '.join(PATHS)} (default: hpsearch in float32, "
                        "and the device loops on JAX); plain_fit always runs")
    parser.add_argument("--backend", default=None)
    args = parser.parse_args()
    backend = use_backend(args.backend)
    import spaces
    from search.data import load_dataset
    from search.export import versions

    names = args.paths.split(",") if args.paths else ["hpsearch", *(("device_loop", "device_loop_bf16")
                                                                   if backend == "jax" else ())]
    if bad := [n for n in names if n not in PATHS or (PATHS[n][0] and backend != "jax")]:
        parser.error(f"paths not available: {', '.join(bad)} (known: {', '.join(PATHS)}; device loops need JAX)")
    data = load_dataset(args.data, args.subset)
    rows = []
    for name, model in chosen_models(args.archs):
        arch = spaces.get(name)
        base = arch.SEED_MODELS[model] if model else next(iter(arch.SEED_MODELS.values()))
        for batch in map(int, args.batches.split(",")):
            params = {**base, "batch_size": batch}
            paths: dict[str, Callable[[], list[dict]]] = {"plain_fit": partial(plain_fit, arch, params, data,
                                                                               args.epochs)}
            paths.update({path: partial(trial_path, arch, params, data, args.epochs, *PATHS[path]) for path in names})
            runs: dict[str, list[Run]] = {path: [] for path in paths}
            for repeat in range(args.repeats):  # interleaved, so drift in machine load hits every path alike
                for path, fn in paths.items():
                    runs[path].append(measure_once(fn, args.epochs))
                    # Each run as it ends, on stderr: what a run cut short by a time limit still leaves.
                    print(json.dumps({"arch": name, "batch": batch, "path": path, "repeat": repeat,
                                      "run": [round(v, 4) for v in runs[path][-1]]}), file=sys.stderr, flush=True)
            measured = {path: summarize(found, len(data.x_train)) for path, found in runs.items()}
            plain = measured["plain_fit"]
            row = {"arch": name, "model": model or next(iter(arch.SEED_MODELS)), "batch": batch,
                   **{f"{p}_{k}": v for p, m in measured.items() for k, v in m.items()}}
            for path in names:
                row[f"{path}_steady_speedup"] = round(plain["steady_epoch_s"] / measured[path]["steady_epoch_s"], 2)
                row[f"{path}_fixed_ratio"] = round(measured[path]["fixed_s"] / plain["fixed_s"], 2) \
                    if plain["fixed_s"] > 0 else None
                row[f"{path}_best_val_points"] = round(
                    100 * (measured[path]["best_val_accuracy"] - plain["best_val_accuracy"]), 2)
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"bench": "trial_speed", "device": device_name(), "backend": backend,
                      "date": time.strftime("%Y-%m-%d"), "versions": versions(), "train_images": len(data.x_train),
                      "val_images": len(data.x_val), "epochs": args.epochs, "repeats": args.repeats,
                      "rows": rows}))


if __name__ == "__main__":
    main()
