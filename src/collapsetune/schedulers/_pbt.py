"""Population Based Training that knows about collapse: it rescues collapsed trials.

Ray's PBT ranks trials on one number and copies the top quantile into the bottom one. Two
things go wrong when outputs collapse: a collapsed trial often has the lowest loss, so it
becomes a donor and spreads its collapse; and a trial stopped for collapsing throws its
compute away. `CollapsePBT` fixes both:

- a collapsed or diverged trial is never a donor, and the top quantile that PBT copies
  from holds healthy trials only (inconclusive ones, still inside a rule's grace, may be
  collapsing). A donor is judged on its latest verdict and on the verdict of the report its
  checkpoint holds: a save PBT asks of a running trial is made after the report its actor is
  already training, whose result (collapsed, maybe) the driver has not read yet;
- on the report where a trial is marked collapsed or diverged it is not stopped but
  exploits a donor at once: it takes the donor's latest checkpoint and a perturbed copy of
  its config (the sweep's `mutable` knobs, clipped to their search-space bounds). The donor
  is a healthy trial from the top of the healthy ones, or, while no trial has been judged
  healthy yet (early in a sweep), the best inconclusive one. With no donor it is stopped,
  as under any other scheduler.

After any copy `CollapseTrainable` gives the trial fresh collapse rules, grace included, so a
donor is only worth copying while it has at least `settle` reports left before `max_t` (the
reports the rules need to judge); nearer the end PBT leaves trials as they are.

Between verdicts it is Ray's asynchronous PBT: every `perturbation_interval` reports a
trial in the bottom quantile copies one in the (healthy) top quantile.

This reaches into PBT's bookkeeping (`_trial_state`, `_save_trial_state`, `_exploit`,
`_quantiles`, `_get_new_config`), a developer API that may change between Ray releases:
Ray is pinned to 2.60.x and tests/test_pbt.py drives the real scheduler under Tune.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from typing import Any

from ray.tune.execution.tune_controller import TuneController
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pbt import _FutureTrainingResult

from collapsetune.collapse import HEALTHY, STATUS_KEY, STOPPING

logger = logging.getLogger(__name__)


class CollapsePBT(PopulationBasedTraining):
    """PopulationBasedTraining whose donors are healthy and whose collapsed trials are rescued.

    Args:
        limits: per mutable key, the (low, high) a perturbed value is clipped to (its search
            space's bounds; Ray's PBT multiplies by a factor and would leave them).
        rescue: False stops collapsed trials instead (healthy-only donors remain).
        max_t: the last report (`time_attr`) of a trial.
        settle: reports the collapse rules need after a copy before they can judge.
        **kwargs: PopulationBasedTraining's.

    Example:
        >>> from ray import tune
        >>> pbt = CollapsePBT(time_attr="training_iteration", perturbation_interval=2,
        ...                   hyperparam_mutations={"lr": tune.loguniform(1e-4, 1e-1)},
        ...                   limits={"lr": (1e-4, 1e-1)}, max_t=12, settle=4)
    """

    def __init__(self, *, limits: Mapping[str, tuple[float, float]] | None = None, rescue: bool = True,
                 max_t: float = math.inf, settle: float = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._limits = dict(limits or {})
        self._rescue = rescue
        self._max_t = max_t
        self._settle = settle
        self._status: dict[str, str] = {}  # trial id -> its latest verdict
        self.rescued = 0  # exploits made on a collapsed verdict
        self.unrescued = 0  # collapsed trials stopped for want of a healthy donor

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        status = result.get(STATUS_KEY, "")
        self._status[trial.trial_id] = status
        if status not in STOPPING:
            return super().on_trial_result(tune_controller, trial, result)
        if not self._rescue or self._time_attr not in result or self._metric not in result:
            return TrialScheduler.STOP
        state = self._trial_state[trial]
        self._save_trial_state(state, result[self._time_attr], result, trial)
        # A checkpoint kept from when it was on top is not of this (collapsed) report, and the
        # trial's course is about to change: it is no donor until it saves again.
        state.last_checkpoint = None
        donor = self._donor(tune_controller, trial)
        if donor is None:
            self.unrescued += 1
            logger.info("collapsetune PBT: trial %s is %s and no healthy trial has a checkpoint to copy; "
                        "stopped", trial.trial_id, status)
            return TrialScheduler.STOP
        self.rescued += 1
        self._exploit(tune_controller, trial, donor)
        return TrialScheduler.NOOP if trial.status == Trial.PAUSED else TrialScheduler.CONTINUE

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        """Ray's quantiles with only healthy trials worth copying on top; none on either side
        when no such trial is left."""
        lower, upper = super()._quantiles()
        upper = [t for t in upper if self._status.get(t.trial_id) == HEALTHY and self._worth_copying(t)]
        return (lower, upper) if upper else ([], [])

    def _worth_copying(self, donor: Trial, at: float | None = None) -> bool:
        """Enough reports left after `at` (the donor's checkpoint; by default its last scored
        report) for fresh rules to judge the copy."""
        return self._max_t - (self._trial_state[donor].last_train_time if at is None else at) >= self._settle

    def _donor(self, tune_controller: TuneController, trial: Trial) -> Trial | None:
        """A healthy live trial from the top quantile of the healthy ones, else the best
        inconclusive one; with a checkpoint, and worth copying."""
        live = [t for t, state in self._trial_state.items()
                if t is not trial and not t.is_finished() and state.last_score is not None
                and not math.isnan(state.last_score) and self._worth_copying(t)]
        live.sort(key=lambda t: self._trial_state[t].last_score, reverse=True)
        healthy = [t for t in live if self._status.get(t.trial_id) == HEALTHY]
        top = healthy[:max(1, math.ceil(len(healthy) * self._quantile_fraction))]
        random.shuffle(top)
        waiting = [t for t in live if self._status.get(t.trial_id) not in (HEALTHY, *STOPPING)]
        for candidate in [*top, *healthy[len(top):], *waiting]:
            if self._has_checkpoint(tune_controller, candidate) and self._copyable(candidate):
                state = self._trial_state[candidate]  # last_result: the metrics of that checkpoint
                if self._worth_copying(candidate, (state.last_result or {}).get(self._time_attr)):
                    return candidate
        return None

    def _copyable(self, donor: Trial) -> bool:
        """Neither the donor's latest verdict nor that of the report its checkpoint holds
        (`last_result` once the checkpoint is resolved) is collapsed or diverged."""
        checkpointed = (self._trial_state[donor].last_result or {}).get(STATUS_KEY)
        return self._status.get(donor.trial_id) not in STOPPING and checkpointed not in STOPPING

    def _exploit(self, tune_controller: TuneController, trial: Trial, trial_to_clone: Trial) -> None:
        # Ray's own rounds come here with the donor's checkpoint resolved: its report may be
        # the one on which the donor collapsed. Then the trial keeps its own weights.
        if not self._copyable(trial_to_clone):
            state = self._trial_state[trial_to_clone]
            logger.info("collapsetune PBT: trial %s was not copied into %s: its checkpoint's report %s is %s",
                        trial_to_clone.trial_id, trial.trial_id, (state.last_result or {}).get(self._time_attr),
                        (state.last_result or {}).get(STATUS_KEY) or self._status.get(trial_to_clone.trial_id))
            return
        super()._exploit(tune_controller, trial, trial_to_clone)

    def _has_checkpoint(self, tune_controller: TuneController, donor: Trial) -> bool:
        """Makes `_trial_state[donor].last_checkpoint` a checkpoint to copy: PBT's own (made when
        the donor was last on top), else its latest saved one, else one saved now."""
        state = self._trial_state[donor]
        if state.last_checkpoint is None and donor.status == Trial.RUNNING:
            state.last_checkpoint = tune_controller._schedule_trial_save(donor, result=state.last_result)
        if isinstance(state.last_checkpoint, _FutureTrainingResult):
            saved = state.last_checkpoint.resolve()
            state.last_checkpoint = saved.checkpoint if saved else None
            if saved:
                state.last_result = saved.metrics
        if state.last_checkpoint is None:
            latest = donor.run_metadata.checkpoint_manager.latest_checkpoint_result
            if latest is not None and latest.checkpoint is not None:
                state.last_checkpoint, state.last_result = latest.checkpoint, latest.metrics
        return state.last_checkpoint is not None

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        config, operations = super()._get_new_config(trial, trial_to_clone)
        for key, (low, high) in self._limits.items():
            value = config.get(key)
            if isinstance(value, (int, float)) and not low <= value <= high:
                config[key] = type(value)(min(max(value, low), high))
                operations[key] = f"{operations.get(key, '')} (clipped to [{low:g}, {high:g}])".strip()
        return config, operations

    def debug_string(self) -> str:
        return f"{super().debug_string()}, {self.rescued} collapsed trials rescued, {self.unrescued} not"
