"""Benchmark: which sampler and pruner settings find good models soonest; prints JSON lines.

Every setting runs the same architecture space on the same data for `--trials` trials with several seeds,
through hpsearch's own objective. Time is counted in epochs trained (summed over trials, pruned ones
included), which does not depend on the machine or its load; reported is the best validation accuracy
reached within each epoch budget, as mean over seeds. Example (CPU, fashion10):
    python bench/sampler_settings.py --data /tmp/f10 --arch lenet --subset 3000 --epochs 6 --trials 30
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from search.records import TrialRecord
from search.sampling import make_pruner
from spaces.param_names import stored_params

SamplerFn = Callable[[int], optuna.samplers.BaseSampler]
PrunerFn = Callable[[int], optuna.pruners.BasePruner]

SAMPLERS: dict[str, SamplerFn] = {
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "tpe-startup10": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
    "tpe-startup5-multivariate": lambda seed: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=5, multivariate=True, group=True),
    "tpe-startup3-multivariate": lambda seed: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=3, multivariate=True, group=True),
}
# hpsearch's own pruners (make_pruner, reduction factor 3), and Hyperband with factor 2 as a variant.
PRUNERS: dict[str, PrunerFn] = {
    "hyperband-r3": lambda epochs: make_pruner("hyperband", epochs),
    "hyperband-r2": lambda epochs: optuna.pruners.HyperbandPruner(1, epochs, reduction_factor=2),
    "sha-r3": lambda epochs: make_pruner("successive-halving", epochs),
    "median": lambda epochs: make_pruner("median", epochs),
    "none": lambda epochs: make_pruner("none", epochs),
}


def best_within(trials: list[optuna.trial.FrozenTrial], budgets: list[int]) -> list[float]:
    """Best value among trials completed before each cumulative-epoch budget ran out."""
    spent, best, curve = 0, 0.0, []
    points: list[tuple[int, float]] = []
    for trial in trials:
        spent += len(TrialRecord.of(trial).history)
        if trial.state == optuna.trial.TrialState.COMPLETE:
            best = max(best, trial.value or 0.0)
        points.append((spent, best))
    for budget in budgets:
        curve.append(max((value for used, value in points if used <= budget), default=0.0))
    return curve


def main() -> None:
    """Run every (sampler, pruner) pair for every seed and print the mean best per epoch budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="lenet")
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--pruners", default="hyperband-r3")
    parser.add_argument("--warm-start", action="store_true", help="enqueue the architecture's DEFAULT first")
    args = parser.parse_args()
    from search.runtime import use_backend

    use_backend(None)
    import spaces
    from search.data import load_dataset
    from search.objective import make_objective

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    arch = spaces.get(args.arch)
    data = load_dataset(args.data, args.subset)
    most = args.epochs * args.trials  # the whole search, if no trial were pruned
    budgets = [args.epochs * k for k in (2, 4, 8, 16, 32, 64) if args.epochs * k < most] + [most]
    for pruner_name in args.pruners.split(","):
        for sampler_name in args.samplers.split(","):
            curves = []
            for seed in map(int, args.seeds.split(",")):
                study = optuna.create_study(direction="maximize", sampler=SAMPLERS[sampler_name](seed),
                                            pruner=PRUNERS[pruner_name](args.epochs))
                if args.warm_start:
                    study.enqueue_trial(stored_params(arch.DEFAULT))
                study.optimize(make_objective(arch, data, args.epochs, seed), n_trials=args.trials)
                curves.append(best_within(study.trials, budgets))
            print(json.dumps({"sampler": sampler_name, "pruner": pruner_name, "arch": args.arch,
                              "warm_start": args.warm_start, "epoch_budgets": budgets,
                              "mean_best": [round(statistics.fmean(c[i] for c in curves), 4)
                                            for i in range(len(budgets))],
                              "per_seed": curves, "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
