"""What a resumed driver's MLflow run lacks of a trial's reports, read from the trial's own
record (`collapsetune.records`).

The MLflow writer queues reports (`_writer`); a driver killed with reports queued loses
them, and Ray usually makes them again: it restores the trial from the checkpoint its last
snapshot names and the trial replays them. Not always under PBT: when the snapshot names a
donor's checkpoint that the donor's rotation deleted since, the trial goes on from its own
newest checkpoint, saved after the copy (`collapsetune._ray.fixes`, fix 4), and the copy's
first report (its exploits line too) is never made again (issue 22: MLflow steps 1, 2, 3, 5,
..., 8). The record has every report the driver received, in order, so the lost ones are
read back from it and logged first.

Which step each recorded report has in the run follows from the record alone: the run's
step rule (`_steps.place`, which the callback follows too) is played over it from report 1
(`steps`), as if no driver had been killed. A report a restored trial makes again lands on a
step the run has and is passed over; a PBT copy's first report goes on from the run's last
step, unless it is the same copy as the last one (the copy restored again).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from collapsetune.records import recorded
from collapsetune.results import copy_of
from collapsetune.tracking._steps import place

__all__ = ["CatchUp", "catch_up", "steps"]


@dataclass(frozen=True)
class CatchUp:
    """What a run lacks of its trial's record, found when a resumed driver gets the trial's
    first report.

    Attributes:
        last: the recorded report at the run's last step (None when the run has no step
            yet): its verdict holds until the first missing report.
        offset: run step minus report number at that step (the run's offset tag may be stale:
            a driver killed between a batch's metrics and its tags).
        missing: the recorded reports the run lacks, oldest first, each at the step after the
            one before it.
    """

    last: dict[str, Any] | None
    offset: int
    missing: list[dict[str, Any]]


def catch_up(trial: Any, last_step: int) -> CatchUp | None:
    """What the run of `trial`, whose last step is `last_step`, lacks of the trial's record;
    None when the record does not tell (none, one that does not begin at report 1, or one
    whose reports end before the run's last step)."""
    rows = recorded(trial)
    if not rows or _number(rows[0]) != 1:
        return None
    last, offset, missing, ends = None, 0, [], 0
    for row, step, row_offset in steps(rows):
        if step <= last_step:
            last, offset = row, row_offset
        else:
            missing.append(row)
        ends = step
    return CatchUp(last, offset, missing) if ends >= last_step else None


def steps(rows: Sequence[dict]) -> Iterator[tuple[dict, int, int]]:
    """The recorded reports that have a step of their own in the run, with that step and the
    run's offset (step minus report number) there, in the order they were recorded; up to a
    report that skips a number (a damaged record), which ends them.

    Example:
        >>> rows = [{"training_iteration": t} for t in (1, 2, 3, 2, 3, 4)]  # restored at report 1
        >>> [(r["training_iteration"], step) for r, step, _ in steps(rows)]
        [(1, 1), (2, 2), (3, 3), (4, 4)]
    """
    logged, offset, copy, before = 0, 0, None, 0
    for row in rows:
        number, this = _number(row), copy_of(row)
        new_copy = this is not None and this != copy
        if not new_copy and number > before + 1:  # a trial reports 1, 2, 3 (again from a restore): a damaged record skips
            return  # what lies between is unknown: a step from beyond it would stand for reports never logged
        before = number
        step, offset = place(number, logged, offset, new_copy=new_copy)
        copy = this or copy
        if step is not None:
            logged = step
            yield row, step, offset


def _number(row: dict) -> int:
    try:
        return int(row.get("training_iteration", 0))
    except (TypeError, ValueError):
        return 0
