"""Benchmark: the fixed cost of an on-device-loop trial (JAX), for one or more source trees; JSON out.

Each tree (a checkout of hpsearch, e.g. a `git worktree` of an earlier commit) trains the same model twice in a
fresh process with an empty JAX compilation cache: once cold (it compiles), once warm (the persistent cache
serves the programs). Reported per run: JAX's own seconds for lowering to MLIR, for XLA compilation and for
reading the cache (jax.monitoring), the wall seconds of each first and second epoch, and the bytes of the
cached epoch programs. Trees run interleaved; run with nothing else on the machine. Example:
    git worktree add /tmp/before f0cbac7
    python bench/loop_programs.py --data /tmp/f5 --subset 6000 --trees /tmp/before,. --repeats 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# What runs in each fresh process (argv: data folder, subset, architecture, notebook model, batch size).
TRIAL = r'''
import collections, json, os, sys, time
from pathlib import Path
from search.runtime import use_backend
use_backend("jax")
import jax.monitoring
import spaces
from search.data import load_dataset
from search.objective import train

seconds = collections.defaultdict(float)
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **_: seconds.__setitem__(event, seconds[event] + duration))
data = load_dataset(Path(sys.argv[1]), int(sys.argv[2]))
arch = spaces.get(sys.argv[3])
params = {**arch.SEED_MODELS[sys.argv[4]], "batch_size": int(sys.argv[5])}
out = {"train_images": len(data.x_train), "val_images": len(data.x_val)}
for run in ("cold", "warm"):
    seconds.clear()
    rows = train(arch, params, data, 2, 7, device_loop=True).history.rows
    out[run] = {"epoch1_s": round(rows[0]["seconds"], 2), "epoch2_s": round(rows[1]["seconds"], 2),
                **{name: round(seconds[event], 3) for name, event in (
                    ("to_mlir_s", "/jax/core/compile/jaxpr_to_mlir_module_duration"),
                    ("compile_s", "/jax/core/compile/backend_compile_duration"),
                    ("cache_read_s", "/jax/compilation_cache/cache_retrieval_time_sec"))}}
cache = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
out["epoch_program_bytes"] = sum(path.stat().st_size for path in cache.glob("jit_epoch_fn*"))
print(json.dumps(out))
'''


def measure(tree: Path, args: argparse.Namespace) -> dict:
    """One fresh process of `tree`'s sources with an empty compilation cache: its cold and warm runs."""
    with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
        done = subprocess.run([sys.executable, "-c", TRIAL, str(args.data.resolve()), str(args.subset), args.arch,
                               args.model, str(args.batch)], cwd=tree, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(tree.resolve()), "KERAS_BACKEND": "jax",
                                   "JAX_COMPILATION_CACHE_DIR": cache})
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Measure every tree, interleaved; print each run as it ends and then the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--subset", type=int, default=6000)
    parser.add_argument("--arch", default="lenet")
    parser.add_argument("--model", default="model2", help="the notebook model whose settings are trained")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--trees", default=".", help="comma-separated source trees")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    trees = [Path(tree) for tree in args.trees.split(",")]
    runs: dict[str, list[dict]] = {str(tree): [] for tree in trees}
    for repeat in range(args.repeats):
        for tree in trees:
            runs[str(tree)].append(measure(tree, args))
            print(json.dumps({"tree": str(tree), "repeat": repeat, **runs[str(tree)][-1]}), file=sys.stderr,
                  flush=True)
    medians = {tree: {f"{run}_{key}": round(statistics.median(r[run][key] for r in found), 3)
                      for run in ("cold", "warm") for key in found[0][run]}
               | {"epoch_program_bytes": statistics.median(r["epoch_program_bytes"] for r in found)}
               for tree, found in runs.items()}
    print(json.dumps({"bench": "loop_programs", "arch": args.arch, "model": args.model, "batch": args.batch,
                      "subset": args.subset, "date": time.strftime("%Y-%m-%d"), "median": medians}))


if __name__ == "__main__":
    main()
