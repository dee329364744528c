"""The peers benchmark's curve comparison and its adapter from Optuna's suggest API to KerasTuner's."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("peers", Path(__file__).parents[1] / "bench" / "peers.py")
peers = importlib.util.module_from_spec(spec)
sys.modules["peers"] = peers
spec.loader.exec_module(peers)


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

    hp = kt.HyperParameters()
    params = spaces.get("cnn").suggest(peers.KerasTunerTrial(hp))
    assert set(params) <= set(hp.values) and params["batch_size"] in (32, 64, 128, 256)
    assert spaces.get("cnn").suggest(peers.KerasTunerTrial(hp)) == params  # asked again: the same values


def test_best_so_far_keeps_the_running_maximum() -> None:
    assert peers.best_so_far([(3.0, 0.5), (1.0, 0.6), (2.0, 0.4), (4.0, 0.7)]) == [(1.0, 0.6), (4.0, 0.7)]
