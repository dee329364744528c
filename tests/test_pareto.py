"""The two-objective helpers and the dominance pruning rule, on hand-made histories (no Keras)."""
from __future__ import annotations

import math
import random

import numpy as np
import optuna
import pytest

from search.pareto import (
    MIN_GAIN,
    History,
    Point,
    dominates,
    dominators,
    front_numbers,
    hypervolume,
    hypervolume_ratio,
    least_final_seconds,
    objectives,
    pareto_front,
    pick_fastest_within,
    plausible_gain,
    reference_point,
    should_stop,
    simulate,
    steady_seconds,
    trial_points,
)


def curve(accs: list[float], secs: list[float]) -> list[dict[str, float]]:
    """A history in the objective's format from per-epoch validation accuracies and seconds."""
    return [{"epoch": e, "loss": 1.0, "accuracy": a, "val_loss": 1.0, "val_accuracy": a,
             "learning_rate": 1e-3, "seconds": s} for e, (a, s) in enumerate(zip(accs, secs, strict=True), start=1)]


# Three completed 5-epoch trials: epoch 1 takes 2 s (compilation), later ones about 1 s; epoch 1 counts as
# epoch 2's seconds.
F1 = curve([0.70, 0.80, 0.85, 0.88, 0.90], [2, 1.0, 1.0, 1.0, 1.0])  # ends (0.90, 5.0)
F2 = curve([0.68, 0.78, 0.84, 0.87, 0.89], [2, 1.1, 1.1, 1.1, 1.1])  # ends (0.89, 5.5)
F3 = curve([0.60, 0.75, 0.80, 0.83, 0.86], [2, 1.2, 1.2, 1.2, 1.2])  # ends (0.86, 6.0)
FINISHED = [F1, F2, F3]
SLOW_BAD = curve([0.40, 0.50, 0.52, 0.53, 0.54], [4, 3, 3, 3, 3])


def test_objectives_at_the_end_and_at_an_epoch() -> None:
    """Best accuracy so far and steady seconds; NaN scores are skipped, no score counts as 0."""
    assert objectives(F1) == (0.90, 5.0)
    assert objectives(F1, 2) == (0.80, 2.0)
    assert objectives(F1, 1) == (0.70, 2.0)
    assert objectives(curve([0.5, 0.4, 0.45], [1, 1, 1]), 2) == (0.5, 2.0)  # best so far, not last
    assert objectives(curve([math.nan, 0.3], [1, 1])) == (0.3, 2.0)
    assert objectives(curve([math.nan], [1])) == (0.0, 1.0)
    assert objectives([]) == (0.0, 0.0)
    # An epoch whose logs lacked the score (the history keeps only the keys Keras logged): KeyError before.
    assert objectives([{"epoch": 1, "seconds": 1.0}, {"epoch": 2, "seconds": 1.0, "val_accuracy": None}]) == (0.0, 2.0)


def test_steady_seconds_leave_compilation_out() -> None:
    """Epoch 1 counts at no more than epoch 2's seconds, so the same training with a cold or a warm compilation
    cache has one point; an epoch 2 slower than epoch 1 adds nothing, and a 1-epoch trial keeps its seconds."""
    cold, warm = curve([0.5, 0.6, 0.7], [10.4, 1.0, 1.1]), curve([0.5, 0.6, 0.7], [1.8, 1.0, 1.1])
    assert steady_seconds(cold) == steady_seconds(warm) == pytest.approx(3.1)
    assert objectives(cold) == objectives(warm)
    assert steady_seconds(curve([0.5, 0.6], [1.0, 3.0])) == pytest.approx(4.0)
    assert steady_seconds(curve([0.5], [10.4])) == steady_seconds(cold, 1) == pytest.approx(10.4)
    assert steady_seconds([]) == 0.0
    rng = random.Random(7)  # from epoch 2 on they only grow, which the pruning rule's bounds rely on
    for _ in range(200):
        history = curve([0.5] * 6, [rng.uniform(0.1, 10) for _ in range(6)])
        totals = [steady_seconds(history, e) for e in range(2, 7)]
        assert totals == sorted(totals) and totals[-1] <= sum(row["seconds"] for row in history) + 1e-9


def test_front_keeps_duplicates_and_drops_ties_that_lose() -> None:
    """Equal points are all on the front; equal accuracy but slower, or equal seconds but less
    accurate, is dominated."""
    points = [(0.9, 10.0), (0.9, 10.0), (0.9, 12.0), (0.8, 10.0), (0.8, 5.0), (0.7, 5.0), (0.95, 20.0)]
    assert pareto_front(points) == [0, 1, 4, 6]
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 1.0)]) == [0]
    assert dominates((0.9, 10.0), (0.9, 12.0)) and not dominates((0.9, 10.0), (0.9, 10.0))
    assert not dominates((0.95, 20.0), (0.9, 10.0))


