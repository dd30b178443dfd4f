"""What `collapsetune run` prints while a sweep runs: a line when a trial starts, when its
verdict turns, when PBT copies another trial into it, when it ends and why, and every `interval` seconds one line on where the
sweep stands. Ray Tune's own tables (every metric of every trial, every few seconds) are
turned off in its place; everything is still in the results folder and in MLflow.

Example:
    >>> Progress(metric="val/loss", rule_metrics=["collapse/unique_tokens"], searched=["lr"],
    ...          max_iterations=12)  # doctest: +ELLIPSIS
    <collapsetune.progress.Progress object at ...>
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ray import tune

from collapsetune.collapse import INCONCLUSIVE, REASON_KEY, STATUS_KEY, STOPPING
from collapsetune.names import DONOR_KEY, DONOR_REPORT_KEY, SWEEP_STOP_KEY
from collapsetune.results import copy_label, early_end


class Progress(tune.Callback):
    """Prints a sweep's progress, a few lines per trial (see the module docstring)."""

    scheduler: str = ""  # class default: a Progress pickled before it existed loads

    def __init__(self, metric: str, rule_metrics: Sequence[str], searched: Sequence[str], max_iterations: int,
                 interval: float = 60.0, out: TextIO | None = None, cuts: bool = True, scheduler: str = ""):
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.metric = metric
        self.rule_metrics = list(dict.fromkeys(rule_metrics))
        self.searched = list(searched)
        self.max_iterations = max_iterations
        self.cuts = cuts  # the scheduler ends trials early (ASHA); under FIFO an early end is no cut
        self.scheduler = scheduler  # its type, for the line that says it cuts none
        self.interval = interval
        self._out = out
        self._start = time.monotonic()
        self._last_status = self._start
        self._last: dict[str, dict] = {}  # trial id -> its latest result
        self._ended: dict[str, str] = {}  # trial id -> verdict it ended with

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_out": None}  # Tune pickles callbacks; a stream does not pickle

    # -- Tune hooks ---------------------------------------------------------------------

    def setup(self, **info: Any) -> None:
        self._start = self._last_status = time.monotonic()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._last:
            return  # PBT paused it and now runs it again: no news
        self._last[trial.trial_id] = {}
        knobs = ", ".join(f"{k}={_short(trial.config[k])}" for k in self.searched if k in trial.config)
        self._say(f"{_name(trial)} started{': ' + knobs if knobs else ''}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        last = self._last.get(trial.trial_id, {})
        before = last.get(STATUS_KEY)
        self._last[trial.trial_id] = result
        status = result.get(STATUS_KEY)
        if status in STOPPING and before not in STOPPING:
            self._say(f"{_name(trial)} {status} at report {result.get('training_iteration')}: "
                      f"{result.get(REASON_KEY, '')}")
        if SWEEP_STOP_KEY in result:
            others = sum(t.status in ("RUNNING", "PENDING", "PAUSED") and t is not trial for t in trials)
            self._say(f"sweep stopped by stop_sweep_when: {result[SWEEP_STOP_KEY]}; {others} other unfinished "
                      "trial(s) stop with it")
        if DONOR_KEY in result:
            knobs = ", ".join(f"{k}={_short(trial.config[k])}" for k in self.searched if k in trial.config)
            copy = copy_label(result[DONOR_KEY], int(result.get(DONOR_REPORT_KEY, 0)), last)
            self._say(f"{_name(trial)} {copy}{', now ' + knobs if knobs else ''}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(f"{_name(trial)} failed; retrying from its last checkpoint "
                  f"(failure {trial.run_metadata.num_failures})")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = self._last.get(trial.trial_id) or trial.last_result or {}
        status = last.get(STATUS_KEY, INCONCLUSIVE)
        self._ended[trial.trial_id] = status
        if status in STOPPING:
            return  # said when its verdict turned
        reports = int(last.get("training_iteration", 0))
        how = (f"after all {reports} reports" if reports >= self.max_iterations
               else early_end(reports, self.max_iterations, cuts=self.cuts, scheduler=self.scheduler))
        why = f" ({last.get(REASON_KEY)})" if status == INCONCLUSIVE and last.get(REASON_KEY) else ""
        self._say(f"{_name(trial)} {status} {how}{why}{self._value(last)}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended[trial.trial_id] = "error"
        last = self._last.get(trial.trial_id, {})
        self._say(f"{_name(trial)} failed at report {int(last.get('training_iteration', 0)) + 1} "
                  f"(see the summary and its error.txt)")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_status < self.interval:
            return
        self._last_status = now
        running = [t for t in trials if t.status == "RUNNING"]
        counts: dict[str, int] = {}
        for status in self._ended.values():
            counts[status] = counts.get(status, 0) + 1
        done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        lines = [f"{len(self._ended)} of {len(trials)} trials done{' (' + done + ')' if done else ''}, "
                 f"{len(running)} running"]
        for trial in running:
            last = self._last.get(trial.trial_id)
            if last:
                watched = "".join(f", {m.rsplit('/', 1)[-1]}={_short(last[m])}" for m in self.rule_metrics if m in last)
                lines.append(f"  {_name(trial)} report {last.get('training_iteration')}: "
                             f"{last.get(STATUS_KEY, '?')}{self._value(last)}{watched}")
        self._say("\n".join(lines))

    # -- printing -----------------------------------------------------------------------

    def _value(self, result: dict) -> str:
        value = result.get(self.metric)
        return f", {self.metric}={_short(value)}" if isinstance(value, (int, float)) else ""

    def _say(self, text: str) -> None:
        elapsed = int(time.monotonic() - self._start)
        out = self._out or sys.stdout
        out.write(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}\n")
        out.flush()


def _name(trial: Any) -> str:
    return f"trial {trial.trial_id}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


__all__ = ["Progress"]
