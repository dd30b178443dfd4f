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
  its config (the sweep's `mutable` knobs, clipped to their search-space bounds; those in
  `rescue_toward` move the way that fixes collapse, `decisions.toward`). The donor
  is a healthy trial from the top of the healthy ones, or, while no trial has been judged
  healthy yet (early in a sweep), the best inconclusive one. With no donor it is stopped,
  as under any other scheduler.

After any copy `CollapseTrainable` gives the trial fresh collapse rules, grace included, so a
donor is only worth copying while it has at least `settle` reports left before `max_t` (the
reports the rules need to judge); nearer the end PBT leaves trials as they are.

Between verdicts it is Ray's asynchronous PBT: every `perturbation_interval` reports a
trial in the bottom quantile copies one in the (healthy) top quantile.

The decisions (rescue or stop, the donor order, who is copyable and worth copying, the
healthy top quantile) are plain functions in `collapsetune.decisions` (no Ray there). This
class reads PBT's bookkeeping through `collapsetune._ray` and overrides three of its private
methods (`_exploit`, `_quantiles`, `_get_new_config`); importing `_ray` checks that the
installed Ray still has each of them. tests/test_pbt.py drives the real scheduler under Tune.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from ray.tune.execution.tune_controller import TuneController
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from collapsetune import _ray
from collapsetune.collapse import STATUS_KEY
from collapsetune.decisions import RANK, STOP, copyable, donor_order, healthy_quantiles, pbt_on_result, toward, worth_copying

logger = logging.getLogger(__name__)


