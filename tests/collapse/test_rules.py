from __future__ import annotations

import math
import pickle

import pytest

from collapsetune.collapse import (
    COLLAPSED,
    DIVERGED,
    HEALTHY,
    INCONCLUSIVE,
    Above,
    Below,
    CollapseMonitor,
    CollapseRule,
    Rule,
)
from collapsetune.errors import SpecError

U = "collapse/unique_tokens"


def _tokens(n: float, loss: float = 2.0) -> dict[str, float]:
    return {U: n, "val/loss": loss, "train/loss": loss}


def _rule(*conditions, patience: int = 1, grace: int = 0) -> CollapseRule:
    return Rule(tuple(conditions), patience=patience, grace=grace, all=len(conditions) > 1).build()


def test_below_and_above():
    assert Below(U, 20).holds([19]) and not Below(U, 20).holds([20])
    assert Above(U, 0.9).holds([0.95]) and not Above(U, 0.9).holds([0.9])


def test_nan_is_no_evidence():
    assert not Below(U, 20).holds([math.nan]) and Below(U, 20).margin([math.nan]) == -math.inf


@pytest.mark.parametrize("kw,message", [({"patience": 0}, "patience must be >= 1, got 0"),
                                        ({"grace": -1}, "grace must be >= 0, got -1")])
def test_rule_rejects_bad_arguments(kw, message):
    with pytest.raises(SpecError, match=message):
        Rule((Below(U, 20),), **kw)


def test_rule_fires_after_patience_consecutive_reports():
    rule = _rule(Below(U, 20), patience=3)
    assert rule.update({U: 5}) is None
    assert rule.update({U: 5}) is None
    assert rule.update({U: 4}) == f"{U}=4 < 20 for 3 reports"


def test_rule_dip_that_recovers_before_patience_is_forgiven():
    rule = _rule(Below(U, 20), patience=2)
    assert rule.update({U: 5}) is None
    assert rule.update({U: 50}) is None  # recovered: the streak starts over
    assert rule.update({U: 5}) is None
    assert rule.update({U: 6}) is not None


def test_rule_grace_ignores_first_reports():
    rule = _rule(Below(U, 20), grace=2)
    assert rule.update({U: 1}) is None
    assert rule.update({U: 1}) is None
    assert rule.update({U: 1}) is not None


def test_group_fires_only_when_all_conditions_hold_together():
    group = _rule(Above("collapse/subprompt_cos_max", 0.9), Above("collapse/assign_max_share", 0.9))
    assert group.update({"collapse/subprompt_cos_max": 0.95, "collapse/assign_max_share": 0.4}) is None
    reason = group.update({"collapse/subprompt_cos_max": 0.95, "collapse/assign_max_share": 0.97})
    assert reason == (
        "collapse/subprompt_cos_max=0.95 > 0.9 and collapse/assign_max_share=0.97 > 0.9 for 1 report"
    )


def test_unless_improving_waits_out_a_collapse_that_is_lifting():
    lasting = Rule.from_yaml({"metric": U, "below": 20, "unless_improving": {"by": 2, "over": 3}}).build()
    lifting = Rule.from_yaml({"metric": U, "below": 20, "unless_improving": {"by": 2, "over": 3}}).build()
    # the same first reports; one stays near 6, the other climbs 3 a report
    assert [lasting.update({U: n}) for n in (6, 6, 7)] == [None, None, None]  # needs 4 reports
    assert lasting.update({U: 7}) == f"{U}=7 < 20, improving 1 over 3 reports (< 2) for 1 report"
    assert [lifting.update({U: n}) for n in (3, 6, 9, 12, 15, 18)] == [None] * 6


def test_fell_from_best_fires_on_a_relative_fall():
    rule = Rule.from_yaml({"metric": U, "fell_from_best": 0.5, "patience": 2}).build()
    assert [rule.update({U: n}) for n in (30, 40, 25, 21)] == [None] * 4  # 21 > 20: not yet half of 40
    assert rule.update({U: 18}) is None  # 18 <= 20 once
    assert rule.update({U: 12}) == f"{U}=12 fell 70% from its best 40 for 2 reports"


def test_condition_yaml_round_trips_and_rejects_what_is_wrong():
    raw = {"metric": U, "below": 20.0, "unless_improving": {"by": 2.0, "over": 3}, "patience": 2, "grace": 1}
    assert Rule.from_yaml(raw).to_yaml() == raw
    with pytest.raises(SpecError, match="exactly one of below, above, fell_from_best, got below, above"):
        Rule.from_yaml({"metric": U, "below": 1, "above": 2})
    with pytest.raises(SpecError, match="unless_improving: applies to below or above, not fell_from_best"):
        Rule.from_yaml({"metric": U, "fell_from_best": 0.5, "unless_improving": {"by": 1, "over": 2}})
    with pytest.raises(SpecError, match=r"unless_improving.over: over must be >= 1"):
        Rule.from_yaml({"metric": U, "below": 1, "unless_improving": {"by": 1, "over": 0}})
    with pytest.raises(SpecError, match=r"fell_from_best: .* in \(0, 1\), got 1.5"):
        Rule.from_yaml({"metric": U, "fell_from_best": 1.5})


