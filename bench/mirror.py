"""Benchmark: do averaged predictions raise accuracy (the mirror image; models of several seeds)? JSON lines.

Trains a notebook model of an architecture, changed by each variant, for every seed; scores the same trained
model on the validation and test sets (testY.csv) alone, averaged with the mirror image (export-best's
`--mirror`, search.export.averaged_model), and on the mirror image only. With several seeds, a last row per
variant scores the mean softmax of its seeds' models (export-best's `--seeds`), alone and with the mirror image.
Example: python bench/mirror.py --data /tmp/f10 --arch cnn --model model7 --epochs 12 --seeds 7 \
             --variants '{"trained mirrored": {"augment_flip": true}, "not mirrored": {}}' \
             --change '{"augment_translate": 0.1, "lr_schedule": "cosine", "reduce_lr": false}'
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from peers import true_labels  # bench/ is on sys.path when this runs as a script

if TYPE_CHECKING:
    import keras


def main() -> None:
    """Train each variant for every seed and print its accuracies with and without the mirror image."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--model", default="model7", help="the notebook model the variants start from")
    parser.add_argument("--change", default="{}", help="JSON: params every variant changes")
    parser.add_argument("--variants", default='{"trained mirrored": {"augment_flip": true}}',
                        help="JSON: name -> params to change")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", default="7")
    parser.add_argument("--subset", type=int, default=None, help="train on this many labelled images (80:20)")
    args = parser.parse_args()
    from search.runtime import use_backend

    use_backend(None)
    import spaces
    from search.data import load_dataset, load_test
    from search.export import averaged_model, predict_labels
    from search.objective import train

    data = load_dataset(args.data, args.subset)
    test_ids, x_test = load_test(args.data, data.input_shape)
    arch = spaces.get(args.arch)
    splits = {"val": (data.x_val, data.y_val), "test": (x_test, true_labels(args.data, test_ids))}
    seeds, variants = [int(seed) for seed in args.seeds.split(",")], json.loads(args.variants)
    trained: dict[str, list[keras.Model]] = {name: [] for name in variants}

    def score(row: dict[str, Any], models: list[keras.Model], views: tuple[str, ...]) -> None:
        """Add the accuracies of the models' mean softmax on each split, in each view, to row and print it."""
        averaged = {mirror: averaged_model(models, data.input_shape, mirror=mirror) for mirror in (False, True)}
        for split, (x, y) in splits.items():
            for view, scored, images in (("", averaged[False], x), ("_with_mirror", averaged[True], x),
                                         ("_mirror_only", averaged[False], x[:, :, ::-1])):
                if view in views:
                    row[f"{split}{view}"] = round(float(np.mean(predict_labels(scored, images) == y)), 4)
        print(json.dumps(row), flush=True)

    for seed in seeds:
        for name, change in variants.items():
            params = {**arch.SEED_MODELS[args.model], **json.loads(args.change), **change}
            started = time.perf_counter()
            trained[name].append(train(arch, params, data, args.epochs, seed).model)
            score({"arch": args.arch, "variant": name, "params": params, "seed": seed, "epochs": args.epochs,
                   "train_s": round(time.perf_counter() - started)}, trained[name][-1:],
                  ("", "_with_mirror", "_mirror_only"))
    for name, models in trained.items() if len(seeds) > 1 else ():
        score({"arch": args.arch, "variant": name, "seeds": seeds, "epochs": args.epochs}, models,
              ("", "_with_mirror"))


if __name__ == "__main__":
    main()
