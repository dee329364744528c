"""Benchmark: seconds from starting `hpsearch study` to its first epoch line, for one or more source trees; JSON out.

What a user waits for before the first result. Each tree (a checkout of hpsearch, e.g. a `git worktree` of an
earlier commit) runs `study ARCH --trials N --epochs 1` on a new SQLite file, interleaved with the others, and is
stopped once its first epoch line appears. `--trials 16` asks for more than one round of trials, which is where
a search used to start in a fresh worker process. Run with nothing else on the machine. Example:
    git worktree add /tmp/before f11326f
    python bench/first_result.py --data /tmp/f10 --trees /tmp/before,. --repeats 4
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds_to_first_epoch(tree: Path, args: argparse.Namespace, folder: Path) -> float:
    """Start the study from `tree`'s sources; the seconds until its first epoch line."""
    storage = f"sqlite:///{tempfile.mktemp(suffix='.db', dir=folder)}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "search", "study", args.arch, "--trials", str(args.trials),
                             "--epochs", "1", "--subset", str(args.subset), "--data", str(args.data.resolve()),
                             "--storage", storage], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree.resolve())},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    took = float("nan")
    for line in proc.stderr:
        if "epoch 1/1" in line:
            took = time.perf_counter() - started
            break
    os.killpg(proc.pid, signal.SIGKILL)  # its workers too
    proc.wait()
    return round(took, 2)


def main() -> None:
    """Time every tree, interleaved, and print the seconds and their medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--trees", default=".", help="comma-separated source trees")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    trees = [Path(tree) for tree in args.trees.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="first-result-"))
    seconds: dict[str, list[float]] = {str(tree): [] for tree in trees}
    for _ in range(args.repeats):
        for tree in trees:
            seconds[str(tree)].append(seconds_to_first_epoch(tree, args, folder))
    print(json.dumps({"bench": "first_result", "arch": args.arch, "subset": args.subset, "trials": args.trials,
                      "date": time.strftime("%Y-%m-%d"), "seconds": seconds,
                      "median": {tree: statistics.median(values) for tree, values in seconds.items()}}))


if __name__ == "__main__":
    main()