def test_rule_read_never_fails_and_keeps_what_it_cannot_parse_as_unknown():
    raw = {"metric": U, "below": 20, "unless_improving": {"by": 1, "over": 3}, "patience": 2}
    assert Rule.read(raw) == Rule.from_yaml(raw)
    assert Rule.read(raw).text() == f"{U} < 20 unless improving by 1 over 3 reports"
    newer = Rule.read({"all": [{"metric": "a", "above": 0.9}, {"metric": "b", "trend": -1}], "patience": 3})
    assert not newer.known and (newer.patience, newer.all) == (3, True)
    assert newer.conditions[0] == Above("a", 0.9) and newer.text() == "a > 0.9 and b (unknown rule kind: trend)"
    assert newer.conditions[1].to_yaml() == {"metric": "b", "trend": -1}  # kept as written
    assert not newer.conditions[1].holds([1.0, 2.0]) and newer.conditions[1].margin([1.0]) == -math.inf
    odd = Rule.read({"metric": U, "below": 1, "patience": 0})  # counts it cannot read take their defaults
    assert odd.known and odd.patience == 1
    assert Rule.read("not a rule").text() == "(unknown rule kind: not a rule)"


def test_earliest_report_counts_grace_patience_and_the_reports_a_condition_needs():
    assert Rule((Below(U, 20),), patience=2, grace=3).earliest_report == 5
    assert Rule.from_yaml({"metric": U, "below": 20, "unless_improving": {"by": 1, "over": 3},
                           "patience": 2, "grace": 1}).earliest_report == 1 + 4 + 1


def test_monitor_is_inconclusive_until_every_rule_could_have_fired():
    monitor = CollapseMonitor([Rule((Below(U, 20),), patience=2, grace=1)])
    assert monitor.update(_tokens(100)).status == INCONCLUSIVE  # grace
    verdict = monitor.update(_tokens(100))
    assert verdict.status == INCONCLUSIVE and "can judge from report 3" in verdict.reason
    assert monitor.update(_tokens(100)).status == HEALTHY
    verdict = monitor.update(_tokens(3))  # a condition holds: not healthy, not yet collapsed
    assert (verdict.status, verdict.reason) == (INCONCLUSIVE, f"{U}=3 < 20 for 1 of 2 reports")
    assert monitor.update(_tokens(30)).status == HEALTHY  # the dip passed


def test_monitor_without_rules_is_healthy():
    assert CollapseMonitor([]).update(_tokens(1)).status == HEALTHY


def test_monitor_any_rule_marks_collapsed_and_stays_collapsed():
    monitor = CollapseMonitor([Rule((Below(U, 20),))])
    assert monitor.update(_tokens(100)).status == HEALTHY
    verdict = monitor.update(_tokens(3))
    assert (verdict.status, verdict.iteration) == (COLLAPSED, 2)
    assert verdict.reason == f"{U}=3 < 20 for 1 report"
    assert monitor.update(_tokens(100)).status == COLLAPSED  # sticky


def test_monitor_margin_is_how_far_past_the_nearest_rule():
    monitor = CollapseMonitor([Rule((Below(U, 20),), patience=5), Rule((Above("x", 0.5),), patience=5)])
    monitor.update({**_tokens(10), "x": 0.25})
    assert monitor.margin() == pytest.approx(0.5)  # 10 is 50% under 20; x is 50% under its bound
    monitor.update({**_tokens(30), "x": 0.25})
    assert monitor.margin() == pytest.approx(-0.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_monitor_non_finite_loss_means_diverged(bad):
    monitor = CollapseMonitor([Rule((Below(U, 20),))])
    verdict = monitor.update(_tokens(100, loss=bad))
    assert verdict.status == DIVERGED and "val/loss" in verdict.reason
    assert monitor.margin() == math.inf


def test_monitor_metric_never_reported_is_an_error_on_first_report():
    monitor = CollapseMonitor([Rule((Below("collapse/typo", 20),))])
    with pytest.raises(KeyError, match="collapse/typo.*it reported"):
        monitor.update(_tokens(100))


def test_monitor_state_round_trip_keeps_patience_counters_and_history():
    def make():
        return CollapseMonitor([Rule.from_yaml({"metric": U, "below": 20, "patience": 2, "grace": 1,
                                                "unless_improving": {"by": 5, "over": 2}})])

    first = make()
    for n in (1, 5, 5, 6):
        first.update(_tokens(n))
    restored = make()
    restored.load_state_dict(pickle.loads(pickle.dumps(first.state_dict())))
    # One more stalled report completes the patience of 2 in both: counters and history came back.
    assert first.update(_tokens(6)) == restored.update(_tokens(6))
    assert restored.verdict.status == COLLAPSED


def test_monitor_load_rejects_state_of_another_sweep():
    one = CollapseMonitor([Rule((Below(U, 20),))])
    two = CollapseMonitor([Rule((Below(U, 20),)), Rule((Above(U, 1e6),))])
    with pytest.raises(ValueError, match="1 rules, the sweep has 2"):
        two.load_state_dict(one.state_dict())


def test_monitor_pickles_mid_stream():
    monitor = CollapseMonitor([Rule((Below(U, 20),), patience=2)])
    monitor.update(_tokens(3))
    clone = pickle.loads(pickle.dumps(monitor))
    assert clone.update(_tokens(3)).status == COLLAPSED
