"""Benchmark: first (parse + validate + cache) and second (cached) load of the full train.csv; prints JSON.

Usage: python bench/data_load.py [DATA_DIR]   (DATA_DIR from `hpsearch data prepare`, default data/)
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from search.data import load_dataset


def main(data_dir: Path) -> None:
    """Time a cold load (cache removed) and three warm loads of data_dir/train.csv."""
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
    print(json.dumps({"bench": "data_load", "machine": platform.node(), "rows": len(data.x_train) + len(data.x_val),
                      "cold_s": round(cold, 3), "warm_s": [round(w, 3) for w in warm],
                      "ratio_cold_to_warm": round(cold / min(warm), 1)}))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
