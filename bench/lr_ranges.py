"""Benchmark: validation accuracy of each optimizer over a grid of learning rates and two batch sizes; JSON lines.

What the per-optimizer learning-rate ranges in spaces/_common.py were chosen from. Every run trains the
architecture's first notebook model with only the optimizer, rate and batch changed (no ReduceLROnPlateau).
Example (CPU, fashion10): python bench/lr_ranges.py --data /tmp/f10 --arch lenet --subset 3000 --epochs 2
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from search.config import DEFAULT_SEED

GRID: dict[str, tuple[float, ...]] = {
    "sgd": (1e-3, 1e-2, 0.03, 0.1, 0.3), "sgd_nesterov": (1e-3, 3e-3, 1e-2, 0.03, 0.1),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 0.03), "adadelta": (1e-3, 0.03, 0.3, 1.0, 3.0),
}


def main() -> None:
    """Train every (optimizer, rate, batch) once and print its best validation accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="lenet")
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    from search.runtime import use_backend

    use_backend(None)
    import spaces
    from search.data import load_dataset
    from search.objective import train

    data = load_dataset(args.data, args.subset)
    arch = spaces.get(args.arch)
    base = next(iter(arch.SEED_MODELS.values()))
    for optimizer, rates in GRID.items():
        for rate in rates:
            for batch in (32, 256):
                params = {**base, "optimizer": optimizer, "learning_rate": rate, "batch_size": batch,
                          "reduce_lr": False}
                best = train(arch, params, data, args.epochs, args.seed).history.best_epoch()[1]
                print(json.dumps({"arch": args.arch, "optimizer": optimizer, "learning_rate": rate,
                                  "batch_size": batch, "best_val_accuracy": round(best, 4)}), flush=True)


if __name__ == "__main__":
    main()
