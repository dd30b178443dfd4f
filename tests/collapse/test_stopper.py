from __future__ import annotations

import pickle

from collapsetune.collapse import CollapseStopper


def test_stopper_stops_collapsed_and_diverged_not_healthy():
    stopper = CollapseStopper()
    assert not stopper("a", {"collapse.status": "healthy"})
    assert not stopper("b", {"val/loss": 1.0})  # no verdict in the result: leave it alone
    assert stopper("c", {"collapse.status": "collapsed", "collapse.reason": "x < 1 for 1 report"})
    assert stopper("d", {"collapse.status": "diverged", "collapse.reason": "val/loss=nan"})
    assert not stopper.stop_all()
    assert stopper.stopped == {"c": "collapsed: x < 1 for 1 report", "d": "diverged: val/loss=nan"}


def test_stopper_pickle_round_trip_keeps_state():
    stopper = CollapseStopper()
    stopper("c", {"collapse.status": "collapsed", "collapse.reason": "r"})
    clone = pickle.loads(pickle.dumps(stopper))
    assert clone.stopped == stopper.stopped
    assert clone("e", {"collapse.status": "collapsed"})


def test_stopper_max_iterations_reads_training_iteration_not_report_count():
    stopper = CollapseStopper(max_iterations=5)
    # A trial restored from its checkpoint at iteration 3 re-reports 4: five reports so far,
    # but only iteration 4, so it must go on.
    for iteration in (1, 2, 3, 4, 4):
        assert not stopper("t", {"training_iteration": iteration, "collapse.status": "healthy"})
    assert stopper("t", {"training_iteration": 5, "collapse.status": "healthy"})
    assert "t" not in stopper.stopped  # reaching the end is not a collapse


def test_stopper_rejects_bad_max_iterations():
    import pytest

    with pytest.raises(ValueError, match="max_iterations must be >= 1, got 0"):
        CollapseStopper(max_iterations=0)


def test_stopper_leaves_collapsed_trials_to_a_scheduler_that_rescues_them():
    stopper = CollapseStopper(max_iterations=5, stop_collapsed=False)
    assert not stopper("c", {"collapse.status": "collapsed", "training_iteration": 2})
    assert stopper("c", {"collapse.status": "collapsed", "training_iteration": 5})  # the end is the end
