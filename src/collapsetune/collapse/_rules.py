"""Collapse rules: what a sweep file says (`Rule`), the stateful check on one trial's
stream of reports (`CollapseRule`), and the trial's verdict (`CollapseMonitor`).

A rule is one or more conditions (`collapsetune.collapse.Below`, ... ; all must hold on the
same report) with `patience` (how many consecutive reports they must hold) and `grace` (how
many first reports are ignored). `CollapseMonitor` runs every rule of a sweep on each report
and keeps the trial's verdict; it lives inside the trainable, so its counters travel with
the trial's checkpoint.

A verdict is one of:
  healthy       every rule has seen enough reports to fire and none of its conditions holds
  inconclusive  not yet: a rule is inside its grace or first reports, or its conditions hold
                but not yet for `patience` reports (a trial that ends so was never judged)
  collapsed     a rule fired (sticky)
  diverged      a loss or the objective is not finite (sticky)
and `error` is what a trial whose code failed gets in summaries and MLflow.

Readers of a results folder (`report`, the atlas, MLflow's notes) call each trial by one of
`OUTCOMES`: the verdicts above, `error`, and what the results imply beyond the verdict
(`running`; `collapsing` and `unjudged` for a trial the scheduler cut while its verdict
still said healthy, in results written before the trainable said inconclusive).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collapsetune.collapse._conditions import FORM, Condition, Unknown, parse_condition, read_condition
from collapsetune.errors import SpecError, raise_all

HEALTHY = "healthy"
INCONCLUSIVE = "inconclusive"
COLLAPSED = "collapsed"
DIVERGED = "diverged"
ERROR = "error"  # the trial's code raised (or its process died) for good: no verdict
STOPPING = (COLLAPSED, DIVERGED)  # verdicts that end a trial and penalise its objective
# Outcomes a results folder implies beyond the trainable's verdict: a trial the scheduler cut
# while "healthy" was not necessarily healthy (issue: ASHA cut a trial mid-collapse, inside
# its rule's patience, and it was called the best healthy trial).
COLLAPSING = "collapsing"  # cut while a collapse condition held on its last report
UNJUDGED = "unjudged"  # cut before every rule had seen enough reports to fire
RUNNING = "running"  # still running (or pending) when the folder was read
# Best first: the order `report` lists trials in, and the atlas's legend order.
OUTCOMES = (HEALTHY, RUNNING, INCONCLUSIVE, UNJUDGED, COLLAPSING, COLLAPSED, DIVERGED, ERROR)

_FORMS = f"a condition {FORM} with patience? and grace?, or a group {{all: [conditions], patience?, grace?}}"


@dataclass(frozen=True)
class Rule:
    """A collapse rule as a sweep file writes it: fires once its condition(s) held for
    `patience` reports in a row, after the first `grace` reports.

    Example:
        >>> from collapsetune.collapse import Below
        >>> Rule((Below("collapse/unique_tokens", 20),), patience=2).to_yaml()
        {'metric': 'collapse/unique_tokens', 'below': 20, 'patience': 2, 'grace': 0}
    """

    conditions: tuple[Condition, ...]  # one condition, or the group's conditions
    patience: int = 1  # consecutive reports the conditions must hold
    grace: int = 0  # first reports ignored (a model starts out "collapsed")
    all: bool = False  # a YAML `all:` group: fires only when every condition holds

    def __post_init__(self) -> None:
        errors = []
        if not self.conditions or (not self.all and len(self.conditions) != 1):
            errors.append(SpecError(f"a rule is {_FORMS}, got {len(self.conditions)} conditions"))
        for name, least in (("patience", 1), ("grace", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                errors.append(SpecError(f"expected an integer, got {value!r}", key=name))
            elif value < least:
                errors.append(SpecError(f"{name} must be >= {least}, got {value}", key=name))
        raise_all(errors)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(c.metric for c in self.conditions)

    @property
    def known(self) -> bool:
        """Every condition is of a kind this version reads (see `Rule.read`)."""
        return not any(isinstance(c, Unknown) for c in self.conditions)

    def text(self) -> str:
        """Its conditions as written: `collapse/unique_tokens < 20 and ...`."""
        return " and ".join(c.text() for c in self.conditions)

    @property
    def earliest_report(self) -> int:
        """The first report on which the rule can fire (and a healthy trial be judged)."""
        return self.grace + max(c.reports_needed for c in self.conditions) + self.patience - 1

    @classmethod
    def from_yaml(cls, raw: Any) -> Rule:
        from collapsetune.spec._base import show, unknown_key

        if not isinstance(raw, Mapping):
            raise SpecError(f"expected {_FORMS}, got {show(raw)}")
        group = "all" in raw
        counts = {k: raw[k] for k in ("patience", "grace") if k in raw}
        errors: list[SpecError] = []
        if group:
            errors += [unknown_key(k, ["all", "patience", "grace"]) for k in raw if k not in ("all", "patience", "grace")]
        conditions: list[Condition] = []
        try:
            if not group:
                conditions.append(parse_condition({k: v for k, v in raw.items() if k not in counts},
                                                  also=("patience", "grace")))
            elif isinstance(raw["all"], list) and raw["all"]:
                conditions += _each_condition(raw["all"])
            else:
                raise SpecError(f"expected a non-empty list of conditions {FORM}, got {show(raw['all'])}")
        except SpecError as exc:
            errors.append(exc.within("all") if group else exc)
        try:
            probe = cls((_PROBE,), **counts)  # patience and grace alone, whatever the conditions
        except SpecError as exc:
            errors.append(exc)
        else:
            del probe
        raise_all(errors)
        return cls(tuple(conditions), **counts, all=group)

    @classmethod
    def read(cls, raw: Any) -> Rule:
        """A rule as a results folder holds it, never failing: what `from_yaml` refuses (a
        kind a newer version wrote) keeps its metrics with `Unknown` conditions, and counts
        it cannot read take their defaults."""
        try:
            return cls.from_yaml(raw)
        except SpecError:
            pass
        if not isinstance(raw, Mapping):
            return cls((Unknown("", raw),))
        group = raw.get("all")
        items = group if isinstance(group, list) and group else [
            {k: v for k, v in raw.items() if k not in ("patience", "grace")}]
        counts = {k: raw[k] for k, least in (("patience", 1), ("grace", 0))
                  if isinstance(raw.get(k), int) and not isinstance(raw[k], bool) and raw[k] >= least}
        return cls(tuple(read_condition(c) for c in items), **counts, all=len(items) > 1 or group is not None)

    def to_yaml(self) -> dict:
        counts = {"patience": self.patience, "grace": self.grace}
        if self.all:
            return {"all": [c.to_yaml() for c in self.conditions], **counts}
        return {**self.conditions[0].to_yaml(), **counts}

    def after_copy(self, grace: int) -> Rule:
        """This rule with at most `grace` reports of grace: what a trial gets after PBT copies a
        trained checkpoint into it."""
        return dataclasses.replace(self, grace=min(self.grace, grace))

    def build(self, reports_before: int = 0) -> CollapseRule:
        """A fresh, stateful check of this rule for one trial, which has made `reports_before`
        reports before the check starts (a PBT exploit restarts the rules part-way)."""
        return CollapseRule(self, reports_before)


def _each_condition(raw: list) -> list[Condition]:
    out, errors = [], []
    for i, item in enumerate(raw):
        try:
            out.append(parse_condition(item))
        except SpecError as exc:
            errors.append(exc.within(f"[{i}]"))
    raise_all(errors)
    return out


class CollapseRule:
    """One rule's check on one trial's reports: the metric values so far, the grace and the
    patience streak. Stateful; `state_dict` / `load_state_dict` round-trip it.

    Example:
        >>> from collapsetune.collapse import Below
        >>> rule = CollapseRule(Rule((Below("collapse/unique_tokens", 20),), patience=2))
        >>> rule.update({"collapse/unique_tokens": 3}), rule.update({"collapse/unique_tokens": 4})
        (None, 'collapse/unique_tokens=4 < 20 for 2 reports')
    """

    def __init__(self, rule: Rule, reports_before: int = 0):
        self.rule = rule
        self._before = reports_before  # the trial's reports before this check started, for messages
        self._seen = 0  # reports received
        self._streak = 0  # consecutive reports on which every condition held
        self._values: dict[str, list[float]] = {m: [] for m in rule.metrics}  # after grace

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.rule.metrics

    @property
    def holding(self) -> bool:
        """Its conditions held on the latest report (after grace)."""
        return self._streak > 0

    @property
    def judged(self) -> bool:
        """It has seen enough reports to fire and its conditions do not hold now."""
        return self._seen >= self.rule.earliest_report and self._streak == 0

    def update(self, metrics: Mapping[str, float]) -> str | None:
        """Feeds one report; returns the reason when the rule fires, else None."""
        self._seen += 1
        if self._seen <= self.rule.grace:
            return None
        for metric, values in self._values.items():
            values.append(float(metrics[metric]))
        if all(c.holds(self._values[c.metric]) for c in self.rule.conditions):
            self._streak += 1
        else:
            self._streak = 0  # a dip that recovers before patience runs out is forgiven
        if self._streak < self.rule.patience:
            return None
        return f"{self._what()} for {_reports(self.rule.patience)}"

    def pending(self) -> str:
        """Why it has not judged the trial yet ("" once it has)."""
        if self._streak:
            return f"{self._what()} for {self._streak} of {_reports(self.rule.patience)}"
        if self._seen < self.rule.earliest_report:
            return (f"a rule on {', '.join(self.metrics)} can judge from report "
                    f"{self._before + self.rule.earliest_report}")
        return ""

    def margin(self) -> float:
        """Its conditions' margin on the latest report: > 0 when all hold (the smallest)."""
        if not all(self._values.values()):
            return -math.inf
        return min(c.margin(self._values[c.metric]) for c in self.rule.conditions)

    def _what(self) -> str:
        return " and ".join(c.describe(self._values[c.metric]) for c in self.rule.conditions)

    def state_dict(self) -> dict:
        return {"seen": self._seen, "streak": self._streak, "values": {k: list(v) for k, v in self._values.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        self._seen, self._streak = int(state["seen"]), int(state["streak"])
        stored = state.get("values", {})  # checkpoints from before history was kept have none
        self._values = {m: [float(v) for v in stored.get(m, [])] for m in self.rule.metrics}


@dataclass(frozen=True)
class Verdict:
    """Where a trial stands (see the module docstring); collapsed and diverged are sticky."""

    status: str = INCONCLUSIVE
    reason: str = ""  # why collapsed or diverged, or what a rule is still waiting for
    iteration: int = 0  # report at which it collapsed or diverged; 0 otherwise

    @property
    def healthy(self) -> bool:
        return self.status == HEALTHY

    @property
    def stopping(self) -> bool:
        """Collapsed or diverged: the trial is stopped and its objective penalised."""
        return self.status in STOPPING


class CollapseMonitor:
    """Runs a sweep's rules on a trial's reports and keeps its verdict.

    Any rule that fires marks the trial collapsed. A non-finite value of any metric named
    in `divergence_metrics` (the losses and the objective) marks it diverged. Once a trial
    is collapsed or diverged it stays so: a stopped trial must not look healthy to later
    readers. Until then it is healthy on a report where every rule has judged it, else
    inconclusive.

    Example:
        >>> from collapsetune.collapse import Below
        >>> monitor = CollapseMonitor([Rule((Below("collapse/unique_tokens", 20),))])
        >>> monitor.update({"val/loss": 2.0, "collapse/unique_tokens": 3}).status
        'collapsed'
    """

    def __init__(self, rules: Sequence[Rule], divergence_metrics: Sequence[str] = ("train/loss", "val/loss"),
                 reports_before: int = 0):
        self.rules = [rule.build(reports_before) for rule in rules]
        self.divergence_metrics = tuple(divergence_metrics)
        self.verdict = Verdict(HEALTHY if not self.rules else INCONCLUSIVE)
        # Reports the trial made before this monitor started watching it (a PBT exploit gives
        # a trial fresh rules, grace included, part-way through): verdicts name the trial's
        # own report numbers.
        self._reports = reports_before

    def update(self, metrics: Mapping[str, float]) -> Verdict:
        """Feeds one report and returns the (possibly unchanged) verdict."""
        self._check_metrics(metrics)
        self._reports += 1
        # Rules see every report, even after a verdict, so their counters stay truthful.
        reasons = [r for r in (rule.update(metrics) for rule in self.rules) if r]
        if self.verdict.stopping:
            return self.verdict
        bad = [k for k in self.divergence_metrics if k in metrics and not _finite(metrics[k])]
        if bad:
            self.verdict = Verdict(DIVERGED, ", ".join(f"{k}={metrics[k]}" for k in bad), self._reports)
        elif reasons:
            self.verdict = Verdict(COLLAPSED, "; ".join(reasons), self._reports)
        else:
            waiting = [w for w in (rule.pending() for rule in self.rules) if w]
            self.verdict = Verdict(INCONCLUSIVE, "; ".join(waiting)) if waiting else Verdict(HEALTHY)
        return self.verdict

    def margin(self) -> float:
        """How far the trial is past its rules' conditions on the latest report, relative to
        each bound and maxed over rules: > 0 when some rule's conditions hold; +inf once
        diverged; -inf with no rules (nothing to be past)."""
        if self.verdict.status == DIVERGED:
            return math.inf
        return max((rule.margin() for rule in self.rules), default=-math.inf)

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


class _Probe(Condition):
    """Stands in for the conditions while `Rule.from_yaml` checks patience and grace alone."""

    metric = "probe"


_PROBE = _Probe()


def _reports(n: int) -> str:
    return f"{n} report" if n == 1 else f"{n} reports"


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
