"""Benchmark: does predicting each image as the mean of it and its mirror image raise accuracy? JSON lines.

Trains a notebook model of an architecture, changed by each variant, for every seed; scores the same trained
model on the validation and test sets (testY.csv) alone, averaged with the mirror image (export-best's
`--mirror`, search.export.averaged_model), and on the mirror image only.
Example: python bench/mirror.py --data /tmp/f10 --arch cnn --model model7 --epochs 12 --seeds 7 \
             --variants '{"trained mirrored": {"augment_flip": true}, "not mirrored": {}}' \
             --change '{"augment_translate": 0.1, "lr_schedule": "cosine", "reduce_lr": false}'
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from peers import true_labels  # bench/ is on sys.path when this runs as a script


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
    args = parser.parse_args()
    from search.runtime import use_backend

    use_backend(None)
    import spaces
    from search.data import load_dataset, load_test
    from search.export import averaged_model, predict_labels
    from search.objective import train

    data = load_dataset(args.data)
    test_ids, x_test = load_test(args.data, data.input_shape)
    arch = spaces.get(args.arch)
    splits = {"val": (data.x_val, data.y_val), "test": (x_test, true_labels(args.data, test_ids))}
    for seed in map(int, args.seeds.split(",")):
        for name, change in json.loads(args.variants).items():
            params = {**arch.SEED_MODELS[args.model], **json.loads(args.change), **change}
            started = time.perf_counter()
            model = train(arch, params, data, args.epochs, seed).model
            row = {"arch": args.arch, "variant": name, "params": params, "seed": seed, "epochs": args.epochs,
                   "train_s": round(time.perf_counter() - started)}
            mirrored = averaged_model([model], data.input_shape, mirror=True)
            for split, (x, y) in splits.items():
                for view, scored, images in (("", model, x), ("_with_mirror", mirrored, x),
                                             ("_mirror_only", model, x[:, :, ::-1])):
                    row[f"{split}{view}"] = round(float(np.mean(predict_labels(scored, images) == y)), 4)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