def test_front_agrees_with_optunas_best_trials() -> None:
    """On a real in-memory two-objective study, the front of the complete trials is `best_trials`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    values = [(0.9, 10.0), (0.9, 10.0), (0.9, 12.0), (0.8, 10.0), (0.8, 5.0), (0.7, 5.0), (0.95, 20.0),
              (0.6, 1.0), (0.96, 25.0), (0.5, 3.0)]
    for acc, seconds in values:
        trial = study.ask()
        trial.set_user_attr("history", curve([acc], [seconds]))
        study.tell(trial, [acc, seconds])
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)  # no values: on no front
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    ours = [complete[i].number for i in pareto_front(trial_points(complete))]
    assert ours == front_numbers(study) == [0, 1, 4, 6, 7, 8]
    from_history = [objectives(t.user_attrs["history"]) for t in complete]
    assert from_history == trial_points(complete)


def test_hypervolume_by_hand() -> None:
    """Front (0.5, 2), (0.8, 5), (0.9, 10), reference (0, 20): 0.5*3 + 0.8*5 + 0.9*10 = 14.5."""
    front = [(0.9, 10.0), (0.8, 5.0), (0.5, 2.0)]
    assert hypervolume(front, (0.0, 20.0)) == pytest.approx(14.5)
    assert hypervolume([*front, (0.7, 8.0), (0.8, 5.0)], (0.0, 20.0)) == pytest.approx(14.5)  # dominated
    assert hypervolume([*front, (0.99, 25.0)], (0.0, 20.0)) == pytest.approx(14.5)  # beyond the reference
    assert hypervolume([(0.5, 2.0)], (0.2, 4.0)) == pytest.approx(0.3 * 2.0)
    assert hypervolume([], (0.0, 20.0)) == 0.0


def test_reference_and_ratio() -> None:
    """Shared reference (0, 1.1 x slowest); ratio 1 for the same front, below 1 without a front point."""
    front = [(0.9, 10.0), (0.8, 5.0), (0.5, 2.0)]
    assert reference_point(front, [(0.7, 4.0)]) == (0.0, pytest.approx(11.0))
    assert hypervolume_ratio(front, list(front)) == pytest.approx(1.0)
    assert hypervolume_ratio([*front, (0.6, 9.0)], front) == pytest.approx(1.0)  # a dominated extra
    # Without (0.8, 5), reference (0, 11): 0.5*8 + 0.9*1 = 4.9 against 0.5*3 + 0.8*5 + 0.9*1 = 6.4.
    assert hypervolume_ratio([(0.9, 10.0), (0.5, 2.0)], front) == pytest.approx(4.9 / 6.4)
    assert hypervolume_ratio(front, [(0.9, 10.0), (0.5, 2.0)]) > 1.0
    with pytest.raises(ValueError):
        hypervolume_ratio(front, [])


def test_pick_fastest_within() -> None:
    """0 points: the most accurate; a tolerance: the fastest close enough; a large one: the fastest."""
    front = [(0.90, 100.0), (0.895, 50.0), (0.85, 10.0), (0.70, 5.0)]
    assert pick_fastest_within(front, 0) == 0
    assert pick_fastest_within(front, 0.5) == 1  # 0.895 is exactly 0.5 points below 0.90
    assert pick_fastest_within(front, 0.49) == 0
    assert pick_fastest_within(front, 5) == 2
    assert pick_fastest_within(front, 100) == 3
    # Accuracies as Keras computes them, in float32: exactly 11 points apart, though not as Python floats.
    as_float32 = [(float(np.float32(0.76)), 9.0), (float(np.float32(0.65)), 4.0)]
    assert pick_fastest_within(as_float32, 11) == 1
    # Not a front: a tie in seconds goes to the more accurate, which is the front's point.
    assert pick_fastest_within([(0.8, 5.0), (0.9, 5.0), (0.95, 9.0)], 10) == 1
    with pytest.raises(ValueError):
        pick_fastest_within([], 0.5)
    with pytest.raises(ValueError):
        pick_fastest_within(front, -1)


def test_stops_a_clearly_dominated_trial() -> None:
    """Less accurate and slower at epoch 2 than all three, and far below where they ended."""
    assert plausible_gain(FINISHED, 2) == pytest.approx(0.11)
    assert least_final_seconds(SLOW_BAD, 2, planned_epochs=5) == pytest.approx(3 + 3 + 3 * 3)
    assert dominators(SLOW_BAD, FINISHED, 2, planned_epochs=5) == [0, 1, 2]
    assert should_stop(SLOW_BAD, FINISHED, 2, planned_epochs=5)


def test_warm_up_is_respected() -> None:
    """Nothing is stopped before the warm-up's end, however bad; after epoch 1 not even with a 1-epoch warm-up,
    as epoch 2 may still lower its seconds (epoch 1 counts at no more than epoch 2's)."""
    assert should_stop(SLOW_BAD, FINISHED, 2, planned_epochs=5)
    assert not should_stop(SLOW_BAD, FINISHED, 2, planned_epochs=5, warmup=3)
    terrible = curve([0.30], [10])
    assert not should_stop(terrible, FINISHED, 1, planned_epochs=5)
    assert not should_stop(terrible, FINISHED, 1, planned_epochs=5, warmup=1)
    assert should_stop(curve([0.30, 0.31], [10, 10]), FINISHED, 2, planned_epochs=5)


def test_needs_enough_finished_trials_and_dominators() -> None:
    """Fewer than 3 completed trials, or fewer than 2 dominators: no stop."""
    assert not should_stop(SLOW_BAD, [F1, F2], 2, planned_epochs=5)
    weak = curve([0.1, 0.2, 0.2, 0.2, 0.2], [1, 1, 1, 1, 1])
    assert dominators(SLOW_BAD, [F1, weak, weak], 2, planned_epochs=5) == [0]
    assert not should_stop(SLOW_BAD, [F1, weak, weak], 2, planned_epochs=5)
    assert should_stop(SLOW_BAD, [F1, weak, weak], 2, planned_epochs=5, min_dominators=1)


def test_never_stops_the_most_accurate_or_the_fastest_so_far() -> None:
    """A slow trial ahead in accuracy, and a poor trial ahead in time, both run on."""
    slow_but_best = curve([0.70, 0.81], [6, 5])
    fast_but_poor = curve([0.30, 0.40], [1, 0.5])
    for running in (slow_but_best, fast_but_poor):
        assert not should_stop(running, FINISHED, 2, planned_epochs=5, min_dominators=1)
    rng = random.Random(13)
    protected = stopped = 0
    for _ in range(500):
        epoch = rng.randint(1, 5)
        running = curve([rng.uniform(0.1, 0.95) for _ in range(epoch)], [rng.uniform(0.3, 4) for _ in range(epoch)])
        now = objectives(running, epoch)
        at_e = [objectives(h, epoch) for h in FINISHED]
        stop = should_stop(running, FINISHED, epoch, planned_epochs=50, warmup=1, min_dominators=1)
        if all(now[0] > p[0] for p in at_e) or all(now[1] < p[1] for p in at_e):
            protected += 1
            assert not stop
        stopped += stop
    assert protected > 100 and stopped > 100  # both sides of the rule were exercised


def test_a_trial_that_could_still_climb_is_not_stopped() -> None:
    """Dominated at epoch 2 by F1-F3, but a finished trial once rose 0.62 after epoch 2: R may too."""
    climber = curve([0.20, 0.30, 0.60, 0.80, 0.92], [1, 1, 1, 1, 1])
    finished = [*FINISHED, climber]
    now = objectives(SLOW_BAD, 2)
    assert all(dominates(objectives(h, 2), now) for h in FINISHED)  # the rule alone would stop
    assert plausible_gain(finished, 2) == pytest.approx(0.62)
    assert not should_stop(SLOW_BAD, finished, 2, planned_epochs=5, min_dominators=1)
    assert plausible_gain(FINISHED, 4) == pytest.approx(0.03)  # little is left to gain late in training


def test_final_seconds_are_projected_from_the_pace() -> None:
    """At epoch 2 R has spent 4.8 s, less than any finished trial's 5+ s: only the projection of its
    remaining 3 epochs at 2.4 s shows it cannot end faster than they did."""
    steady_slow = curve([0.40, 0.50], [2.4, 2.4])
    assert not should_stop(steady_slow, FINISHED, 2)  # planned epochs unknown: seconds so far only
    assert should_stop(steady_slow, FINISHED, 2, planned_epochs=5)
    # After epoch 1 nothing bounds the end from below (epoch 2 may count epoch 1 at its own seconds), unless
    # epoch 1 is the last.
    assert least_final_seconds(curve([0.3], [10]), 1, planned_epochs=5) == 0
    assert least_final_seconds(curve([0.3], [10]), 1, planned_epochs=1) == 10


def test_shorter_finished_trials_count_with_their_end() -> None:
    """2-epoch finished trials that ended more accurate than R can become, in less time than R has
    spent, dominate R at epoch 3 already."""
    short = [curve([0.85, 0.90], [1, 1]), curve([0.80, 0.88], [1, 1.2]), curve([0.7, 0.75], [1, 1])]
    running = curve([0.40, 0.50, 0.55], [2, 2, 2])
    assert plausible_gain(short, 3) == MIN_GAIN  # none ran past epoch 3
    assert dominators(running, short, 3) == [0, 1, 2]
    assert should_stop(running, short, 3)


def test_simulate_replays_a_study() -> None:
    """Trials in order: the first three complete, the slow poor one stops at 2, a good one runs on."""
    good = curve([0.75, 0.82, 0.88, 0.91, 0.93], [2, 1, 1, 1, 1.5])  # ends (0.93, 5.5)
    histories: list[History] = [F1, F2, F3, SLOW_BAD, good]
    assert simulate(histories) == [None, None, None, 2, None]
    points: list[Point] = [objectives(h) for h in histories]
    assert pareto_front(points) == [0, 4]
