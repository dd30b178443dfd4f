"""ASHA that learns a trial collapsed even after the rung where it looked best.

Plain ASHA records each trial's objective once per rung and never looks back. A trial that
collapses *after* a rung leaves its pre-collapse value there, and since collapsing trials
often have the lowest loss, that value raises the bar every later trial must clear: healthy
trials get cut for failing to beat a model that no longer exists (seen in this project's
own end-to-end sweep: every healthy trial stopped at the first rung). `CollapseASHA`
rewrites a trial's earlier rung records to its penalised objective on the report where it
is marked collapsed or diverged.

This reaches into ASHA's bookkeeping (`_trial_info`, `_rungs`), a developer API that may
change between Ray releases: Ray is pinned to 2.60.x and tests/test_scheduler.py drives
the real scheduler so an upgrade that breaks it fails loudly.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler

from collapsetune.collapse import STATUS_KEY, STOPPING


class CollapseASHA(ASHAScheduler):
    """ASHAScheduler whose rungs forget a trial's values from before it collapsed.

    Example:
        >>> scheduler = CollapseASHA(max_t=20, grace_period=3, reduction_factor=3)
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._forget_before_collapse(trial.trial_id, result)
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._forget_before_collapse(trial.trial_id, result)
        super().on_trial_complete(tune_controller, trial, result)

    def _forget_before_collapse(self, trial_id: str, result: dict) -> None:
        if result.get(STATUS_KEY) not in STOPPING or self._metric not in result:
            return
        bracket = self._trial_info.get(trial_id)
        if bracket is None:
            return
        penalised = self._metric_op * result[self._metric]
        for _milestone, recorded in bracket._rungs:
            if trial_id in recorded:
                recorded[trial_id] = penalised
