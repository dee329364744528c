"""Benchmark: hpsearch against KerasTuner's Hyperband on the same space, data and wall-clock budget; JSON out.

Both tools search the same architecture space: KerasTuner's hypermodel asks `spaces.<arch>.suggest` through
an adapter that answers Optuna's `suggest_*` calls with KerasTuner's `HyperParameters`, so neither tool gets
a different space. Both train on the same split (`--subset`), run as subprocesses one after the other on an
otherwise idle machine, and are timed from their process start. Printed per seed and tool: the best
validation accuracy seen so far, at every epoch end of every trial (seconds since the tool's start), and the
test accuracy of the tool's best configuration, retrained, on testY.csv. Needs the `bench` extra (keras-tuner).
Example (CPU, fashion10):
    hpsearch data prepare --labels fashion10 --out /tmp/f10
    python bench/peers.py --data /tmp/f10 --subset 3000 --budget 600 --seeds 1,2,3
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from search.records import TrialRecord


class KerasTunerTrial:
    """Optuna's `suggest_*` calls answered by KerasTuner's HyperParameters: one space serves both tools.

    A range is part of a number's name here, because KerasTuner answers a name it has seen with its first range's
    value. Until 2026-12-06 the spaces asked for `learning_rate` (and `weight_decay`) under one name in a range
    that depends on the optimizer, and every optimizer drew its rate from the first one's range here (SGD's
    0.01-0.15, Adam's included). The spaces now name each optimizer's range apart (spaces.param_names); the
    range in the name stays as a guard for any other name asked in two ranges."""

    def __init__(self, hp: Any) -> None:
        self.hp = hp

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        """A choice among values."""
        return self.hp.Choice(name, list(choices))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        """A float in [low, high], on a log scale if asked."""
        return self.hp.Float(f"{name}[{low:g},{high:g}]", low, high, step=step, sampling="log" if log else "linear")

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        """An integer in [low, high]."""
        return self.hp.Int(f"{name}[{low},{high}]", low, high, step=step, sampling="log" if log else "linear")


def run_kerastuner(args: argparse.Namespace, seed: int, started: float) -> dict[str, Any]:
    """KerasTuner Hyperband until the budget is spent; the best-so-far curve and its best model's test accuracy."""
    from search.runtime import default_backend

    # Keras imported as a KerasTuner user's script imports it (hpsearch's use_backend leaves out packages that
    # Keras imports for features neither tool uses, and freezes the import's objects for the garbage collector).
    os.environ["KERAS_BACKEND"] = args.backend or default_backend()
    import keras
    import keras_tuner as kt

    import spaces
    from search.data import load_dataset, load_test
    from spaces._blocks import make_callbacks, make_loss, make_optimizer
    from spaces._levers import training_steps

    arch = spaces.get(args.arch)
    data = load_dataset(args.data, args.subset)
    seen: list[tuple[float, float]] = []  # (seconds since start, val_accuracy) of every epoch of every trial

    class Space(kt.HyperModel):
        """hpsearch's space as a KerasTuner hypermodel; batch size and callbacks come from the same params."""

        def build(self, hp: Any) -> keras.Model:
            """The space's model for KerasTuner's hyperparameters, compiled as hpsearch compiles it."""
            params = arch.suggest(KerasTunerTrial(hp))
            model = arch.build(params, data.input_shape, data.num_classes)
            # A learning-rate schedule spans the epochs Hyperband gives this trial.
            steps = training_steps(len(data.x_train), int(params["batch_size"]),
                                   int(hp.values.get("tuner/epochs", args.epochs)))
            model.compile(optimizer=make_optimizer(params, steps), loss=make_loss(params), metrics=["accuracy"])
            return model

        def fit(self, hp: Any, model: keras.Model, *fit_args: Any, **kwargs: Any) -> Any:
            """model.fit with the trial's batch size and hpsearch's callbacks for its params."""
            params = arch.suggest(KerasTunerTrial(hp))  # already sampled: returns the trial's values
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), *make_callbacks(params), OverBudget()]
            return model.fit(*fit_args, batch_size=int(params["batch_size"]), **kwargs)

    class OverBudget(keras.callbacks.Callback):
        """Records each epoch's validation accuracy with its time; stops training once the budget ran out."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            """Record the epoch; stop once the budget is spent."""
            seen.append((round(time.time() - started, 2), float((logs or {}).get("val_accuracy", 0.0))))
            if time.time() - started > args.budget:
                self.model.stop_training = True

    class BudgetedHyperband(kt.Hyperband):
        """Hyperband that stops once the budget is spent (KerasTuner has no time limit of its own)."""

        def on_trial_end(self, trial: Any) -> None:
            """End the search once the budget is spent."""
            super().on_trial_end(trial)
            if time.time() - started > args.budget:
                raise StopIteration

    workdir = tempfile.mkdtemp(prefix="kt-")
    tuner = BudgetedHyperband(Space(), objective="val_accuracy", max_epochs=args.epochs, factor=3, seed=seed,
                              hyperband_iterations=10**6,  # keep going until the budget, as hpsearch does
                              directory=workdir, project_name="peers", overwrite=True)
    keras.utils.set_random_seed(seed)
    try:
        tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), shuffle=False,
                     verbose=0)
    except StopIteration:
        pass
    test_ids, x_test = load_test(args.data, data.input_shape)
    truth = true_labels(args.data, test_ids)
    # Retrain the best hyperparameters, as `hpsearch export-best` retrains its best trial (same split, its epochs).
    best_hp = tuner.get_best_hyperparameters(1)[0]
    keras.utils.set_random_seed(seed)
    model = Space().build(best_hp)
    params = arch.suggest(KerasTunerTrial(best_hp))
    model.fit(data.x_train, data.y_train, batch_size=int(params["batch_size"]), shuffle=False, verbose=0,
              epochs=int(best_hp.values.get("tuner/epochs", args.epochs)), callbacks=make_callbacks(params),
              validation_data=(data.x_val, data.y_val))  # ReduceLROnPlateau watches val_accuracy
    test_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == truth))
    return {"curve": best_so_far(seen), "trials": len(tuner.oracle.trials), "test_accuracy": round(test_accuracy, 4)}


def best_so_far(seen: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The running maximum of (time, validation accuracy) points, one point where it rises."""
    curve: list[tuple[float, float]] = []
    for when, value in sorted(seen):
        if not curve or value > curve[-1][1]:
            curve.append((when, value))
    return curve


