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


def test_a_healthy_trial_counts_at_the_age_a_collapse_is_judged_not_only_at_the_end():
    # The MoP-CLIP rules can fire up to report 8 of 12. Counted only at report 12, the healthy
    # trials of a sweep arrive after its collapses and the early share runs high: here 3 of 4
    # trials are healthy at report 8, and the breaker must not trip on the first collapse.
    early = SweepBreaker(share_above=0.8, after_trials=1, max_iterations=12, judged_at=8)
    assert early.observe("c", {"collapse.status": "collapsed", "training_iteration": 6}) is not None
    aged = SweepBreaker(share_above=0.8, after_trials=2, max_iterations=12, judged_at=8)
    assert aged.observe("young", {"collapse.status": "healthy", "training_iteration": 7}) is None
    assert aged.verdicts == {}  # not yet past every rule's chance
    for t in ("a", "b", "d"):
        assert aged.observe(t, {"collapse.status": "healthy", "training_iteration": 8}) is None
    assert aged.observe("c", {"collapse.status": "collapsed", "training_iteration": 6}) is None  # 1 of 4
    # a trial counted healthy that collapses later counts as collapsed from then, once
    assert aged.observe("a", {"collapse.status": "collapsed", "training_iteration": 10}) is None
    assert aged.verdicts == {"a": "collapsed", "b": "healthy", "d": "healthy", "c": "collapsed"}
    assert aged.observe("a", {"collapse.status": "healthy", "training_iteration": 11}) is None  # a rescue
    assert aged.verdicts["a"] == "collapsed"


def test_a_breaker_pickled_before_judged_at_existed_counts_healthy_trials_at_the_end():
    old = SweepBreaker(share_above=0.5, after_trials=1, max_iterations=10)
    del old.judged_at  # as unpickled from a sweep saved by an earlier collapsetune
    restored = pickle.loads(pickle.dumps(old))
    assert restored.observe("a", {"collapse.status": "healthy", "training_iteration": 5}) is None
    assert restored.verdicts == {}
    assert restored.observe("a", {"collapse.status": "healthy", "training_iteration": 10}) is None
    assert restored.verdicts == {"a": "healthy"}


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
