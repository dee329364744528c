"""Benchmark: an accuracy-time study with hpsearch's dominance pruning against the same study without it; JSON out.

Both runs are `hpsearch study ARCH --objective accuracy-time` with the same seed, trial count, epochs and data,
one after the other on an otherwise idle machine (the training seconds are an objective: nothing else may run).
The run with the rule trains the very configurations the run without it sampled, in the same order (enqueued):
a sampler fed other timings would otherwise draw other trials, and the comparison would measure the draws.
Printed: each run's wall seconds, training seconds summed over trials, pruned trials, its Pareto front, and
the hypervolume of the pruned run's front as a fraction of the unpruned run's (shared reference point:
accuracy 0 and 1.1 x the slowest front point of either run; see search.pareto). The same configuration's seconds
differ from run to run (up to +-30% on a 2-core CPU), which moves that ratio by itself, so two measures free of
it are printed too: which trials of the unpruned front the pruned run completed, and the hypervolume ratio with
every configuration at its unpruned seconds. `--compare DIR` recomputes them from an earlier run's databases.
Example (CPU, fashion10):
    hpsearch data prepare --labels fashion10 --out /tmp/f10
    python bench/pareto_rule.py --data /tmp/f10 --arch cnn --subset 3000 --epochs 8 --trials 16
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

import optuna
from optuna.trial import TrialState

from search import pareto
from search.records import TrialRecord
from search.storage import open_storage


def run(args: argparse.Namespace, pruner: str, folder: Path, replay: optuna.Study | None = None) -> dict[str, Any]:
    """One accuracy-time study with the given pruner (trying replay's configurations, if given, in its order);
    its timings and front."""
    storage = f"sqlite:///{folder / f'{pruner}.db'}"
    if replay is not None:
        queue = optuna.create_study(study_name=args.arch, storage=open_storage(storage),
                                    directions=["maximize", "minimize"])
        for trial in replay.get_trials(deepcopy=False):
            queue.enqueue_trial(trial.params)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "search", "study", args.arch, "--objective", "accuracy-time", "--pruner",
                    pruner, "--trials", str(args.trials), "--epochs", str(args.epochs), "--subset", str(args.subset),
                    "--seed", str(args.seed), "--data", str(args.data), "--storage", storage, "--quiet",
                    *(["--no-warm-start"] if replay is not None else [])], check=True)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=args.arch, storage=open_storage(storage))
    trials = study.get_trials(deepcopy=False)
    front = sorted((round(t.values[0], 4), round(t.values[1], 2), t.number) for t in study.best_trials)
    return {"pruner": pruner, "study": study, "wall_s": round(wall, 1),
            "train_s": round(sum(TrialRecord.of(t).train_seconds for t in trials), 1),
            "epochs_trained": sum(len(TrialRecord.of(t).history) for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "stopped_after_epoch": {t.number: len(TrialRecord.of(t).history) for t in trials
                                    if t.state == TrialState.PRUNED},
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "best_accuracy": max((a for a, _, _ in front), default=None), "front": front}


def main() -> None:
    """Run the study with and without the rule and print one JSON object comparing them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", type=Path, help="folder of an earlier run (none.db, dominance.db): compare only")
    args = parser.parse_args()
    if args.compare:
        studies = [optuna.load_study(study_name=args.arch, storage=open_storage(f"sqlite:///{args.compare / name}.db"))
                   for name in ("none", "dominance")]
        print(json.dumps({"bench": "pareto_rule", "compare": str(args.compare), **front_kept(*studies)}))
        return
    folder = Path(tempfile.mkdtemp(prefix="pareto-"))
    without = run(args, "none", folder)
    with_rule = run(args, "dominance", folder, replay=without["study"])
    kept = front_kept(without.pop("study"), with_rule.pop("study"))
    fronts = [[(a, s) for a, s, _ in result["front"]] for result in (with_rule, without)]
    print(json.dumps({"bench": "pareto_rule", "arch": args.arch, "subset": args.subset, "epochs": args.epochs,
                      "trials": args.trials, "seed": args.seed, "date": time.strftime("%Y-%m-%d"),
                      "folder": str(folder), "without": without, "with": with_rule,
                      "wall_saved": round(1 - with_rule["wall_s"] / without["wall_s"], 3),
                      "train_saved": round(1 - with_rule["train_s"] / without["train_s"], 3),
                      "epochs_saved": round(1 - with_rule["epochs_trained"] / without["epochs_trained"], 3),
                      "hypervolume_ratio": round(pareto.hypervolume_ratio(*fronts), 3), **kept}))


def front_kept(without: optuna.Study, with_rule: optuna.Study) -> dict[str, Any]:
    """The rule's effect on the front without the run-to-run noise of seconds: the unpruned front's trials that
    the pruned run completed (trial i is the same configuration in both), and the hypervolume ratio with each
    configuration at its unpruned seconds."""
    unpruned = {t.number: (float(t.values[0]), float(t.values[1]))
                for t in without.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    completed = [t.number for t in with_rule.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.number in unpruned]
    front = sorted(t.number for t in without.best_trials)
    return {"unpruned_front": front, "front_trials_completed": [n for n in front if n in completed],
            "hypervolume_ratio_same_seconds": round(pareto.hypervolume_ratio(
                [unpruned[n] for n in completed], [unpruned[n] for n in front]), 3)}


if __name__ == "__main__":
    main()