def best_at(curve: list[tuple[float, float]], t: float) -> float:
    """The best-so-far value of a curve at time t (0 before its first finished trial)."""
    return max((value for when, value in curve if when <= t), default=0.0)


def compare(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> dict[str, Any]:
    """Is our best-so-far at least theirs at every time point, and how soon do we reach their final best?"""
    points = sorted({when for when, _ in ours + theirs})
    behind = [t for t in points if best_at(ours, t) < best_at(theirs, t)]
    final, final_at = (theirs[-1][1], theirs[-1][0]) if theirs else (0.0, 0.0)
    reached = next((when for when, value in ours if value >= final), None)
    return {"above_at_every_point": not behind, "behind_at_s": behind[:5], "their_final_best": final,
            "their_final_s": final_at, "we_reach_it_s": reached,
            "time_ratio": round(reached / final_at, 3) if reached is not None and final_at else None}


def true_labels(data_dir: Path, ids: np.ndarray) -> np.ndarray:
    """testY.csv's labels in the order of ids."""
    import pandas as pd

    labels = pd.read_csv(Path(data_dir) / "testY.csv").set_index("Id")["Label"]
    return labels.loc[ids].to_numpy()


def _hpsearch(args: argparse.Namespace, *command: str) -> str:
    """Run an hpsearch command in a fresh process; its stdout."""
    done = subprocess.run([sys.executable, "-m", "search", *command], capture_output=True, text=True, check=True)
    return done.stdout


def run_hpsearch(args: argparse.Namespace, seed: int, base: Path, extra: str = "") -> dict[str, Any]:
    """`hpsearch study` (with the extra options given) with --timeout = the budget, then export-best and
    score; the best-so-far curve. The study is base.db, its export the folder base."""
    import optuna

    url = f"sqlite:///{base.with_suffix('.db')}"
    common = ["--storage", url] + (["--backend", args.backend] if args.backend else [])
    started = time.time()
    _hpsearch(args, "study", args.arch, "--trials", "10000", "--timeout", str(args.budget), "--epochs",
              str(args.epochs), "--data", str(args.data), "--seed", str(seed), "--quiet", *common,
              *(["--subset", str(args.subset)] if args.subset else []), *shlex.split(extra))
    study = optuna.load_study(study_name=args.arch, storage=url)
    seen = []
    for trial in study.get_trials(deepcopy=False):
        if trial.datetime_complete is None:
            continue
        # Epoch ends as the trial recorded them (the wall clock when its epoch-end callback ran, as KerasTuner's).
        for row in TrialRecord.of(trial).history:
            seen.append((round(row["ended_at"] - started, 2), float(row.get("val_accuracy", 0.0))))
    _hpsearch(args, "export-best", args.arch, "--data", str(args.data), "--out", str(base), "--quiet", *common)
    score = _hpsearch(args, "score", str(base / "submission.csv"), "--labels", str(args.data / "testY.csv"))
    mirrored = json.loads((base / "params.json").read_text())["test_time_mirror"]  # export-best's default
    return {"curve": best_so_far(seen), "trials": len(study.trials), "test_time_mirror": mirrored,
            "test_accuracy": float(score.split()[1])}  # "accuracy: 0.9123 on ..."


def main() -> None:
    """Run both tools for every seed, one after the other, and print one JSON object per seed and tool."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=9, help="max epochs per trial (Hyperband's max resource)")
    parser.add_argument("--budget", type=float, default=600, help="wall-clock seconds per tool and seed")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--hpsearch-args", action="append", default=None, metavar="OPTIONS",
                        help="options added to `hpsearch study`, e.g. '--pruner median'; repeat it to run several "
                             "variants, each compared with the same KerasTuner run (default: one run as it is)")
    parser.add_argument("--kerastuner-seed", type=int, help=argparse.SUPPRESS)  # the KerasTuner subprocess
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kerastuner_seed is not None:
        print(json.dumps(run_kerastuner(args, args.kerastuner_seed, args.started)))
        return
    from search.runtime import device_name, use_backend

    # Before anything imports Keras: without it Keras would default to TensorFlow, which a JAX-only GPU image lacks.
    backend = use_backend(args.backend)
    from search.export import versions

    workdir = Path(tempfile.mkdtemp(prefix="peers-"))
    variants = args.hpsearch_args or [""]
    for seed in map(int, args.seeds.split(",")):
        ours = {extra: run_hpsearch(args, seed, workdir / f"hp-{seed}-{i}", extra) for i, extra in enumerate(variants)}
        for extra, hp in ours.items():
            print(json.dumps({"tool": "hpsearch", "options": extra, "seed": seed, **hp}), flush=True)
        started = time.time()
        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--kerastuner-seed", str(seed),
                               "--started", str(started)], capture_output=True, text=True, check=True)
        kt_run = json.loads(done.stdout.splitlines()[-1])
        print(json.dumps({"tool": "kerastuner", "seed": seed, **kt_run}), flush=True)
        for extra, hp in ours.items():
            print(json.dumps({"compare": "hpsearch vs kerastuner", "options": extra, "seed": seed,
                              **compare(hp["curve"], kt_run["curve"])}), flush=True)
    print(json.dumps({"bench": "peers", "device": device_name(), "backend": backend, "arch": args.arch,
                      "subset": args.subset, "epochs": args.epochs, "budget_s": args.budget,
                      "date": time.strftime("%Y-%m-%d"), "versions": versions()}))


if __name__ == "__main__":
    main()
