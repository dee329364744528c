"""Which trial wins a study: its value, its Pareto front, the winner (a confirmed mean first) and the ranking
export-best and report follow."""
from __future__ import annotations

import shlex

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import pareto
from search.console import counted, listed
from search.errors import UserError
from search.records import FINISHED, Confirmation, StudyRecord, TrialRecord, confirmations, replay_scale


def value_of(trial: FrozenTrial) -> float:
    """A trial's best validation accuracy (its value; the first of an accuracy-time study's two values); NaN for
    a trial that has none (pruned in a two-objective study, failed)."""
    return float(trial.values[0]) if trial.values else float("nan")


def shown_accuracy(trial: FrozenTrial) -> float | None:
    """The accuracy tables and charts show for a trial: its best epoch's validation accuracy (None for none). A
    complete trial's value is that; a pruned one keeps the last epoch's it reported (one objective) or none (two),
    so its history says the best it reached before it was stopped."""
    history = TrialRecord.of(trial).history
    if trial.state == TrialState.PRUNED and history:
        return pareto.objectives(history)[0]
    return value_of(trial) if trial.values else None


def seconds_of(trial: FrozenTrial) -> float:
    """A finished trial's steady seconds (search.pareto): an accuracy-time study's second value, on which its front
    was drawn even if an older hpsearch timed it otherwise; else from its history (a pruned or one-objective trial)."""
    values = trial.values or []
    return float(values[1]) if len(values) > 1 else round(pareto.steady_seconds(TrialRecord.of(trial).history), 3)


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """One trial of the study, without copying all of them (study.trials deep-copies every trial)."""
    return study.get_trials(deepcopy=False)[number]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials no other complete trial beats on both accuracy and seconds (Optuna's best_trials);
    in a one-objective study, its best trial."""
    try:
        return study.best_trials
    except ValueError:  # no complete trial yet
        return []


def judged_confirmations(study: optuna.Study) -> dict[int, Confirmation]:
    """The confirmations a winner is chosen by: those of more than one seed (Confirmation.judged)."""
    return {number: entry for number, entry in confirmations(study).items() if entry.judged}


def winner(study: optuna.Study, within: float | None = None) -> FrozenTrial | None:
    """The study's best configuration; None before any trial completes. After `hpsearch confirm`, the best mean
    over seeds (a lucky single run does not win). Else Optuna's best trial, or in an accuracy-time study the
    point of its Pareto front picked by `within`: the fastest within that many points of accuracy of the most
    accurate (None: the most accurate)."""
    two_objectives = len(study.directions) > 1
    if within is not None and not two_objectives:
        raise UserError(f"--pick fastest-within needs a study made with --objective accuracy-time; "
                        f"{study.study_name!r} optimizes accuracy alone")
    confirmed = judged_confirmations(study)
    if confirmed and within is None:
        return trial_by_number(study, max(confirmed, key=lambda number: confirmed[number].mean))
    front = pareto_front(study)
    if not front:
        return None
    if not two_objectives:
        return front[0]
    return front[pareto.pick_fastest_within(pareto.trial_points(front), within or 0.0)]


def judged_value(study: optuna.Study, trial: FrozenTrial) -> float:
    """The accuracy a trial is judged by: its mean over seeds where `confirm` judged it, else its value. Studies
    are compared by their winners' (a winner chosen by its mean may have a lower single run than another trial)."""
    entry = judged_confirmations(study).get(trial.number)
    return entry.mean if entry is not None else value_of(trial)


def ranked(study: optuna.Study, within: float | None = None) -> list[FrozenTrial]:
    """The complete trials best first: the winner, then the confirmed ones by mean, then the rest by accuracy
    (the members of an `export-best --ensemble K` are the first K)."""
    first = winner(study, within)
    if first is None:
        return []
    confirmed = judged_confirmations(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    rest = sorted((t for t in complete if t.number != first.number),
                  key=lambda t: (t.number in confirmed, confirmed[t.number].mean if t.number in confirmed
                                 else value_of(t)), reverse=True)
    return [first, *rest]


def last_val_accuracy(trial: FrozenTrial) -> float:
    """A trial's validation accuracy after its last epoch, what the notebook printed for each model (a trial's
    value is its best epoch's); NaN without one."""
    history = TrialRecord.of(trial).history
    return float(history[-1].get("val_accuracy", float("nan"))) if history else float("nan")


def accuracy_text(trial: FrozenTrial, confirmed: dict[int, Confirmation]) -> str:
    """A trial's validation accuracy as the lines naming a winner say it: after `confirm`, its mean over seeds
    (which chose it) before its single run, which may be below another trial's."""
    single = f"val_accuracy {value_of(trial):.4f}"
    if (entry := confirmed.get(trial.number)) is None:
        return single
    return f"confirmed mean {entry.mean:.4f} over {counted(len(entry.seeds), 'seed')}, {single}"


def unconfirmed_note(study: optuna.Study) -> str:
    """A line naming the complete trials no `confirm` has run whose single run beats the confirmed winner's
    mean (they ran after the last confirm, or below its --top): the winner stays a confirmed one, so say so."""
    confirmed = judged_confirmations(study)
    if not confirmed:
        return ""
    best_mean = max(entry.mean for entry in confirmed.values())
    ahead = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if t.number not in confirmed and value_of(t) > best_mean]
    if not ahead:
        return ""
    arch = StudyRecord.of(study).arch
    where = "" if study.study_name == arch else f" --study-name {shlex.quote(study.study_name)}"
    shown = listed(ahead, 5)
    many = len(ahead) > 1
    return (f"note: the winner is the best confirmed mean ({best_mean:.4f}); trial{'s' * many} {shown} "
            f"beat it in a single run but {'are' if many else 'is'} not confirmed: run `hpsearch confirm "
            f"{arch}{where}` again to judge {'them by their' if many else 'it by its'} mean too")


def trained_backend(study: optuna.Study) -> str | None:
    """The Keras backend export-best and confirm retrain on by default: the one the study's finished trials trained
    on; where they differ (a study resumed on another backend), its winner's; None where none recorded one."""
    backends = {TrialRecord.of(trial).backend for trial in study.get_trials(
        deepcopy=False, states=FINISHED)} - {""}
    if len(backends) <= 1:
        return next(iter(backends), None)
    best = winner(study)
    return (TrialRecord.of(best).backend or None) if best else None


def require_winner(study: optuna.Study, within: float | None = None) -> FrozenTrial:
    """The winner, or a one-line error when no trial has completed."""
    best = winner(study, within)
    if best is None:
        command = "replay" if replay_scale(study) is not None else "study"  # a replay study fills by replaying
        raise UserError(f"study {study.study_name!r} has no complete trial yet; run `hpsearch {command}` first")
    return best
