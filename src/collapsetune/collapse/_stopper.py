"""The stopper that ends a trial on the report where its verdict turned."""

from __future__ import annotations

from ray.tune import Stopper

from collapsetune.collapse._rules import HEALTHY

STATUS_KEY = "collapse.status"
REASON_KEY = "collapse.reason"
ITERATION_KEY = "collapse.iteration"


class CollapseStopper(Stopper):
    """Stops collapsed and diverged trials; never stops the whole sweep.

    The verdict is computed in the trainable (see `CollapseTrainable`) and travels in the
    result, so this stopper only reads it. It remembers which trials it stopped and why,
    keyed by trial id, and survives pickling (Tune saves it with the experiment).

    Example:
        >>> stopper = CollapseStopper()
        >>> stopper("t1", {"collapse.status": "collapsed", "collapse.reason": "x"})
        True
    """

    def __init__(self) -> None:
        self.stopped: dict[str, str] = {}  # trial id -> reason

    def __call__(self, trial_id: str, result: dict) -> bool:
        status = result.get(STATUS_KEY, HEALTHY)
        if status == HEALTHY:
            return False
        self.stopped[trial_id] = f"{status}: {result.get(REASON_KEY, '')}"
        return True

    def stop_all(self) -> bool:
        return False
