"""The stopper that ends a trial on the report where its verdict turned."""

from __future__ import annotations

from ray.tune import Stopper

from collapsetune.collapse import REASON_KEY, STATUS_KEY, STOPPING


class CollapseStopper(Stopper):
    """Stops collapsed and diverged trials, and any trial at `max_iterations`; never stops
    the whole sweep.

    The verdict is computed in the trainable (see `CollapseTrainable`) and travels in the
    result, so this stopper only reads it. It remembers which trials it stopped and why,
    keyed by trial id, and survives pickling (Tune saves it with the experiment).
    `max_iterations` is checked on `training_iteration` itself: Ray's
    MaximumIterationStopper counts reports received, so a trial restored from a checkpoint
    (which re-reports the iterations after it) was stopped short.

    Example:
        >>> stopper = CollapseStopper(max_iterations=20)
        >>> stopper("t1", {"collapse.status": "collapsed", "collapse.reason": "x"})
        True
    """

    def __init__(self, max_iterations: int | None = None, stop_collapsed: bool = True) -> None:
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        self.max_iterations = max_iterations
        # False when the scheduler rescues collapsed trials: Tune asks the stopper before the
        # scheduler, so a stopped trial could never be rescued. The scheduler stops the ones
        # it cannot rescue itself.
        self.stop_collapsed = stop_collapsed
        self.stopped: dict[str, str] = {}  # trial id -> reason

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.max_iterations and result.get("training_iteration", 0) >= self.max_iterations:
            return True
        status = result.get(STATUS_KEY)
        if status not in STOPPING or not self.stop_collapsed:
            return False
        self.stopped[trial_id] = f"{status}: {result.get(REASON_KEY, '')}"
        return True

    def stop_all(self) -> bool:
        return False
