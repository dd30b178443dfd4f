"""The `stop_sweep_when:` breaker: its state and the stopper that acts on it (its pure judgement:
tests/test_decisions.py)."""

from __future__ import annotations

import pickle

import pytest

from collapsetune.collapse import CollapseStopper
from collapsetune.collapse._breaker import SweepBreaker
from collapsetune.names import SWEEP_STOP_KEY


def test_breaker_counts_each_trial_once_and_a_scheduler_cut_not_at_all():
    breaker = SweepBreaker(share_above=0.5, after_trials=3, max_iterations=10)
    # PBT: collapsed, rescued, collapsed again: one trial, counted once, as collapsed
    for status in ("collapsed", "healthy", "collapsed"):
        assert breaker.observe("pbt", {"collapse.status": status, "training_iteration": 4}) is None
    # ASHA cut this one at report 3: the stopper saw no final verdict, so it does not count
    assert breaker.observe("cut", {"collapse.status": "healthy", "training_iteration": 3}) is None
    assert breaker.observe("ok", {"collapse.status": "healthy", "training_iteration": 10}) is None
    assert breaker.verdicts == {"pbt": "collapsed", "ok": "healthy"}
    reason = breaker.observe("c", {"collapse.status": "collapsed", "training_iteration": 3})
    assert reason == "2 of 3 judged trials collapsed (0.67 > 0.5)" == breaker.reason
    assert breaker.observe("d", {"collapse.status": "collapsed"}) is None  # tripped once, said once


@pytest.mark.parametrize("kwargs, message", [
    ({"share_above": 0.0, "after_trials": 1}, "share_above must be in (0, 1), got 0.0"),
    ({"share_above": 1.0, "after_trials": 1}, "share_above must be in (0, 1), got 1.0"),
    ({"share_above": 0.5, "after_trials": 0}, "after_trials must be >= 1, got 0"),
])
def test_breaker_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SweepBreaker(**kwargs)


def test_stopper_stops_all_once_tripped_marks_that_result_and_pickles():
    stopper = CollapseStopper(max_iterations=6, breaker=SweepBreaker(0.5, after_trials=2, max_iterations=6))
    first = {"collapse.status": "collapsed", "collapse.reason": "r", "training_iteration": 3}
    assert stopper("a", first) and not stopper.stop_all() and SWEEP_STOP_KEY not in first
    second = {"collapse.status": "collapsed", "collapse.reason": "r", "training_iteration": 3}
    assert stopper("b", second) and stopper.stop_all()
    assert second[SWEEP_STOP_KEY] == "2 of 2 judged trials collapsed (1.00 > 0.5)"
    clone = pickle.loads(pickle.dumps(stopper))  # Tune saves the stopper in its snapshots
    assert clone.stop_all() and clone.breaker.verdicts == {"a": "collapsed", "b": "collapsed"}


def test_stopper_under_pbt_counts_collapses_it_leaves_to_the_scheduler():
    stopper = CollapseStopper(max_iterations=6, stop_collapsed=False,
                              breaker=SweepBreaker(0.5, after_trials=1, max_iterations=6))
    assert not stopper("a", {"collapse.status": "collapsed", "training_iteration": 2})  # PBT may rescue it
    assert stopper.stop_all()


def test_a_stopper_pickled_before_the_breaker_existed_still_loads_and_never_stops_all():
    old = CollapseStopper.__new__(CollapseStopper)
    old.__dict__.update({"max_iterations": 5, "stop_collapsed": True, "stopped": {}})  # its whole state then
    clone = pickle.loads(pickle.dumps(old))
    assert clone("a", {"collapse.status": "collapsed", "collapse.reason": "r"})
    assert not clone.stop_all() and clone.breaker is None
    assert not CollapseStopper(max_iterations=5).stop_all()
