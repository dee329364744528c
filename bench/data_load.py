"""Benchmark: first (decode + validate + cache) and later (cached) loads of a data folder; prints JSON.

Works for both layouts `--data` takes: the CSV pair (`hpsearch data prepare --out data`) and an image tree
(`hpsearch data prepare --format folders --out images`: 60,000 training PNGs). For CSVs it also times the
SHA-256 of train.csv alone, which every load (cached or not) pays to tie the cache to the content.

Usage: python bench/data_load.py [DATA_DIR]   (default data/)
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from search.csvfiles import content_hash
from search.data import load_dataset


def main(data_dir: Path) -> None:
    """Time a cold load (caches removed) and three warm loads of data_dir."""
    for cache in data_dir.glob(".*.cache.npz"):
        cache.unlink()
    started = time.perf_counter()
    data = load_dataset(data_dir)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        load_dataset(data_dir)
        warm.append(time.perf_counter() - started)
    folders = (data_dir / "train").is_dir()
    result = {"bench": "data_load", "machine": platform.node(), "layout": "folders" if folders else "csv",
              "images": len(data.x_train) + len(data.x_val), "shape": list(data.input_shape),
              "cold_s": round(cold, 3), "warm_s": [round(w, 3) for w in warm],
              "ratio_cold_to_warm": round(cold / min(warm), 1)}
    if not folders:
        started = time.perf_counter()
        content_hash(data_dir / "train.csv")
        result["hash_s"] = round(time.perf_counter() - started, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
