"""Which step of a trial's MLflow run a report lands on: the one rule the Tune callback
follows as reports come (`_callback.MlflowTracking.on_trial_result`) and the resume catch-up
plays over a trial's record (`_catchup.steps`).

A report lands on its number plus the run's offset (run step minus report number), so a
report a restored trial makes again finds its step taken and is passed over. The first
report after a new PBT copy goes on from the run's last step instead (the copy carries the
donor's report numbers), and sets the offset from then on; the same copy again (a resumed
driver restoring the copied checkpoint) is no new copy.

Example:
    >>> place(4, logged=3, offset=0, new_copy=False)
    (4, 0)
    >>> place(3, logged=3, offset=0, new_copy=False)  # a replay: the run has step 3
    (None, 0)
    >>> place(7, logged=3, offset=0, new_copy=True)  # a copy of the donor's report 6
    (4, -3)
"""

from __future__ import annotations

__all__ = ["place"]


def place(number: int, logged: int, offset: int, new_copy: bool) -> tuple[int | None, int]:
    """The step report `number` lands on in a run whose last step is `logged` and whose offset
    is `offset` (None when the run has that step already: a replay), and the run's offset
    from then on. `new_copy`: the report is the first after a PBT copy other than the last."""
    if new_copy:
        offset = logged + 1 - number
    step = number + offset
    return (step if step > logged else None), offset
