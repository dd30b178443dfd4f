"""The sweep-level circuit breaker (`stop_sweep_when:`): ends a sweep whose trials end
collapsed almost every time, instead of spending the rest of its budget on the same verdict.

A trial counts once the stopper sees a verdict that settles it: collapsed or diverged (the
rules or the forecast stopped it), healthy once it is healthy on the report by which every
rule has had its chance to fire (`judged_at`: so collapsed and healthy trials are counted at
the same age; counted only at `max_iterations`, healthy trials arrive after the collapses and
the early share runs high), or whatever it says at `max_iterations`.
A trial counted healthy that collapses later counts as collapsed from then. A trial the
scheduler cuts before any of these (ASHA) does not count. Under PBT a trial counts as
collapsed on its first collapse (a rescue does not undo it).

Here is the breaker's state (`SweepBreaker`, pickled with the `CollapseStopper` that holds
it, under this module's name) and what is said of a sweep it ended; its judgement, which
knows no backend, is in `collapsetune.decisions` (`final_verdict`, `trip_reason`) with the
other collapse-aware decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collapsetune.collapse._rules import HEALTHY
from collapsetune.decisions import final_verdict, trip_reason


STOPPED_WITH_SWEEP = "stopped with the sweep (stop_sweep_when)"  # how a trial the breaker stopped is told


def stopped_sentence(reason: str) -> str:
    """What `report`, `run`'s summary and the parent run say of a sweep the breaker ended."""
    return (f"the sweep was stopped by stop_sweep_when: {reason}; its search space is almost all collapse. "
            "Widen the ranges of its anti-collapse knobs (regularizer weights, tau_end, label smoothing, ...) "
            "or move them away from the collapsed trials' values, or raise stop_sweep_when.collapsed_share_above")


class SweepBreaker:
    """The breaker's state: each judged trial's first final verdict, and why it tripped.
    Plain data, so it pickles with the stopper that holds it.

    Example:
        >>> breaker = SweepBreaker(share_above=0.5, after_trials=2, max_iterations=10)
        >>> breaker.observe("a", {"collapse.status": "collapsed"}), breaker.reason
        (None, None)
        >>> breaker.observe("b", {"collapse.status": "collapsed"})
        '2 of 2 judged trials collapsed (1.00 > 0.5)'
    """

    def __init__(self, share_above: float, after_trials: int, max_iterations: int | None = None,
                 judged_at: int | None = None) -> None:
        if not 0 < share_above < 1:
            raise ValueError(f"share_above must be in (0, 1), got {share_above}")
        if after_trials < 1:
            raise ValueError(f"after_trials must be >= 1, got {after_trials}")
        self.share_above = share_above
        self.after_trials = after_trials
        self.max_iterations = max_iterations
        self.judged_at = judged_at  # the report a healthy trial is counted on (None: max_iterations)
        self.verdicts: dict[str, str] = {}  # trial id -> its first final verdict
        self.reason: str | None = None  # set once, when it trips

    def observe(self, trial_id: str, result: Mapping[str, Any]) -> str | None:
        """Counts the result's final verdict (the first per trial); returns the reason on the
        result that trips the breaker, None on every other (also after it tripped)."""
        before = self.verdicts.get(trial_id)
        if self.reason is not None or before not in (None, HEALTHY):  # a collapse or divergence counts once
            return None
        # getattr: a breaker pickled before judged_at existed (a sweep resumed across the upgrade)
        verdict = final_verdict(result, self.max_iterations, getattr(self, "judged_at", None))
        if verdict is None or verdict == before:
            return None
        self.verdicts[trial_id] = verdict
        self.reason = trip_reason(self.verdicts, self.share_above, self.after_trials)
        return self.reason


__all__ = ["STOPPED_WITH_SWEEP", "SweepBreaker", "stopped_sentence"]
