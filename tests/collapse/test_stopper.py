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
