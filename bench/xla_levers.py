"""Benchmark: levers on the on-device loop's steady epoch (JAX): XLA flags and the scan's unroll; JSON out.

The on-device loop on an H200 ran CNN model 7 at 0.717 s an epoch at batch 32 and 0.245 s at batch 256 (float32),
short of the 0.5 s and 0.15 s goals; at batch 32 that is ~0.5 ms per step for a small CNN, i.e. launch- and
loop-bound, not arithmetic-bound. Each lever below is a way to cut that overhead: command buffers (CUDA graphs)
around the whole loop, smaller graphs allowed, and more steps per loop iteration. Each variant trains in a fresh
process (XLA reads its flags once, at start) with its own compilation cache, so `fixed_s` is a cold compile;
variants run interleaved, repeated. Reported per variant and batch: medians of the steady epoch (epochs 2..E),
fixed seconds and best validation accuracy, and the steady epoch's speed-up over the `default` variant. E.g.
    python bench/xla_levers.py --data /tmp/data --batches 32,256 --epochs 4 --repeats 2
On a CPU the XLA flags for GPUs parse and do nothing: a dry run of the script, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trial_speed import summarize  # bench/ is this script's folder, so on its path (and the trials')

# name -> (XLA_FLAGS added, steps per scan iteration). Flags are XLA's (listed by `strings` on jaxlib's
# libjax_common.so); `+WHILE` adds whole while loops to the command types recorded into CUDA graphs.
VARIANTS: dict[str, tuple[str, int]] = {
    "default": ("", 1),
    "unroll8": ("", 8),
    "graph_while": ("--xla_gpu_enable_command_buffer=+WHILE", 1),
    "graph_while_min1": ("--xla_gpu_enable_command_buffer=+WHILE --xla_gpu_graph_min_graph_size=1", 1),
    "graph_while_unroll8": ("--xla_gpu_enable_command_buffer=+WHILE", 8),
}

# What runs in each fresh process (argv: data folder, subset, arch:model, batch size, epochs, unroll).
TRIAL = r'''
import json, sys
from pathlib import Path
sys.path.insert(0, "bench")
from search.runtime import device_name, use_backend
use_backend("jax")
import spaces
import search.device_loop
from search.config import DEFAULT_SEED
from search.data import load_dataset
from search.objective import train
from trial_speed import measure_once

folder, subset, chosen, batch, epochs, unroll = sys.argv[1:]
search.device_loop.SCAN_UNROLL = int(unroll)
data = load_dataset(Path(folder), int(subset) if subset != "all" else None)
name, _, model = chosen.partition(":")
arch = spaces.get(name)
params = {**arch.SEED_MODELS[model], "batch_size": int(batch)}
run = measure_once(lambda: train(arch, params, data, int(epochs), DEFAULT_SEED, device_loop=True).history.rows,
                   int(epochs))
print(json.dumps({"device": device_name(), "train_images": len(data.x_train), "run": run}))
'''


def measure(variant: str, batch: int, args: argparse.Namespace) -> dict:
    """One training run of `variant` in a fresh process with an empty compilation cache."""
    flags, unroll = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
        env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_COMPILATION_CACHE_DIR": cache,
               "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip(),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", TRIAL, str(args.data.resolve()), args.subset or "all",
                               args.model, str(batch), str(args.epochs), str(unroll)],
                              capture_output=True, text=True, env=env)
    if done.returncode:  # a flag this XLA rejects, or a crash: reported, and the other variants go on
        return {"error": done.stderr.strip().splitlines()[-3:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Measure every variant at every batch size, interleaved; print each run as it ends, then the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--subset", default=None, help="training images (default: all)")
    parser.add_argument("--model", default="cnn:model7", help="architecture:notebook model")
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    args = parser.parse_args()
    if bad := [v for v in args.variants.split(",") if v not in VARIANTS]:
        parser.error(f"unknown variants: {', '.join(bad)}")
    variants, batches = args.variants.split(","), [int(b) for b in args.batches.split(",")]
    found: dict[tuple[str, int], list[dict]] = {(v, b): [] for b in batches for v in variants}
    for repeat in range(args.repeats):  # interleaved, so drift in the machine hits every variant alike
        for batch in batches:
            for variant in variants:
                result = measure(variant, batch, args)
                found[variant, batch].append(result)
                print(json.dumps({"variant": variant, "batch": batch, "repeat": repeat, **result}), file=sys.stderr,
                      flush=True)
    rows, device = [], next((r["device"] for runs in found.values() for r in runs if "device" in r), None)
    for (variant, batch), results in found.items():
        runs = [r["run"] for r in results if "run" in r]
        row: dict = {"variant": variant, "batch": batch, "xla_flags": VARIANTS[variant][0],
                     "unroll": VARIANTS[variant][1], "runs": len(runs), "errors": [r["error"] for r in results
                                                                                   if "error" in r]}
        if runs:  # the medians trial_speed reports, from the same measure_once tuples
            row |= summarize(runs, next(r["train_images"] for r in results if "run" in r))
        rows.append(row)
    base = {row["batch"]: row.get("steady_epoch_s") for row in rows if row["variant"] == "default"}
    for row in rows:
        if row.get("steady_epoch_s") and base.get(row["batch"]):
            row["speedup_vs_default"] = round(base[row["batch"]] / row["steady_epoch_s"], 2)
    print(json.dumps({"bench": "xla_levers", "device": device, "model": args.model, "epochs": args.epochs,
                      "repeats": args.repeats, "subset": args.subset, "date": time.strftime("%Y-%m-%d"),
                      "rows": rows}))


if __name__ == "__main__":
    main()
