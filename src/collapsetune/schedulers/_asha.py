"""ASHA whose rungs hold only trials that are still candidates: a collapsed trial leaves them.

Plain ASHA records each trial's objective once per rung and never looks back. A trial that
collapses *after* a rung leaves its pre-collapse value there, and since collapsing trials
often have the best loss or accuracy, that value raises the bar every later trial must clear:
healthy trials get cut for failing to beat a model that no longer exists (seen in this
project's own end-to-end sweep: every healthy trial stopped at the first rung).

Rewriting those records to the penalised objective (what this class did until issue 29)
fixes that but breaks the other way: the penalised values fill the bottom of each rung, so
every healthy trial lands in the top 1/reduction_factor and ASHA stops pruning among healthy
trials at all (0 cuts in 3 seeds on MoP-CLIP where plain ASHA cut 2/0/4). `CollapseASHA`
therefore *removes* a trial's records from every rung on the report where it is marked
collapsed or diverged: a rung's cutoff is the quantile among the trials that can still be
picked, whatever number of collapsed trials sits below them (docs/benchmarks.md, section 12,
measures both on the replayed benchmark).

The decision is `collapsetune.decisions.rungs_after` (no Ray there); this class only reads
ASHA's bookkeeping through `collapsetune._ray` (`asha_bracket`, `bracket_rungs`), whose
import checks that the installed Ray still has it, and tests/test_scheduler.py drives the
real scheduler.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler

from collapsetune import _ray
from collapsetune.decisions import rungs_after


class CollapseASHA(ASHAScheduler):
    """ASHAScheduler whose rungs forget a trial once it collapsed or diverged.

    Example:
        >>> scheduler = CollapseASHA(max_t=20, grace_period=3, reduction_factor=3)
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        bracket = _ray.asha_bracket(self, trial.trial_id)
        action = super().on_trial_result(tune_controller, trial, result)
        self._forget_if_stopping(bracket, trial.trial_id, result)
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        bracket = _ray.asha_bracket(self, trial.trial_id)  # Ray's on_trial_complete drops it
        super().on_trial_complete(tune_controller, trial, result)
        self._forget_if_stopping(bracket, trial.trial_id, result)

    def _forget_if_stopping(self, bracket: Any, trial_id: str, result: dict) -> None:
        if bracket is not None:
            _ray.set_bracket_rungs(bracket, rungs_after(_ray.bracket_rungs(bracket), trial_id, result))
