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

With `cut_ties`, a trial whose rung value ties the rung's cutoff is cut once the trials
already at least as good fill the rung's top 1/reduction_factor share
(`collapsetune.decisions.cut_at_tie`): Ray cuts only values strictly below the cutoff, and on
a discrete objective such as an accuracy over a few hundred examples whole groups of trials
tie at every rung and are all kept (docs/benchmarks.md, section 17, measures it).

The decisions are `collapsetune.decisions.rungs_after` and `cut_at_tie` (no Ray there); this class only reads
ASHA's bookkeeping through `collapsetune._ray` (`asha_bracket`, `bracket_rungs`), whose
import checks that the installed Ray still has it, and tests/test_scheduler.py drives the
real scheduler.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from collapsetune import _ray
from collapsetune.decisions import cut_at_tie, rungs_after, stopping


class CollapseASHA(ASHAScheduler):
    """ASHAScheduler whose rungs forget a trial once it collapsed or diverged.

    Example:
        >>> scheduler = CollapseASHA(max_t=20, grace_period=3, reduction_factor=3, cut_ties=True)
    """

    cut_ties = False  # a class default too: a scheduler pickled before the option existed resumes

    def __init__(self, *args: Any, cut_ties: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cut_ties = cut_ties

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        bracket = _ray.asha_bracket(self, trial.trial_id)
        # Which rungs already hold the trial: the tie rule needs the one this report adds it to.
        tie_rule = self.cut_ties and bracket is not None
        before = [set(recorded) for _, recorded in _ray.bracket_rungs(bracket)] if tie_rule else []
        action = super().on_trial_result(tune_controller, trial, result)
        if self.cut_ties and action == TrialScheduler.CONTINUE and not stopping(result):
            action = self._cut_if_tied(bracket, before, trial.trial_id)
        self._forget_if_stopping(bracket, trial.trial_id, result)
        return action

    def _cut_if_tied(self, bracket: Any, before: list[set[str]], trial_id: str) -> str:
        """STOP if this report put the trial on a rung at a value tied with that rung's cutoff
        and the rung's top share is already full (`cut_at_tie`), else CONTINUE."""
        for seen, (_, recorded) in zip(before, _ray.bracket_rungs(bracket)):
            if trial_id in recorded and trial_id not in seen:
                earlier = [v for tid, v in recorded.items() if tid != trial_id]
                if cut_at_tie(earlier, recorded[trial_id], _ray.bracket_reduction_factor(bracket)):
                    return TrialScheduler.STOP
                break
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        bracket = _ray.asha_bracket(self, trial.trial_id)  # Ray's on_trial_complete drops it
        super().on_trial_complete(tune_controller, trial, result)
        self._forget_if_stopping(bracket, trial.trial_id, result)

    def _forget_if_stopping(self, bracket: Any, trial_id: str, result: dict) -> None:
        if bracket is not None:
            _ray.set_bracket_rungs(bracket, rungs_after(_ray.bracket_rungs(bracket), trial_id, result))
