"""Benchmark: plain `model.fit` against hpsearch's trial path, per architecture and batch size; prints JSON.

On JAX a third path, `device_loop`, is hpsearch's on-device training loop (`--device-loop`).
All paths train the architecture's first seed model on the same data for the same epochs. `fixed_s` is
everything beyond the steady epochs (build, compile, first-epoch compilation, transfers);
`steady_epoch_s` is the median of epochs 2..E. Run it on the machine you want numbers for, e.g.
    KERAS_BACKEND=jax python bench/trial_speed.py --data /tmp/data --epochs 4
and on CPU for a quick check: python bench/trial_speed.py --subset 2000 --epochs 2 --archs lenet,cnn
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from search.config import DEFAULT_SEED
from search.runtime import device_name, use_backend


def measure_once(run: Callable[[], list[float]], epochs: int) -> tuple[float, float]:
    """One training run: (fixed seconds beyond the steady epochs, steady epoch seconds)."""
    started = time.perf_counter()
    epoch_seconds = run()
    wall = time.perf_counter() - started
    steady = statistics.median(epoch_seconds[1:]) if len(epoch_seconds) > 1 else epoch_seconds[0]
    return wall - steady * epochs, steady


def summarize(runs: list[tuple[float, float]], n_train: int) -> dict[str, Any]:
    """Medians over repeated runs."""
    fixed, steady = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    return {"fixed_s": round(fixed, 3), "steady_epoch_s": round(steady, 4), "images_per_s": round(n_train / steady, 1),
            "steady_runs_s": [round(r[1], 4) for r in runs]}


def plain_fit(arch: ModuleType, params: dict, data: Any, epochs: int) -> list[float]:
    """Plain Keras: build, compile, `model.fit` with validation; the epoch seconds."""
    import keras

    from search.objective import EpochHistory
    from spaces._common import make_optimizer
    from spaces._levers import make_loss, training_steps

    keras.backend.clear_session()
    keras.utils.set_random_seed(DEFAULT_SEED)
    model = arch.build(params, data.input_shape, data.num_classes)
    steps = training_steps(len(data.x_train), int(params["batch_size"]), epochs)
    model.compile(optimizer=make_optimizer(params, steps), loss=make_loss(params), metrics=["accuracy"])
    timer = EpochHistory()
    model.fit(data.x_train, data.y_train, batch_size=params["batch_size"], epochs=epochs, shuffle=False,
              validation_data=(data.x_val, data.y_val), verbose=0, callbacks=[timer])
    return [row["seconds"] for row in timer.rows]


def trial_path(arch: ModuleType, params: dict, data: Any, epochs: int, device_loop: bool) -> list[float]:
    """hpsearch's own training (search.objective.train); the epoch seconds."""
    from search.objective import train

    run = train(arch, params, data, epochs, DEFAULT_SEED, device_loop=device_loop)
    return [row["seconds"] for row in run.history.rows]


def main() -> None:
    """Measure every requested (architecture, batch) pair with both paths and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--archs", default="cnn,resnet,lenet,vgg16,alexnet")
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; medians are reported")
    parser.add_argument("--backend", default=None)
    args = parser.parse_args()
    backend = use_backend(args.backend)
    import spaces
    from search.data import load_dataset
    from search.export import versions

    data = load_dataset(args.data, args.subset)
    rows = []
    for name in args.archs.split(","):
        arch = spaces.get(name)
        base = next(iter(arch.SEED_MODELS.values()))
        for batch in map(int, args.batches.split(",")):
            params = {**base, "batch_size": batch}

            paths: dict[str, Callable[[], list[float]]] = {
                "plain_fit": partial(plain_fit, arch, params, data, args.epochs),
                "hpsearch": partial(trial_path, arch, params, data, args.epochs, False)}
            if backend == "jax":
                paths["device_loop"] = partial(trial_path, arch, params, data, args.epochs, True)
            runs: dict[str, list[tuple[float, float]]] = {path: [] for path in paths}
            for _ in range(args.repeats):  # interleaved, so drift in machine load hits every path alike
                for path, fn in paths.items():
                    runs[path].append(measure_once(fn, args.epochs))
            measured = {path: summarize(found, len(data.x_train)) for path, found in runs.items()}
            slow = measured["plain_fit"]
            row = {"arch": name, "batch": batch, **{f"{p}_{k}": v for p, m in measured.items() for k, v in m.items()}}
            for path in list(paths)[1:]:
                row[f"{path}_steady_speedup"] = round(slow["steady_epoch_s"] / measured[path]["steady_epoch_s"], 2)
                row[f"{path}_fixed_ratio"] = round(measured[path]["fixed_s"] / slow["fixed_s"], 2) \
                    if slow["fixed_s"] > 0 else None
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"bench": "trial_speed", "device": device_name(), "backend": backend,
                      "date": time.strftime("%Y-%m-%d"), "versions": versions(), "train_images": len(data.x_train),
                      "val_images": len(data.x_val), "epochs": args.epochs, "repeats": args.repeats,
                      "rows": rows}))


if __name__ == "__main__":
    main()
