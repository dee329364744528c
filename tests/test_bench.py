"""The benchmarks' logic: the peers benchmark's curve comparison and its adapter from Optuna's suggest API to
KerasTuner's; trial_speed's choice of models and paths."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import spaces
from search.config import PRECISIONS


def _bench(name: str) -> ModuleType:
    """Import bench/<name>.py (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


peers, trial_speed = _bench("peers"), _bench("trial_speed")


def test_compare_curves() -> None:
    ours = [(10.0, 0.8), (20.0, 0.9)]
    theirs = [(5.0, 0.7), (15.0, 0.85), (40.0, 0.88)]
    result = peers.compare(ours, theirs)
    assert result["behind_at_s"] == [5.0, 15.0] and not result["above_at_every_point"]  # none yet at 5 s; 0.8 < 0.85
    assert result["we_reach_it_s"] == 20.0 and result["time_ratio"] == 0.5
    assert peers.compare([(1.0, 0.9)], theirs)["above_at_every_point"]


def test_kerastuner_adapter_samples_the_same_space() -> None:
    import keras_tuner as kt

    import spaces
    from spaces._common import LEARNING_RATES
    from spaces.param_names import stored_params

    hp = kt.HyperParameters()
    params = spaces.get("cnn").suggest(peers.KerasTunerTrial(hp))
    assert set(stored_params(params)) <= {name.split("[")[0] for name in hp.values}
    assert params["batch_size"] in (32, 64, 128, 256)
    assert spaces.get("cnn").suggest(peers.KerasTunerTrial(hp)) == params  # asked again: the same values
    # Each optimizer's rate comes from its own range (KerasTuner keeps a name's first range: all had SGD's).
    for optimizer, (low, high) in LEARNING_RATES.items():
        hp.values["optimizer"] = optimizer
        assert low <= spaces.get("cnn").suggest(peers.KerasTunerTrial(hp))["learning_rate"] <= high, optimizer


def test_best_so_far_keeps_the_running_maximum() -> None:
    assert peers.best_so_far([(3.0, 0.5), (1.0, 0.6), (2.0, 0.4), (4.0, 0.7)]) == [(1.0, 0.6), (4.0, 0.7)]


def test_trial_speed_models_and_paths() -> None:
    assert trial_speed.chosen_models("cnn:model7,lenet") == [("cnn", "model7"), ("lenet", None)]
    assert "model7" in spaces.get("cnn").SEED_MODELS
    assert {precision for _, precision in trial_speed.PATHS.values()} <= set(PRECISIONS)


def test_trial_speed_medians_and_parity_fields() -> None:
    rows = [{"seconds": s, "val_accuracy": a} for s, a in ((5.0, 0.5), (1.0, 0.7), (1.2, 0.6))]
    _, steady, best, last = trial_speed.measure_once(lambda: rows, 3)
    assert steady == pytest.approx(1.1) and (best, last) == (0.7, 0.6)  # steady: median of epochs 2..E
    summary = trial_speed.summarize([(2.0, 1.0, 0.9, 0.8), (1.0, 3.0, 0.7, 0.6), (3.0, 2.0, 0.8, 0.7)], 600)
    assert (summary["fixed_s"], summary["steady_epoch_s"], summary["best_val_accuracy"]) == (2.0, 2.0, 0.8)
    assert summary["fixed_runs_s"] == [2.0, 1.0, 3.0] and summary["images_per_s"] == 300.0
