"""Two objectives (maximize validation accuracy, minimize training seconds): the Pareto front, its
hypervolume, picking a point on it, and a pruning rule for two-objective studies.

A trial's training seconds are its steady seconds (`steady_seconds`): the sum of its epochs' seconds, with
epoch 1 counted at no more than epoch 2's. Epoch 1 also builds the model, compiles it and moves the data, and
how long that takes depends on the compilation cache more than on the configuration: on JAX an identical
LeNet trial took 10.4 s with an empty cache and 1.8 s with a warm one (2-core CPU). With the sum, the front
followed the cache. From epoch 2 on, a trial's steady seconds only grow; the rule below acts from epoch 2.

Optuna cannot prune a multi-objective study (`trial.report` raises NotImplementedError there), so
hpsearch decides itself, after each epoch, whether to stop a running trial R. A trial's point is
(best validation accuracy, training seconds); at epoch e it is (best accuracy up to e, seconds up
to e), and a finished trial F that ran fewer than e epochs is taken at its end. R is stopped at e if

  * e >= WARMUP_EPOCHS and at least MIN_FINISHED trials have completed, and
  * at least MIN_DOMINATORS completed trials F each satisfy all three of:
    1. F's point at e dominates R's point at e (accuracy >=, seconds <=, better in one). This is the
       issue's rule. It alone would stop trials that can still reach the front, hence 2 and 3.
    2. F's final accuracy >= R's accuracy at e + the plausible gain G(e): the largest improvement
       after epoch e that any completed trial made (at least MIN_GAIN). So R would need to climb
       more than any trial has climbed from e on just to reach F's accuracy.
    3. F's final seconds <= the least R can end with: its seconds at e, plus, for its remaining
       planned epochs, its fastest epoch after the first. Seconds only grow from epoch 2 on, so
       with no projection (planned epochs unknown) this holds exactly.
    With 2 and 3, F's end point dominates the best end R can plausibly reach, so R's end is off the
    front (if F is dominated, whatever dominates F dominates R too). The rule never stops a trial
    that is strictly the most accurate or strictly the fastest at e (condition 1 fails), e.g. a
    trial that is slow per epoch but more accurate than everything so far.

A finished trial with fewer epochs than e (a replayed notebook model, an interrupted run) enters
with its end point in condition 1, and condition 3 is then exact: it finished in no more time than R
has already spent and is more accurate than R can plausibly become, so R is dominated already.
Leaving such trials out would only let R spend time the study cannot use.

G(e) is an estimate: a new trial may climb more than any before it, and is then stopped wrongly;
the measurement (hypervolume ratio with and without the rule) is what tells how often that costs
the front. Only completed trials count: with several workers, running trials are not compared.

The savings fall where they matter: the slow trials cost the most seconds, and a slow trial is
worth finishing only if it beats everything faster, which is what conditions 2 and 3 check.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

Point = tuple[float, float]  # (accuracy, seconds): higher accuracy and fewer seconds are better
History = Sequence[Mapping[str, float]]  # a trial's per-epoch rows, as its "history" user attribute

# Epoch 1's seconds include compilation and its validation accuracy comes from batch-norm statistics
# that have not settled (see spaces._common.BN_MOMENTA), so a trial always runs 2 epochs; after epoch
# 2 the rule also has one post-compilation epoch to project the trial's pace from, and the trial's
# steady seconds only grow from there.
WARMUP_EPOCHS = 2
# Completed trials needed before anything is stopped: G(e) is a maximum over their curves and means
# little over one or two (3 is also the TPE sampler's start-up count in search.study).
MIN_FINISHED = 3
# Two dominators, not one: seconds depend on what else runs on the machine, and one trial timed on
# an idle machine should not stop every later trial on its own.
MIN_DOMINATORS = 2
# The least plausible gain, in accuracy: a chosen floor, not measured. It keeps the rule cautious where
# no completed trial ran past e, and a best-so-far score can rise by a point from noise alone.
MIN_GAIN = 0.01
# Slack for float noise when comparing accuracies against a tolerance: Keras computes them in float32, so 0.76 and
# 0.65 stored as Python floats lie 11.0000014 points apart, and a tolerance of 11 points left 0.65 out.
_EPS = 1e-6


# How charts and tables name steady seconds.
# A trial of one epoch (most pruned ones) keeps its first epoch's seconds, compilation included: said on the axis.
STEADY_SECONDS = "training seconds (epoch 1 at epoch 2's pace, without compilation, in trials of 2+ epochs)"


def steady_seconds(history: History, epoch: int | None = None) -> float:
    """Training seconds over the epochs up to `epoch` (all if None), epoch 1 counted at no more than epoch 2's
    (see the module docstring); a trial of one epoch keeps its first epoch's seconds, as nothing tells its pace."""
    seconds = {int(row["epoch"]): float(row["seconds"]) for row in history if epoch is None or row["epoch"] <= epoch}
    # The least of the two, not epoch 2 alone: an epoch 2 slowed by other work on the machine adds nothing.
    first = min(seconds[1], seconds[2]) if 1 in seconds and 2 in seconds else seconds.get(1, 0.0)
    return first + sum(s for e, s in seconds.items() if e != 1)


