"""The collapse-aware decisions of the stopper, the sweep breaker and the schedulers, as plain
functions of trial ids and results: no Ray here (the way Syne Tune keeps its schedulers free
of any backend). Every decision that knows no backend lives here.

`CollapseStopper` (with its `SweepBreaker`, which only keeps the verdicts these functions
judge), `CollapseASHA` and `CollapsePBT` are thin adapters that hand Ray's bookkeeping to
these functions and write back what they decide; the replayed benchmark
(benchmarks/collapse_bench.py) drives those classes, and tests/test_decisions.py tests these
functions without Ray.

Example:
    >>> rungs = [(9, {"a": 0.5}), (3, {"a": 0.4, "b": 0.7})]
    >>> rungs_after(rungs, "a", {"collapse.status": "collapsed"})
    [(9, {}), (3, {'b': 0.7})]
    >>> random.seed(1)  # the donors among the top healthy trials are drawn in a random order
    >>> donor_order("c", {"a": 0.1, "b": 0.9, "c": 0.5}, {"a": "healthy", "b": "healthy"}, 0.25)
    ['a', 'b']
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from collapsetune.collapse import COLLAPSED, HEALTHY, REASON_KEY, STATUS_KEY, STOPPING


def stopping(result: Mapping) -> bool:
    """Whether `result` marks its trial collapsed or diverged."""
    return result.get(STATUS_KEY) in STOPPING


# -- the stopper --------------------------------------------------------------------------


class Stop(NamedTuple):
    """Why the stopper ends a trial: `by_collapse` for a collapsed or diverged verdict
    (`reason` then says which and why), else its last report was reached."""

    reason: str
    by_collapse: bool


def stop_verdict(result: Mapping, *, max_iterations: int | None, stop_collapsed: bool = True) -> Stop | None:
    """Whether `CollapseStopper` ends the trial on `result`: at `training_iteration` >=
    `max_iterations`, or on a collapsed or diverged verdict unless the scheduler rescues such
    trials (`stop_collapsed` False); None to let it go on.

    Example:
        >>> stop_verdict({"collapse.status": "diverged", "collapse.reason": "val/loss=nan"}, max_iterations=9)
        Stop(reason='diverged: val/loss=nan', by_collapse=True)
    """
    if max_iterations and result.get("training_iteration", 0) >= max_iterations:
        return Stop(f"training_iteration reached {max_iterations}", by_collapse=False)
    if not stop_collapsed or not stopping(result):
        return None
    return Stop(f"{result[STATUS_KEY]}: {result.get(REASON_KEY, '')}", by_collapse=True)


def forecast_verdict(p: float, reason: str) -> str:
    """The verdict `collapse_forecast:` predicts for a trial whose last forecast was P(ends
    collapsed) = `p`: collapsed once p >= 0.5 or the forecast stopped it (its `collapse.reason`
    starts "forecast:"), else healthy. The MLflow tag and the atlas both say this.

    Example:
        >>> forecast_verdict(0.3, "forecast: P(collapse)=0.300 > 0.150 at report 2"), forecast_verdict(0.3, "")
        ('collapsed', 'healthy')
    """
    from collapsetune.names import FORECAST_REASON

    return COLLAPSED if p >= 0.5 or reason.startswith(FORECAST_REASON) else HEALTHY


# -- the sweep breaker (stop_sweep_when:) ----------------------------------------------------


def final_verdict(result: Mapping, max_iterations: int | None, judged_at: int | None = None) -> str | None:
    """The verdict a result settles for its trial, for the sweep breaker, or None while the
    trial is still open: a stopping verdict (collapsed, diverged), whatever it says at
    `max_iterations`, or healthy when it is healthy at `judged_at` or later: the report by
    which every rule has had its chance to fire. Without `judged_at` a collapse settles
    reports before a healthy end does, and the early share of collapsed trials runs high. A
    trial a scheduler cuts before any of these (ASHA) never settles one.

    Example:
        >>> final_verdict({"collapse.status": "healthy", "training_iteration": 8}, 12, judged_at=8)
        'healthy'
        >>> final_verdict({"collapse.status": "healthy", "training_iteration": 8}, 12) is None
        True
    """
    status = result.get(STATUS_KEY)
    if status in STOPPING:
        return str(status)
    iteration = result.get("training_iteration", 0)
    if max_iterations and iteration >= max_iterations:
        return str(status or HEALTHY)
    if judged_at and iteration >= judged_at and status == HEALTHY:
        return HEALTHY
    return None


def trip_reason(verdicts: Mapping[str, str], share_above: float, after_trials: int) -> str | None:
    """Why the sweep should stop, or None: once `after_trials` trials have a final verdict and
    more than `share_above` of them collapsed. Diverged trials count as judged, not as collapsed.

    Args:
        verdicts: trial id -> its final verdict (collapsed | diverged | healthy | ...).
        share_above: The share of collapsed trials above which the sweep stops, in (0, 1).
        after_trials: Judged trials needed before the breaker may trip.

    Example:
        >>> trip_reason({"a": "collapsed", "b": "collapsed", "c": "healthy"}, 0.5, 3)
        '2 of 3 judged trials collapsed (0.67 > 0.5)'
        >>> trip_reason({"a": "collapsed"}, 0.5, 3) is None  # too few judged yet
        True
    """
    judged = len(verdicts)
    if judged < after_trials or judged == 0:
        return None
    collapsed = sum(v == COLLAPSED for v in verdicts.values())
    if collapsed / judged <= share_above:
        return None
    return f"{collapsed} of {judged} judged trials collapsed ({collapsed / judged:.2f} > {share_above:g})"


# -- ASHA ---------------------------------------------------------------------------------

Rungs = list[tuple[float, dict[str, float]]]  # (milestone, {trial id: recorded value}), as ASHA keeps them


def rungs_after(rungs: Rungs, trial_id: str, result: Mapping) -> Rungs:
    """`CollapseASHA`'s rungs once `result` of `trial_id` is in: on a collapsed or diverged
    verdict the trial's records leave every rung, so a rung's cutoff is the quantile among
    the trials that can still be picked; otherwise `rungs` itself, unchanged."""
    if not stopping(result):
        return rungs
    return [(milestone, {tid: v for tid, v in recorded.items() if tid != trial_id}) for milestone, recorded in rungs]


def cut_at_tie(earlier: Sequence[float], value: float, reduction_factor: float) -> bool:
    """Whether ASHA should cut a trial whose rung value `value` ties the rung's cutoff. Ray cuts
    only `value < cutoff` (the 1 - 1/reduction_factor quantile of the `earlier` values, signed
    so that higher is better), so a trial equal to the cutoff always goes on: on a discrete
    objective (an accuracy over a few hundred examples) whole groups of trials tie at each
    rung, and none of them is ever cut. Here a tied trial is cut when the trials already at
    least as good fill the rung's top 1/reduction_factor share (counted with it), as if the
    earlier arrival won the tie. A value above the cutoff, or a rung with no earlier value,
    is never cut here (nor a NaN: Ray does not record it).

    Example:
        >>> cut_at_tie([0.97, 0.97, 0.95], 0.97, 3)  # two already share the top third of four
        True
        >>> cut_at_tie([0.97, 0.95, 0.95], 0.97, 3)  # above the cutoff (0.957): kept, as by Ray
        False
    """
    values = [v for v in earlier if not math.isnan(v)]
    if not values or math.isnan(value):
        return False
    if value != np.percentile(values, (1 - 1 / reduction_factor) * 100):  # Ray's cutoff, exactly
        return False
    at_least_as_good = sum(v >= value for v in values)
    return at_least_as_good >= math.ceil((len(values) + 1) / reduction_factor)


# -- PBT ----------------------------------------------------------------------------------

RANK = "rank"  # Ray's PBT as usual: the trial is ranked, and may exploit a top one
STOP = "stop"
RESCUE = "rescue"  # the collapsed trial copies a donor at once


def pbt_on_result(result: Mapping, *, rescue: bool, time_attr: str, metric: str) -> str:
    """What `CollapsePBT` does with `result`: RANK a trial that is not collapsed or diverged,
    RESCUE one that is (when rescuing, and the result carries `time_attr` and `metric`),
    else STOP it."""
    if not stopping(result):
        return RANK
    return RESCUE if rescue and time_attr in result and metric in result else STOP


def worth_copying(at: float, *, max_t: float, settle: float) -> bool:
    """Whether a donor whose checkpoint is of report `at` leaves fresh rules the `settle`
    reports they need before `max_t`."""
    return max_t - at >= settle


def copyable(status: str | None, checkpointed: str | None) -> bool:
    """Whether a donor may be copied: neither its latest verdict (`status`) nor that of the
    report its checkpoint holds (`checkpointed`) is collapsed or diverged."""
    return status not in STOPPING and checkpointed not in STOPPING


def healthy_quantiles(lower: Sequence[str], upper: Sequence[str], status: Mapping[str, str],
                      worth: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """PBT's (bottom, top) quantiles of trial ids with only healthy trials worth copying left
    on top; both empty when none is left (then nobody copies anyone)."""
    upper = [tid for tid in upper if status.get(tid) == HEALTHY and worth(tid)]
    return (list(lower), upper) if upper else ([], [])


MIN_DONORS = 3  # healthy trials a rescue draws its donor among, when the top quantile holds fewer


def donor_order(trial_id: str, scores: Mapping[str, float | None], status: Mapping[str, str], fraction: float,
                shuffle: Callable[[list], None] = random.shuffle) -> list[str]:
    """The trial ids a collapsed `trial_id` tries as its donor, in order: the top `fraction`
    of the healthy ones, at least `MIN_DONORS` of them (shuffled, as PBT picks: the top
    quarter of four healthy trials is one trial, and every rescue of a sweep with few healthy
    trials copied it), then the other healthy ones best first,
    then those not yet judged (best first), for early in a sweep. Never `trial_id` itself,
    a collapsed or diverged trial, or one without a score.

    Args:
        scores: candidate trial id -> its last score (higher is better, as PBT keeps it),
            in the order the trials were added.
        status: trial id -> its latest verdict (none yet: not judged).
    """
    live = [tid for tid, score in scores.items()
            if tid != trial_id and score is not None and not math.isnan(score)]
    live.sort(key=lambda tid: scores[tid], reverse=True)
    healthy = [tid for tid in live if status.get(tid) == HEALTHY]
    top = healthy[:max(MIN_DONORS, math.ceil(len(healthy) * fraction))]
    shuffle(top)
    waiting = [tid for tid in live if status.get(tid) not in (HEALTHY, *STOPPING)]
    return [*top, *healthy[len(top):], *waiting]


UP, DOWN = "up", "down"  # the directions of `toward`


def toward(value: Any, direction: str, *, factors: Sequence[float], bounds: tuple[float, float] | None = None,
           choices: Sequence[Any] | None = None) -> Any:
    """An anti-collapse knob of a rescued trial, moved in the direction that fixes collapse
    (`rescue_toward`): a number times the largest (`up`) or smallest (`down`) of PBT's
    perturbation `factors`, clipped to `bounds`, an integer by at least one; a `choices` knob
    one neighbour along its list. At the end of its list, or not in it, a choice stays.

    Example:
        >>> toward(0.25, "up", factors=(1.2, 0.8), bounds=(0.05, 1.0))
        0.3
        >>> toward(0.1, "up", factors=(1.2, 0.8), choices=[0.0, 0.1, 1.0])
        1.0
    """
    if direction not in (UP, DOWN):
        raise ValueError(f"direction must be {UP!r} or {DOWN!r}, got {direction!r}")
    if choices is not None:
        options = list(choices)
        if value not in options:
            return value
        i = options.index(value) + (1 if direction == UP else -1)
        return options[i] if 0 <= i < len(options) else value
    moved = value * (max(factors) if direction == UP else min(factors))
    if isinstance(value, int) and not isinstance(value, bool):
        moved = max(round(moved), value + 1) if direction == UP else min(round(moved), value - 1)
    if bounds is not None:
        moved = min(max(moved, bounds[0]), bounds[1])
    return type(value)(moved) if isinstance(value, int) else moved


__all__ = ["DOWN", "MIN_DONORS", "RANK", "RESCUE", "STOP", "UP", "Rungs", "Stop", "copyable", "donor_order", "final_verdict",
           "forecast_verdict",
           "healthy_quantiles", "pbt_on_result", "rungs_after", "stop_verdict", "stopping", "toward",
           "trip_reason", "worth_copying"]
