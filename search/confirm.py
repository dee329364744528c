"""`hpsearch confirm`: retrain the best configurations with more seeds, so winners are judged by their mean."""
from __future__ import annotations

import keras
import optuna
import pandas as pd
from optuna.trial import TrialState

from search.console import Console, counted
from search.data import Dataset
from search.errors import UserError
from search.objective import TrialFailed, check_precision, rebuilt_note, retrain
from search.records import TrialRecord, confirmations, other_backend_note, retrain_plan, save_confirmation
from search.runtime import device_name, slow_loop_note
from search.tables import confirmation_table
from search.winners import value_of


def confirm(study: optuna.Study, data: Dataset, top: int, seeds: int, console: Console) -> pd.DataFrame:
    """Give each of the `top` best complete trials `seeds` runs (its own run counts as the first seed), each
    retrained as export-best would retrain it."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    chosen = sorted(complete, key=value_of, reverse=True)[:top]
    if len(complete) < top:
        console.warn(f"--top {top}: the study has {counted(len(complete), 'complete trial')}; confirming those")
    backend = keras.backend.backend()
    # Seeds on another backend would mix two sets of random draws into a trial's mean: a trial is confirmed on the
    # backend it trained on. Where the best trials trained on several (a study resumed with another --backend), this
    # process confirms those of its own, and says how to confirm the others. A trial with all its seeds run needs
    # no backend (a rerun after a confirm on each backend refused, or said to confirm one already confirmed).
    done = {number: set(confirmation.seeds) for number, confirmation in confirmations(study).items()}
    first = {trial.number: TrialRecord.of(trial).seed for trial in chosen}  # each trial's own seed, run first
    chosen = [trial for trial in chosen  # those with runs missing
              if not set(range(first[trial.number], first[trial.number] + seeds)) <= done.get(trial.number, set())]
    elsewhere = [trial for trial in chosen if other_backend_note(trial, backend)]
    if elsewhere and elsewhere == chosen:
        raise UserError(f"{other_backend_note(chosen[0], backend)}. confirm adds seeds to the trial's own run, so it "
                        "needs that backend")
    for trial in elsewhere:
        trained_on = TrialRecord.of(trial).backend
        console.warn(f"trial {trial.number} trained on {trained_on}: not confirmed here, as confirm adds seeds on a "
                     f"trial's own backend (this run is on {backend}); the same command with --backend "
                     f"{trained_on} confirms it")
    chosen = [trial for trial in chosen if trial not in elsewhere]
    plans = [retrain_plan(study, trial, backend) for trial in chosen]
    # A precision this device computes wrongly is refused before any score is stored (once one is, the winner
    # is the best confirmed mean).
    for precision in {plan.precision for plan in plans}:
        check_precision(precision)
    if note := slow_loop_note(any(plan.device_loop for plan in plans), device_name(), retrain=True):
        console.warn(note)
    for trial, plan in zip(chosen, plans, strict=True):
        if note := rebuilt_note(plan.arch, trial, data):  # once a trial, before its seeds train
            console.warn(note)
        if trial.number not in confirmations(study):
            save_confirmation(study, trial.number, plan.seed, value_of(trial))  # the trial's own run
        for seed in range(plan.seed, plan.seed + seeds):
            if seed in confirmations(study)[trial.number].seeds:
                continue  # done before (or by another confirm meanwhile): a rerun only adds what is missing
            console.say(f"trial {trial.number}: seed {seed}, {counted(plan.epochs, 'epoch')}")
            try:
                # After its last epoch: export-best ships those weights (the trial's best epoch is the last of
                # the plan), not those of an earlier, better epoch this seed may have had.
                score = float(retrain(plan, data, seed=seed, show=console.epoch).history.rows[-1]["val_accuracy"])
            except TrialFailed as exc:  # a configuration that diverges with some seeds is not one to export
                console.warn(f"trial {trial.number}, seed {seed}: {exc}; scored 0 (export-best would fail)")
                score = 0.0
            # saved after every run, so an interrupted confirm loses at most the run in progress
            save_confirmation(study, trial.number, seed, score)
    return confirmation_table(study)