def objectives(history: History, epoch: int | None = None) -> Point:
    """(best val_accuracy, steady training seconds) over the epochs up to `epoch` (all epochs if None)."""
    rows = [row for row in history if epoch is None or row["epoch"] <= epoch]
    scores = [float(row["val_accuracy"]) for row in rows  # NaN (not equal to itself) and missing left out
              if row.get("val_accuracy") is not None and row["val_accuracy"] == row["val_accuracy"]]
    # A trial with no validation score yet is as bad as accuracy 0 (NaN compares false, and sinks).
    return max(scores, default=0.0), steady_seconds(rows)


def dominates(a: Point, b: Point) -> bool:
    """Whether a is at least as accurate and as fast as b, and strictly better in one of the two."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, in input order; equal points are all kept, as in Optuna."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]


def trial_points(trials: Sequence[optuna.trial.FrozenTrial]) -> list[Point]:
    """The (accuracy, seconds) points of finished trials of a two-objective study."""
    return [(float(t.values[0]), float(t.values[1])) for t in trials]


def front_numbers(study: optuna.Study) -> list[int]:
    """Numbers of the trials on a two-objective study's Pareto front (Optuna's `best_trials`)."""
    return sorted(t.number for t in study.best_trials)


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """Area dominated by points and bounded by reference (accuracy floor, seconds ceiling)."""
    ref_acc, ref_sec = reference
    inside = sorted((s, a) for a, s in points if a > ref_acc and s < ref_sec)
    area, best = 0.0, ref_acc
    # Sweep by seconds: between one point's seconds and the next, the best accuracy reached so far
    # is the height of the dominated region; dominated points never raise it, so they add nothing.
    ends = [s for s, _ in inside[1:]] + [ref_sec] if inside else []
    for (sec, acc), next_sec in zip(inside, ends, strict=True):
        best = max(best, acc)
        area += (best - ref_acc) * (next_sec - sec)
    return area


def reference_point(*fronts: Sequence[Point]) -> Point:
    """Shared reference: accuracy 0, and 1.1 x the slowest seconds among all the fronts' points.

    Accuracy 0 is the floor whatever the number of classes; seconds at exactly the slowest point
    would give that point's accuracy no width, so its share of the area would be lost."""
    slowest = max((s for front in fronts for _, s in front), default=0.0)
    return 0.0, 1.1 * slowest if slowest > 0 else 1.0


def hypervolume_ratio(front_a: Sequence[Point], front_b: Sequence[Point]) -> float:
    """hypervolume(a) / hypervolume(b) with a shared reference: 1.0 when a covers all of b's front.

    E.g. a = the front with the pruning rule, b = without; above 1 when a found better points."""
    reference = reference_point(front_a, front_b)
    whole = hypervolume(front_b, reference)
    if whole <= 0:
        raise ValueError("the second front has no hypervolume (no points with accuracy above 0)")
    return hypervolume(front_a, reference) / whole


