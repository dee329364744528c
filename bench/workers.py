"""Benchmark: finished trials per hour of `hpsearch study --workers K` on one machine, for each K; JSON out.

Each K runs the same study command (fresh storage, same seed, `--timeout` seconds of trial starts) one after
the other; the ratio to K=1 is measured in the same run. Example on a GPU machine:
    python bench/workers.py --data /tmp/data --workers 1,4 --timeout 120
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def finished_per_hour(args: argparse.Namespace, workers: int, storage: str) -> dict[str, Any]:
    """Run one study with `workers` processes; its finished trials and their rate per hour of wall time."""
    import optuna
    from optuna.trial import TrialState

    from search.storage import open_storage

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "search", "study", args.arch, "--trials", "10000", "--workers", str(workers),
                    "--timeout", str(args.timeout), "--epochs", str(args.epochs), "--data", str(args.data),
                    "--storage", storage, "--quiet", *(["--subset", str(args.subset)] if args.subset else [])],
                   check=False)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=args.arch, storage=open_storage(storage))
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return {"workers": workers, "finished": finished, "wall_s": round(wall, 1),
            "per_hour": round(finished / wall * 3600, 1)}


def main() -> None:
    """Measure each K in turn and print one JSON object with the ratios to the first K."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--subset", type=int, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="workers-"))
    rows = [finished_per_hour(args, k, f"journal:///{folder / f'k{k}.log'}") for k in map(int, args.workers.split(","))]
    for row in rows:
        row["ratio_to_first"] = round(row["per_hour"] / rows[0]["per_hour"], 2) if rows[0]["per_hour"] else None
    print(json.dumps({"bench": "workers", "arch": args.arch, "epochs": args.epochs, "timeout_s": args.timeout,
                      "date": time.strftime("%Y-%m-%d"), "rows": rows}))


if __name__ == "__main__":
    main()