class CollapsePBT(PopulationBasedTraining):
    """PopulationBasedTraining whose donors are healthy and whose collapsed trials are rescued.

    Args:
        limits: per mutable key, the (low, high) a perturbed value is clipped to (its search
            space's bounds; Ray's PBT multiplies by a factor and would leave them).
        rescue: False stops collapsed trials instead (healthy-only donors remain).
        rescue_toward: per mutable key, "up" or "down": on a rescue the copied value moves
            that way (`decisions.toward`) instead of being perturbed at random.
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
                 rescue_toward: Mapping[str, str] | None = None, max_t: float = math.inf, settle: float = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._limits = dict(limits or {})
        self._rescue = rescue
        self._rescue_toward = dict(rescue_toward or {})
        # Kept here, not read back from PBT's private attributes: where each knob may move.
        self._mutations = dict(kwargs.get("hyperparam_mutations") or {})
        self._factors = tuple(kwargs.get("perturbation_factors", (1.2, 0.8)))
        unknown = sorted(set(self._rescue_toward).difference(self._mutations))
        if unknown:
            raise ValueError(f"rescue_toward keys must be hyperparam_mutations keys, got {unknown}")
        self._rescuing = False  # inside a rescue's exploit: _get_new_config moves rescue_toward's knobs
        self._max_t = max_t
        self._settle = settle
        self._status: dict[str, str] = {}  # trial id -> its latest verdict
        self.rescued = 0  # exploits made on a collapsed verdict
        self.unrescued = 0  # collapsed trials stopped for want of a healthy donor

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        status = result.get(STATUS_KEY, "")
        self._status[trial.trial_id] = status
        settings = _ray.pbt_settings(self)
        action = pbt_on_result(result, rescue=self._rescue, time_attr=settings.time_attr, metric=settings.metric)
        if action == RANK:
            return super().on_trial_result(tune_controller, trial, result)
        if action == STOP:
            return TrialScheduler.STOP
        _ray.save_pbt_state(self, trial, result)
        # A checkpoint kept from when it was on top is not of this (collapsed) report, and the
        # trial's course is about to change: it is no donor until it saves again.
        _ray.pbt_states(self)[trial].last_checkpoint = None
        donor = self._donor(tune_controller, trial)
        if donor is None:
            self.unrescued += 1
            logger.info("collapsetune PBT: trial %s is %s and no healthy trial has a checkpoint to copy; "
                        "stopped", trial.trial_id, status)
            return TrialScheduler.STOP
        self.rescued += 1
        self._rescuing = True
        try:
            self._exploit(tune_controller, trial, donor)
        finally:
            self._rescuing = False
        return TrialScheduler.NOOP if trial.status == Trial.PAUSED else TrialScheduler.CONTINUE

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        """Ray's quantiles with only healthy trials worth copying on top; none on either side
        when no such trial is left."""
        lower, upper = super()._quantiles()
        by_id = {t.trial_id: t for t in (*lower, *upper)}
        lower_ids, upper_ids = healthy_quantiles([t.trial_id for t in lower], [t.trial_id for t in upper],
                                                 self._status, lambda tid: self._worth_copying(by_id[tid]))
        return [by_id[tid] for tid in lower_ids], [by_id[tid] for tid in upper_ids]

    def _worth_copying(self, donor: Trial, at: float | None = None) -> bool:
        """Enough reports left after `at` (the donor's checkpoint; by default its last scored
        report) for fresh rules to judge the copy."""
        at = _ray.pbt_states(self)[donor].last_train_time if at is None else at
        return worth_copying(at, max_t=self._max_t, settle=self._settle)

    def _donor(self, tune_controller: TuneController, trial: Trial) -> Trial | None:
        """The first trial in `decisions.donor_order` with a checkpoint whose report is
        copyable and worth copying."""
        states = _ray.pbt_states(self)
        live = {t.trial_id: t for t in states if not t.is_finished() and self._worth_copying(t)}
        order = donor_order(trial.trial_id, {tid: states[t].last_score for tid, t in live.items()}, self._status,
                            _ray.pbt_settings(self).quantile_fraction)
        time_attr = _ray.pbt_settings(self).time_attr
        for candidate in (live[tid] for tid in order):
            if self._has_checkpoint(tune_controller, candidate) and self._copyable(candidate):
                state = states[candidate]  # last_result: the metrics of that checkpoint
                if self._worth_copying(candidate, (state.last_result or {}).get(time_attr)):
                    return candidate
        return None

    def _copyable(self, donor: Trial) -> bool:
        """`decisions.copyable` on the donor's latest verdict and on that of the report its
        checkpoint holds (`last_result` once the checkpoint is resolved)."""
        checkpointed = (_ray.pbt_states(self)[donor].last_result or {}).get(STATUS_KEY)
        return copyable(self._status.get(donor.trial_id), checkpointed)

    def _exploit(self, tune_controller: TuneController, trial: Trial, trial_to_clone: Trial) -> None:
        # Ray's own rounds come here with the donor's checkpoint resolved: its report may be
        # the one on which the donor collapsed. Then the trial keeps its own weights.
        if not self._copyable(trial_to_clone):
            last = _ray.pbt_states(self)[trial_to_clone].last_result or {}
            logger.info("collapsetune PBT: trial %s was not copied into %s: its checkpoint's report %s is %s",
                        trial_to_clone.trial_id, trial.trial_id, last.get(_ray.pbt_settings(self).time_attr),
                        last.get(STATUS_KEY) or self._status.get(trial_to_clone.trial_id))
            return
        super()._exploit(tune_controller, trial, trial_to_clone)

    def _has_checkpoint(self, tune_controller: TuneController, donor: Trial) -> bool:
        """Makes the donor's PBT state's `last_checkpoint` a checkpoint to copy: PBT's own (made
        when the donor was last on top), else its latest saved one, else one saved now."""
        state = _ray.pbt_states(self)[donor]
        if state.last_checkpoint is None and donor.status == Trial.RUNNING:
            state.last_checkpoint = _ray.schedule_save(tune_controller, donor, state.last_result)
        saved = _ray.resolved(state.last_checkpoint)
        if saved is not None:
            state.last_checkpoint, metrics = saved
            if metrics is not None:
                state.last_result = metrics
        if state.last_checkpoint is None:
            latest = donor.run_metadata.checkpoint_manager.latest_checkpoint_result
            if latest is not None and latest.checkpoint is not None:
                state.last_checkpoint, state.last_result = latest.checkpoint, latest.metrics
        return state.last_checkpoint is not None

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        config, operations = super()._get_new_config(trial, trial_to_clone)
        if self._rescuing:  # the declared anti-collapse knobs move their fixing way, not at random
            for key, direction in self._rescue_toward.items():
                mutation = self._mutations[key]
                config[key] = toward(trial_to_clone.config[key], direction, factors=self._factors,
                                     bounds=self._limits.get(key),
                                     choices=mutation if isinstance(mutation, list) else None)
                operations[key] = f"rescue: {direction}"
        for key, (low, high) in self._limits.items():
            value = config.get(key)
            if isinstance(value, (int, float)) and not low <= value <= high:
                config[key] = type(value)(min(max(value, low), high))
                operations[key] = f"{operations.get(key, '')} (clipped to [{low:g}, {high:g}])".strip()
        return config, operations

    def debug_string(self) -> str:
        return f"{super().debug_string()}, {self.rescued} collapsed trials rescued, {self.unrescued} not"
