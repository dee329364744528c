"""Benchmark: two costs of a study's start, each against its baseline in the same run, interleaved; JSON out.

- `import`: seconds to import Keras in a fresh process, plainly (`import keras`, as a KerasTuner user's script
  does) and through hpsearch's `use_backend` (which leaves out packages Keras imports for features hpsearch does
  not use: search.runtime.SKIPPED_AT_KERAS_IMPORT).
- `validation`: seconds to validate the default CNN (untrained: the arithmetic is the same) at several batch
  sizes, in one process after a first call per size; hpsearch validates in batches of
  search.objective.validation_batch_size images.
Example: python bench/start_costs.py --data /tmp/f10 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

IMPORTS = {
    "import keras": "import keras",
    "use_backend": "from search.runtime import use_backend; use_backend(None)",
}


def import_seconds(repeats: int) -> dict[str, list[float]]:
    """Seconds of each way to import Keras, in fresh processes, interleaved."""
    seconds: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(repeats):
        for name, code in IMPORTS.items():
            timed = f"import time; started = time.perf_counter(); {code}; print(time.perf_counter() - started)"
            done = subprocess.run([sys.executable, "-c", timed], capture_output=True, text=True, check=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            seconds[name].append(round(float(done.stdout.split()[-1]), 3))
    return seconds


def validation_seconds(data_dir: Path, subset: int | None, batches: list[int], repeats: int) -> dict[int, list[float]]:
    """Seconds to evaluate the validation split at each batch size, interleaved."""
    from search.runtime import use_backend

    use_backend(None)
    import spaces
    from search.data import load_dataset

    data = load_dataset(data_dir, subset)
    cnn = spaces.get("cnn")
    model = cnn.build(cnn.DEFAULT, data.input_shape, data.num_classes)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    seconds: dict[int, list[float]] = {batch: [] for batch in batches}
    for repeat in range(repeats + 1):  # the first round compiles each size and is not counted
        for batch in batches:
            started = time.perf_counter()
            model.evaluate(data.x_val, data.y_val, batch_size=batch, verbose=0)
            if repeat:
                seconds[batch].append(round(time.perf_counter() - started, 4))
    return seconds


def main() -> None:
    """Measure both and print the seconds, their medians and the ratios to the baselines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--subset", type=int, default=None, help="training images (validation: a quarter)")
    parser.add_argument("--batches", default="32,256,1000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    imports = import_seconds(args.repeats)
    medians = {name: statistics.median(values) for name, values in imports.items()}
    print(json.dumps({"bench": "start_costs", "part": "import", "seconds": imports, "median": medians,
                      "ratio": round(medians["use_backend"] / medians["import keras"], 3)}), flush=True)
    batches = [int(batch) for batch in args.batches.split(",")]
    validation = validation_seconds(args.data, args.subset, batches, args.repeats)
    medians_v = {batch: statistics.median(values) for batch, values in validation.items()}
    print(json.dumps({"bench": "start_costs", "part": "validation", "subset": args.subset, "seconds": validation,
                      "median": medians_v, "ratio_to_first": {batch: round(m / medians_v[batches[0]], 3)
                                                              for batch, m in medians_v.items()},
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
