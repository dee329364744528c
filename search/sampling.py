"""The sampler and the pruner a study runs with, chosen by name (`--sampler`, `--pruner`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

# Chosen from bench/sampler_settings.py and bench/peers.py (see make_sampler and make_pruner).
TPE_STARTUP_TRIALS = 3
REDUCTION_FACTOR = 3  # successive halving's and Hyperband's: a third of the trials goes on at each rung


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler by name, seeded. TPE is multivariate over groups of parameters that occur together (the
    spaces are conditional: a learning-rate range per optimizer, a slope only for LeakyReLU) and starts
    modelling after 3 random trials instead of 10: in bench/sampler_settings.py (LeNet, 3,000 images, 24 trials,
    3 seeds) it matched 10 start-up trials and random search up to 48 epochs of budget and led at 96; over 60
    trials (2,000 images, 2 seeds) it led both by 2-4 points from 32 to 240 epochs. Trials still running (other
    workers' or machines') count as poor ones, Optuna's constant liar (its default since 5.0, named here so that no
    version turns it off): K processes asking at once draw apart instead of near one another; one process alone is
    not affected."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP_TRIALS, multivariate=True, group=True,
                                      constant_liar=True)


def make_pruner(kind: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner by name (Hyperband's budget is the epoch count), with a reduction factor of 3 and rungs from
    one epoch. Successive halving is the default: Hyperband spreads the first trials over its brackets, where
    each is alone and runs to its last epoch, so a large, poor draw could take most of a short search (CNN,
    3,000 images, 100 s, bench/peers.py: 2-5 trials with Hyperband, 7-10 and 0.8-2.5 points more with
    successive halving); over 60 LeNet trials (bench/sampler_settings.py) it was within 2 points of Hyperband
    at every budget of epochs and ahead at 16 and from 128. Factor 2 and the median pruner were within 0.5 points
    of Hyperband with factor 3 on 24 trials."""
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                              reduction_factor=REDUCTION_FACTOR)
    if kind == "successive-halving":  # one bracket: a trial must rank in the top third at 1, 3, 9... epochs
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=REDUCTION_FACTOR)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


class FirstTrialSeeded(optuna.samplers.BaseSampler):
    """The named sampler (make_sampler), made at the first trial Optuna announces to it in this process (the first
    this process asks for, or an orphan that `--fail-orphans` fails first) and seeded with `seed` plus that
    trial's number.

    The storage hands out trial numbers one at a time, so processes that open a study at once (machines started
    with the same command, or workers) draw different values: seeded with `seed` plus the trials found at opening,
    two machines started together drew the same first trials and duplicated each other's work. One process's draws
    still follow from --seed, and a resumed study does not replay its first draws."""

    def __init__(self, kind: str, seed: int) -> None:
        self.kind, self.seed = kind, seed
        self.sampler: optuna.samplers.BaseSampler | None = None

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Make the sampler at the first trial (Optuna calls this first for every trial it asks for)."""
        if self.sampler is None:
            self.sampler = make_sampler(self.kind, self.seed + trial.number)
        self.sampler.before_trial(study, trial)

    def _made(self) -> optuna.samplers.BaseSampler:
        """The sampler, made by before_trial."""
        if self.sampler is None:
            raise RuntimeError("a trial was sampled before Optuna announced it (before_trial)")
        return self.sampler

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The sampler's relative search space."""
        return self._made().infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """The sampler's joint draw."""
        return self._made().sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        """The sampler's draw of one parameter."""
        return self._made().sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: optuna.trial.TrialState,
                    values: Sequence[float] | None) -> None:
        """The sampler's bookkeeping after a trial."""
        self._made().after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Reseed the sampler where it is made (Optuna does so only for threads, which hpsearch does not use)."""
        if self.sampler is not None:
            self.sampler.reseed_rng()
