"""The pruners `--pruner` names, on plain Optuna studies (no Keras): what each one stops."""
from __future__ import annotations

import optuna
import pytest

from search.config import PRUNERS
from search.sampling import make_pruner


def _study(pruner: str, epochs: int = 9) -> optuna.Study:
    """An in-memory study maximizing with the named pruner, named after it: Hyperband puts trial k of study S in the
    bracket that crc32(f"{S}_{k}") picks, so an unnamed study (a random name) made the Hyperband test below pass or
    fail by chance (it failed in one CI run); a fixed name makes the brackets, and the test, repeatable."""
    return optuna.create_study(study_name=pruner, direction="maximize", pruner=make_pruner(pruner, epochs))


def _finish(study: optuna.Study, curve: list[float]) -> optuna.Trial:
    """Report a validation-accuracy curve epoch by epoch, asking the pruner as the objective does (that is when
    successive halving records a trial's rungs), and complete the trial with its best."""
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        assert not trial.should_prune()
    study.tell(trial, max(curve))
    return trial


@pytest.mark.parametrize("name", [name for name in PRUNERS if name != "dominance"])
def test_every_pruner_name_makes_an_optuna_pruner(name: str) -> None:
    assert isinstance(make_pruner(name, 9), optuna.pruners.BasePruner)


def test_successive_halving_stops_a_second_trial_worse_than_the_first_after_one_epoch() -> None:
    study = _study("successive-halving")
    _finish(study, [0.77, 0.81, 0.85])  # the warm start
    worse = study.ask()
    worse.report(0.20, 1)
    assert worse.should_prune()
    better = study.ask()
    better.report(0.79, 1)
    assert not better.should_prune()


def test_hyperband_lets_a_trial_alone_in_its_bracket_run_on() -> None:
    """Why successive halving was measured: Hyperband's brackets leave early trials without competitors. In this
    study trials 1 and 2 share the warm start's bracket and trial 3 is alone in another."""
    study = _study("hyperband")
    _finish(study, [0.77, 0.81, 0.85])
    stopped = []
    for _ in range(3):
        trial = study.ask()
        trial.report(0.20, 1)
        stopped.append(trial.should_prune())
    assert stopped == [True, True, False]
