"""Benchmark: the accuracy levers (augmentation, label smoothing, weight decay, schedules) on and off; JSON out.

Two `hpsearch study ARCH` runs with the same seed, trials, epochs and data, one with the levers in the space and
one with `--no-levers`; each then `export-best` (the winner) and `export-best --ensemble 3`, each scored with
`hpsearch score` on testY.csv. Accuracies only: it may share the machine (its seconds are not compared).
Example (CPU, fashion10):
    hpsearch data prepare --labels fashion10 --out /tmp/f10
    python bench/levers.py --data /tmp/f10 --arch cnn --subset 12000 --epochs 10 --trials 12
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from search.storage import open_storage


def hpsearch(*args: str) -> str:
    """Run an hpsearch command; its stdout."""
    done = subprocess.run([sys.executable, "-m", "search", *args], check=True, stdout=subprocess.PIPE, text=True)
    return done.stdout


def scored_export(args: argparse.Namespace, storage: str, out: Path, *extra: str) -> float:
    """Export (with extra options), then the submission's accuracy on testY.csv."""
    hpsearch("export-best", args.arch, "--storage", storage, "--data", str(args.data), "--out", str(out), "-q",
             *extra)
    scored = hpsearch("score", str(out / "submission.csv"), "--labels", str(args.data / "testY.csv"))
    found = re.search(r"accuracy: ([0-9.]+)", scored)
    assert found, scored
    return float(found[1])


def run(args: argparse.Namespace, levers: bool, folder: Path) -> dict[str, Any]:
    """One study with or without the levers, its exports and their test accuracies."""
    name = "levers" if levers else "no-levers"
    storage = f"sqlite:///{folder / f'{name}.db'}"
    started = time.perf_counter()
    hpsearch("study", args.arch, "--levers" if levers else "--no-levers", "--trials", str(args.trials), "--epochs",
             str(args.epochs), "--subset", str(args.subset), "--seed", str(args.seed), "--data", str(args.data),
             "--storage", storage, "--workers", "1", "--quiet")  # one process: the same seed samples the same
    study = optuna.load_study(study_name=args.arch, storage=open_storage(storage))
    return {"space": name, "study_s": round(time.perf_counter() - started, 1),
            "best_val_accuracy": round(study.best_value, 4), "best_params": study.best_params,
            "test_accuracy": scored_export(args, storage, folder / f"{name}-best"),
            "test_accuracy_ensemble3": scored_export(args, storage, folder / f"{name}-ens3", "--ensemble", "3")}


def main() -> None:
    """Run both spaces and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--subset", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="levers-"))
    rows = [run(args, levers, folder) for levers in (False, True)]
    print(json.dumps({"bench": "levers", "arch": args.arch, "subset": args.subset, "epochs": args.epochs,
                      "trials": args.trials, "seed": args.seed, "date": time.strftime("%Y-%m-%d"), "rows": rows}))


if __name__ == "__main__":
    main()
