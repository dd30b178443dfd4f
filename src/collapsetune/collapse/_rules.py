"""Collapse rules: stateful checks on one trial's stream of reports.

A rule is a set of threshold conditions with `patience` (how many consecutive reports
they must hold) and `grace` (how many first reports are ignored). `CollapseMonitor` runs
every rule of a sweep on each report and keeps the trial's verdict; it lives inside the
trainable, so its counters travel with the trial's checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HEALTHY = "healthy"
COLLAPSED = "collapsed"
DIVERGED = "diverged"
ERROR = "error"  # the trial's code raised (or its process died) for good: no verdict


@dataclass(frozen=True)
class Threshold:
    """One condition: `metric` below or above a value.

    Example:
        >>> Threshold("collapse/unique_tokens", below=20).holds({"collapse/unique_tokens": 3})
        True
    """

    metric: str
    below: float | None = None
    above: float | None = None

    def __post_init__(self) -> None:
        if (self.below is None) == (self.above is None):
            raise ValueError(
                f"a condition on {self.metric!r} needs exactly one of below/above, "
                f"got below={self.below}, above={self.above}"
            )

    def holds(self, metrics: Mapping[str, float]) -> bool:
        value = float(metrics[self.metric])
        if math.isnan(value):
            return False  # a missing measurement is no evidence of collapse
        return value < self.below if self.below is not None else value > self.above

    def describe(self, metrics: Mapping[str, float]) -> str:
        op, bound = ("<", self.below) if self.below is not None else (">", self.above)
        return f"{self.metric}={_fmt(metrics[self.metric])} {op} {_fmt(bound)}"


class CollapseRule:
    """Fires when all its conditions hold for `patience` consecutive reports after `grace`.

    A single-condition rule and an `all:` group are the same object: a group is simply a
    rule with several conditions, which must hold together on the same report.

    Example:
        >>> rule = CollapseRule([Threshold("collapse/unique_tokens", below=20)], patience=2)
        >>> rule.update({"collapse/unique_tokens": 3}), rule.update({"collapse/unique_tokens": 4})
        (None, 'collapse/unique_tokens=4 < 20 for 2 reports')
    """

    def __init__(self, conditions: Sequence[Threshold], patience: int = 1, grace: int = 0):
        if not conditions:
            raise ValueError("a collapse rule needs at least one condition, got none")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if grace < 0:
            raise ValueError(f"grace must be >= 0, got {grace}")
        self.conditions = tuple(conditions)
        self.patience = patience
        self.grace = grace
        self._seen = 0  # reports received
        self._streak = 0  # consecutive reports on which every condition held

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(c.metric for c in self.conditions)

    def update(self, metrics: Mapping[str, float]) -> str | None:
        """Feeds one report; returns the reason when the rule fires, else None."""
        self._seen += 1
        if self._seen <= self.grace:
            return None
        if all(c.holds(metrics) for c in self.conditions):
            self._streak += 1
        else:
            self._streak = 0  # a dip that recovers before patience runs out is forgiven
        if self._streak < self.patience:
            return None
        what = " and ".join(c.describe(metrics) for c in self.conditions)
        plural = "report" if self.patience == 1 else "reports"
        return f"{what} for {self.patience} {plural}"

    def state_dict(self) -> dict[str, int]:
        return {"seen": self._seen, "streak": self._streak}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self._seen, self._streak = int(state["seen"]), int(state["streak"])


@dataclass(frozen=True)
class Verdict:
    """Where a trial stands: `status` is healthy, collapsed or diverged (sticky once not healthy)."""

    status: str = HEALTHY
    reason: str = ""
    iteration: int = 0  # report at which the status changed; 0 while healthy

    @property
    def healthy(self) -> bool:
        return self.status == HEALTHY


class CollapseMonitor:
    """Runs a sweep's rules on a trial's reports and keeps its verdict.

    Any rule that fires marks the trial collapsed. A non-finite value of any metric named
    in `divergence_metrics` (the losses and the objective) marks it diverged. Once a trial
    is not healthy it stays so: a stopped trial must not look healthy to later readers.

    Example:
        >>> monitor = CollapseMonitor([CollapseRule([Threshold("collapse/unique_tokens", below=20)])])
        >>> monitor.update({"val/loss": 2.0, "collapse/unique_tokens": 3}).status
        'collapsed'
    """

    def __init__(
        self,
        rules: Sequence[CollapseRule],
        divergence_metrics: Sequence[str] = ("train/loss", "val/loss"),
    ):
        self.rules = list(rules)
        self.divergence_metrics = tuple(divergence_metrics)
        self.verdict = Verdict()
        self._reports = 0

    def update(self, metrics: Mapping[str, float]) -> Verdict:
        """Feeds one report and returns the (possibly unchanged) verdict."""
        self._check_metrics(metrics)
        self._reports += 1
        # Rules see every report, even after a verdict, so their counters stay truthful.
        reasons = [r for r in (rule.update(metrics) for rule in self.rules) if r]
        if not self.verdict.healthy:
            return self.verdict
        bad = [k for k in self.divergence_metrics if k in metrics and not _finite(metrics[k])]
        if bad:
            reason = ", ".join(f"{k}={metrics[k]}" for k in bad)
            self.verdict = Verdict(DIVERGED, reason, self._reports)
        elif reasons:
            self.verdict = Verdict(COLLAPSED, "; ".join(reasons), self._reports)
        return self.verdict

    def _check_metrics(self, metrics: Mapping[str, float]) -> None:
        # Checked on every report (cheap) so a metric that disappears later is caught too.
        needed = {m for rule in self.rules for m in rule.metrics}
        missing = sorted(needed - metrics.keys())
        if missing:
            raise KeyError(
                f"collapse rule metric(s) {missing} not in the model's report; "
                f"it reported: {sorted(metrics)}"
            )

    def state_dict(self) -> dict:
        return {
            "rules": [rule.state_dict() for rule in self.rules],
            "verdict": [self.verdict.status, self.verdict.reason, self.verdict.iteration],
            "reports": self._reports,
        }

    def load_state_dict(self, state: Mapping) -> None:
        if len(state["rules"]) != len(self.rules):
            raise ValueError(
                f"checkpoint holds state for {len(state['rules'])} rules, "
                f"the sweep has {len(self.rules)}"
            )
        for rule, rule_state in zip(self.rules, state["rules"]):
            rule.load_state_dict(rule_state)
        status, reason, iteration = state["verdict"]
        self.verdict = Verdict(status, reason, int(iteration))
        self._reports = int(state["reports"])


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
