"""The sampler a study runs with: seeded at a process's first trial, so processes that open a study together (the
same command on several machines) draw different trials, while one process's draws follow from --seed; TPE draws
knowing the trials still running. Plain Optuna studies (on a real SQLite storage where processes share one), LeNet's
search space (no Keras)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

import spaces
from search import sampling
from search.sampling import TPE_STARTUP_TRIALS, FirstTrialSeeded, make_sampler
from spaces.param_names import model_params


def _opened(url: str, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """The study "lenet" of a storage as one process opens it, with its sampler."""
    return optuna.create_study(storage=url, study_name="lenet", direction="maximize", sampler=sampler,
                               load_if_exists=True)


def _draw(study: optuna.Study, value: float) -> dict:
    """One trial of LeNet's space (levers too) asked, told `value`; its params."""
    return _drawn_together([study], [value])[0]


def _drawn_together(studies: list[optuna.Study], values: list[float]) -> list[dict]:
    """A trial of LeNet's space (levers too) asked of each study before any is told its value, as processes
    training at the same time do; their params."""
    trials = [study.ask() for study in studies]
    params = [model_params(spaces.get("lenet").suggest(trial)) for trial in trials]
    for study, trial, value in zip(studies, trials, values, strict=True):
        study.tell(trial, value)
    return params


def _together(folder: Path, make: Callable[[], optuna.samplers.BaseSampler]) -> list[list[dict]]:
    """Two processes open one new study before either asks, then train a trial each at the same time, 5 times
    (past TPE's random start-up); the params each drew, round by round."""
    folder.mkdir()
    url = f"sqlite:///{folder / 'db.sqlite'}"
    studies = [_opened(url, make()), _opened(url, make())]
    return [_drawn_together(studies, [0.5 + 0.01 * turn, 0.6 - 0.01 * turn]) for turn in range(5)]


@pytest.mark.parametrize("kind", ["tpe", "random"])
def test_processes_that_open_a_study_together_draw_different_trials(kind: str, tmp_path: Path) -> None:
    # Seeded as before, with --seed plus the trials found at opening (none for both), they drew the same trials.
    same = _together(tmp_path / "before", lambda: make_sampler(kind, 1337))
    assert all(a == b for a, b in same[:2])
    rounds = _together(tmp_path / "now", lambda: FirstTrialSeeded(kind, 1337))
    assert all(a != b for a, b in rounds)


def test_one_process_draws_follow_from_the_seed_and_a_resumed_study_draws_anew(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    runs = []
    for name in ("a", "b", "c"):
        study = _opened(f"sqlite:///{tmp_path / name}.sqlite", FirstTrialSeeded("tpe", 7 if name != "c" else 8))
        runs.append([_draw(study, 0.5 + 0.01 * turn) for turn in range(5)])
    assert runs[0] == runs[1] and runs[0] != runs[2]  # the same --seed, the same draws; another seed, others
    seeds: list[int] = []  # a different draw alone proves nothing: past TPE's start-up it follows the history
    monkeypatch.setattr(sampling, "make_sampler", lambda kind, seed: seeds.append(seed) or make_sampler(kind, seed))
    resumed = _opened(f"sqlite:///{tmp_path / 'a'}.sqlite", FirstTrialSeeded("tpe", 7))
    _draw(resumed, 0.4)
    assert seeds == [7 + 5] and resumed.trials[-1].number == 5  # seeded at trial 5: not a replay of the first draws


def test_the_sampler_is_made_at_the_first_trial() -> None:
    sampler = FirstTrialSeeded("random", 3)
    assert sampler.sampler is None
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"x": 0.5})
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    assert isinstance(sampler.sampler, optuna.samplers.RandomSampler)
    assert study.trials[0].params == {"x": 0.5} and len({t.params["x"] for t in study.trials}) == 3


def test_tpe_counts_a_trial_still_running_elsewhere() -> None:
    """Optuna's constant liar: a trial asked while another still trains is drawn knowing that one (with it off, the
    same seed and history draw otherwise)."""
    draws = []
    for sampler in (make_sampler("tpe", 5), optuna.samplers.TPESampler(
            seed=5, n_startup_trials=TPE_STARTUP_TRIALS, multivariate=True, group=True, constant_liar=False)):
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for turn in range(TPE_STARTUP_TRIALS + 2):  # past the random start-up
            _draw(study, 0.5 + 0.01 * turn)
        spaces.get("lenet").suggest(study.ask())  # still training when the next is asked
        draws.append(_draw(study, 0.6))
    assert draws[0] != draws[1]
