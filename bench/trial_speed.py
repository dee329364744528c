"""Benchmark: plain `model.fit` against hpsearch's trial path, per architecture and batch size; prints JSON.

Both train the architecture's first seed model on the same data for the same epochs. `fixed_s` is
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
from pathlib import Path

from search.runtime import device_name, use_backend


def measure_once(run: Callable[[], list[float]], epochs: int) -> tuple[float, float]:
    """One training run: (fixed seconds beyond the steady epochs, steady epoch seconds)."""
    started = time.perf_counter()
    epoch_seconds = run()
    wall = time.perf_counter() - started
    steady = statistics.median(epoch_seconds[1:]) if len(epoch_seconds) > 1 else epoch_seconds[0]
    return wall - steady * epochs, steady


def summarize(runs: list[tuple[float, float]], n_train: int) -> dict[str, float]:
    """Medians over repeated runs."""
    fixed, steady = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    return {"fixed_s": round(fixed, 3), "steady_epoch_s": round(steady, 4), "images_per_s": round(n_train / steady, 1),
            "steady_runs_s": [round(r[1], 4) for r in runs]}


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
    import keras

    import spaces
    from search.data import load_dataset
    from search.export import versions
    from search.objective import EpochRecorder, train
    from spaces._common import make_optimizer

    data = load_dataset(args.data, args.subset)
    rows = []
    for name in args.archs.split(","):
        arch = spaces.get(name)
        base = next(iter(arch.SEED_MODELS.values()))
        for batch in map(int, args.batches.split(",")):
            params = {**base, "batch_size": batch}

            def plain() -> list[float]:
                keras.backend.clear_session()
                keras.utils.set_random_seed(1337)
                model = arch.build(params, data.input_shape, data.num_classes)
                model.compile(optimizer=make_optimizer(params), loss="sparse_categorical_crossentropy",
                              metrics=["accuracy"])
                timer = EpochRecorder()
                model.fit(data.x_train, data.y_train, batch_size=batch, epochs=args.epochs, shuffle=False,
                          validation_data=(data.x_val, data.y_val), verbose=0, callbacks=[timer])
                return [row["seconds"] for row in timer.history]

            def hpsearch() -> list[float]:
                run = train(arch, params, data, args.epochs, 1337)
                return [row["seconds"] for row in run.recorder.history]

            runs: dict[str, list[tuple[float, float]]] = {"plain_fit": [], "hpsearch": []}
            for _ in range(args.repeats):  # interleaved, so drift in machine load hits both paths alike
                runs["plain_fit"].append(measure_once(plain, args.epochs))
                runs["hpsearch"].append(measure_once(hpsearch, args.epochs))
            measured = {path: summarize(found, len(data.x_train)) for path, found in runs.items()}
            fast, slow = measured["hpsearch"], measured["plain_fit"]
            rows.append({"arch": name, "batch": batch, **{f"{p}_{k}": v for p, m in measured.items() for k, v in m.items()},
                         "steady_speedup": round(slow["steady_epoch_s"] / fast["steady_epoch_s"], 2),
                         "fixed_ratio": round(fast["fixed_s"] / slow["fixed_s"], 2) if slow["fixed_s"] > 0 else None})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"bench": "trial_speed", "device": device_name(), "backend": backend,
                      "date": time.strftime("%Y-%m-%d"), "versions": versions(), "train_images": len(data.x_train),
                      "val_images": len(data.x_val), "epochs": args.epochs, "repeats": args.repeats,
                      "rows": rows}))


if __name__ == "__main__":
    main()
