"""The baseline stopper a Ray Tune user writes in a few lines instead of collapsetune's: fixed
thresholds, checked on each report, that stop a trial once they have held on so many reports
in a row. collapse_bench.py (`function` stopper) and plain_vs.py (`plain_naive`) build theirs
here, each from the sweep file's rules in its own way.

Example:
    >>> stop = threshold_stopper([(lambda r: r["x"] > 1, 2)])
    >>> [stop("t", {"x": x}) for x in (2, 0, 2, 2)]
    [False, False, False, True]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def crossed(condition, result: dict) -> bool:
    """Whether `result` crosses a rule's `above` or `below` condition."""
    value = result[condition.metric]
    return value < condition.value if condition.KIND == "below" else value > condition.value


def threshold_stopper(tests: Sequence[tuple[Callable[[dict], bool], int]]) -> Callable[[str, dict], bool]:
    """A FunctionStopper's function: stops a trial on the report where one of `tests` (a check
    of a report, and how many reports in a row it must hold) has held that many times in a
    row, counted per trial and test."""
    streak: dict[tuple[str, int], int] = {}

    def stop(trial_id: str, result: dict) -> bool:
        for n, (bad, patience) in enumerate(tests):
            streak[trial_id, n] = streak.get((trial_id, n), 0) + 1 if bad(result) else 0
            if streak[trial_id, n] >= patience:
                return True
        return False

    return stop
