"""Benchmark: an architecture's DEFAULT configuration and variants of it, over three seeds; JSON lines.

What each space's warm-start configuration was chosen from: the best validation accuracy of a short run
(a few epochs on a few thousand images, where a study's first trial must already be good).
Example: python bench/defaults.py --data /tmp/f10 --arch cnn --subset 3000 --epochs 6 \
             --variants '{"as is": {}, "no batch norm": {"batch_norm": false}}'
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    """Train DEFAULT updated by each variant for every seed and print the scores and their mean."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--variants", default='{"as is": {}}', help="JSON: name -> params to change")
    args = parser.parse_args()
    from search.runtime import use_backend

    use_backend(None)
    import spaces
    from search.data import load_dataset
    from search.objective import train

    data = load_dataset(args.data, args.subset)
    arch = spaces.get(args.arch)
    for name, change in json.loads(args.variants).items():
        runs = [train(arch, {**arch.DEFAULT, **change}, data, args.epochs, seed).history
                for seed in map(int, args.seeds.split(","))]
        scores = [round(run.best_epoch()[1], 4) for run in runs]
        # Per epoch, mean over seeds: how soon the configuration is good (the first epoch includes compilation).
        curve = [round(statistics.fmean(run.rows[e]["val_accuracy"] for run in runs), 4) for e in range(args.epochs)]
        seconds = [round(statistics.fmean(run.rows[e]["seconds"] for run in runs), 2) for e in range(args.epochs)]
        print(json.dumps({"arch": args.arch, "variant": name, "change": change, "scores": scores,
                          "mean": round(statistics.fmean(scores), 4), "val_accuracy_by_epoch": curve,
                          "seconds_by_epoch": seconds}), flush=True)


if __name__ == "__main__":
    main()