def pick_fastest_within(front: Sequence[Point], points_of_accuracy: float) -> int:
    """Index of the fastest point whose accuracy is within this many percentage points of the best.

    Ties in seconds go to the more accurate, so the pick is on the front even if `front` is not."""
    if not front:
        raise ValueError("no points to pick from")
    if points_of_accuracy < 0:
        raise ValueError(f"points of accuracy must be >= 0, got {points_of_accuracy}")
    floor = max(acc for acc, _ in front) - points_of_accuracy / 100 - _EPS
    eligible = [i for i, (acc, _) in enumerate(front) if acc >= floor]
    return min(eligible, key=lambda i: (front[i][1], -front[i][0]))


def plausible_gain(finished: Sequence[History], epoch: int, min_gain: float = MIN_GAIN) -> float:
    """The largest rise in best accuracy after `epoch` among finished trials, at least min_gain."""
    gains = [objectives(h)[0] - objectives(h, epoch)[0] for h in finished if len(h) > epoch]
    return max([min_gain, *gains])


def least_final_seconds(history: History, epoch: int, planned_epochs: int | None = None) -> float:
    """A lower bound on a running trial's final steady seconds from `epoch` >= 2 on: seconds so far plus its
    remaining planned epochs at its fastest pace after epoch 1 (no projection without planned epochs or a pace)."""
    if epoch < 2 and planned_epochs != 1:  # epoch 2 may yet count epoch 1 at its own, lower, seconds
        return 0.0
    paces = [row["seconds"] for row in history if 2 <= row["epoch"] <= epoch]
    remaining = max(0, (planned_epochs or epoch) - epoch)
    return objectives(history, epoch)[1] + remaining * min(paces, default=0.0)


def dominators(history: History, finished: Sequence[History], epoch: int, *,
               planned_epochs: int | None = None, min_gain: float = MIN_GAIN) -> list[int]:
    """Indices of the finished histories that dominate the running trial at `epoch` and whose end
    is beyond the best end it can plausibly reach (conditions 1-3 of the module docstring)."""
    now = objectives(history, epoch)
    reach = now[0] + plausible_gain(finished, epoch, min_gain)
    least_seconds = least_final_seconds(history, epoch, planned_epochs)
    found = []
    for i, other in enumerate(finished):
        final_acc, final_seconds = objectives(other)
        if (dominates(objectives(other, epoch), now) and final_acc >= reach - _EPS
                and final_seconds <= least_seconds):
            found.append(i)
    return found


def should_stop(history: History, finished: Sequence[History], epoch: int, *,
                planned_epochs: int | None = None, warmup: int = WARMUP_EPOCHS,
                min_finished: int = MIN_FINISHED, min_dominators: int = MIN_DOMINATORS,
                min_gain: float = MIN_GAIN) -> bool:
    """Whether to stop a running trial after `epoch`, given the completed trials' histories."""
    if epoch < warmup or len(finished) < min_finished:
        return False
    found = dominators(history, finished, epoch, planned_epochs=planned_epochs, min_gain=min_gain)
    return len(found) >= min_dominators


def simulate(histories: Sequence[History]) -> list[int | None]:
    """Replay the rule over an unpruned study's histories in trial order (one worker), each trial
    planned for the epochs it ran: the epoch each would have been stopped at, or None. An estimate
    only: a sampler that saw the stopped trials would have suggested different ones."""
    finished: list[History] = []
    stops: list[int | None] = []
    for history in histories:
        stop = next((e for e in range(1, len(history) + 1)
                     if should_stop(history, finished, e, planned_epochs=len(history))), None)
        stops.append(stop)
        if stop is None:
            finished.append(history)
    return stops
