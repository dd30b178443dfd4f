"""What a resumed driver's MLflow run lacks of a trial's reports, read from the trial's own
record (`collapsetune.records`).

The MLflow writer queues reports (`collapsetune.tracking`); a driver killed with reports
queued loses them, and Ray usually makes them again: it restores the trial from the
checkpoint its last snapshot names and the trial replays them. Not always under PBT: when
the snapshot names a donor's checkpoint that the donor's rotation deleted since, the trial
goes on from its own newest checkpoint, saved after the copy (`_ray_fixes`, fix 4), and the
copy's first report (its exploits line too) is never made again (issue 22: MLflow steps 1, 2,
3, 5, ..., 8). The record has every report the driver received, so the lost ones are read
back from it and logged first.

A run's steps are the positions of its trial's reports along the course the trial took: its
own reports 1, 2, ..., then after a PBT copy the reports that went on from the donor's
checkpoint, and so on. The record holds that course and dead ends beside it (reports a
restored trial made again, a course a later copy cut off), so it is walked back from the
report at hand (`course`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from collapsetune.names import DONOR_KEY, DONOR_REPORT_KEY
from collapsetune.records import recorded

__all__ = ["CatchUp", "catch_up", "course"]

_SAME = ("training_iteration", "timestamp", "time_total_s", DONOR_KEY)  # what tells one report from another


@dataclass(frozen=True)
class CatchUp:
    """What a run lacks before `result`, the first report a resumed driver gets for a trial.

    Attributes:
        last: the report at the run's last step (None when the run has no step yet): its
            verdict and report number hold until the first missing one.
        offset: run step minus report number at that step (the run's offset tag may be stale:
            a driver killed between a batch's metrics and its tags).
        missing: the reports the run lacks, oldest first; each belongs at the step after the
            one before it.
    """

    last: dict[str, Any] | None
    offset: int
    missing: list[dict[str, Any]]


def catch_up(trial: Any, result: dict, last_step: int) -> CatchUp | None:
    """What the run of `trial`, whose last step is `last_step`, lacks of the course that
    leads to `result`; None when the record does not tell (no record, one that does not reach
    back to report 1, or a course shorter than the run: `result` is a replay)."""
    line = course(recorded(trial), result)
    if line is None or len(line) - 1 < last_step:
        return None
    last = line[last_step - 1] if last_step else None
    offset = last_step - int(last["training_iteration"]) if last else 0
    return CatchUp(last, offset, line[last_step:-1])


def course(rows: Sequence[dict], result: dict) -> list[dict] | None:
    """The reports along the course that leads to `result`, from the trial's report 1, with
    `result` last; None when `rows` (the trial's record, in order) do not reach report 1.

    Walking back, a report's predecessor is the latest one before it numbered one less; a
    PBT copy's first report follows whatever its trial reported last before the copy, where
    the same copy made again (a restored trial restoring it, or PBT making it again after
    a restore from before it) counts as the first time it was made.

    Example:
        >>> rows = [{"training_iteration": t} for t in (1, 2, 3, 2, 3)]  # restored at report 1
        >>> [r["training_iteration"] for r in course(rows, {"training_iteration": 4})]
        [1, 2, 3, 4]
    """
    end = len(rows)
    if end and all(rows[-1].get(k) == result.get(k) for k in _SAME):
        end -= 1  # the record already has `result` (TrialRecords runs first)
    line = [result]
    row = result
    while True:
        if DONOR_KEY in row:
            end = _first_making(rows, end, row)
            expect = None
        else:
            expect = int(row["training_iteration"]) - 1
            if expect <= 0:
                return line[::-1]
        end = next((i for i in range(end - 1, -1, -1)
                    if expect is None or _number(rows[i]) == expect), -1)
        if end < 0:
            return None
        row = rows[end]
        line.append(row)


def _first_making(rows: Sequence[dict], end: int, copy: dict) -> int:
    """Where, before `end`, the run of recorded copies equal to `copy` begins (`end` when
    none): no other copy between them."""
    key = (copy[DONOR_KEY], _number(copy, DONOR_REPORT_KEY))
    first = end
    for i in range(end - 1, -1, -1):
        if DONOR_KEY in rows[i]:
            if (rows[i][DONOR_KEY], _number(rows[i], DONOR_REPORT_KEY)) != key:
                break
            first = i
    return first


def _number(row: dict, key: str = "training_iteration") -> int:
    try:
        return int(row.get(key, 0))
    except (TypeError, ValueError):
        return 0
