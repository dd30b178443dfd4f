from __future__ import annotations

import math
import pickle

import pytest

from collapsetune.collapse import (
    COLLAPSED,
    DIVERGED,
    HEALTHY,
    CollapseMonitor,
    CollapseRule,
    Threshold,
)

U = "collapse/unique_tokens"


def _tokens(n: float, loss: float = 2.0) -> dict[str, float]:
    return {U: n, "val/loss": loss, "train/loss": loss}


def test_threshold_below_and_above():
    assert Threshold(U, below=20).holds({U: 19})
    assert not Threshold(U, below=20).holds({U: 20})
    assert Threshold(U, above=0.9).holds({U: 0.95})
    assert not Threshold(U, above=0.9).holds({U: 0.9})


def test_threshold_nan_is_no_evidence():
    assert not Threshold(U, below=20).holds({U: math.nan})


@pytest.mark.parametrize("below,above", [(None, None), (1.0, 2.0)])
def test_threshold_needs_exactly_one_bound(below, above):
    with pytest.raises(ValueError, match="exactly one of below/above"):
        Threshold(U, below=below, above=above)


@pytest.mark.parametrize("kw,message", [({"patience": 0}, "patience must be >= 1, got 0"),
                                        ({"grace": -1}, "grace must be >= 0, got -1")])
def test_rule_rejects_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        CollapseRule([Threshold(U, below=20)], **kw)


def test_rule_fires_after_patience_consecutive_reports():
    rule = CollapseRule([Threshold(U, below=20)], patience=3)
    assert rule.update({U: 5}) is None
    assert rule.update({U: 5}) is None
    assert rule.update({U: 4}) == f"{U}=4 < 20 for 3 reports"


def test_rule_dip_that_recovers_before_patience_is_forgiven():
    rule = CollapseRule([Threshold(U, below=20)], patience=2)
    assert rule.update({U: 5}) is None
    assert rule.update({U: 50}) is None  # recovered: the streak starts over
    assert rule.update({U: 5}) is None
    assert rule.update({U: 6}) is not None


def test_rule_grace_ignores_first_reports():
    rule = CollapseRule([Threshold(U, below=20)], patience=1, grace=2)
    assert rule.update({U: 1}) is None
    assert rule.update({U: 1}) is None
    assert rule.update({U: 1}) is not None


def test_group_fires_only_when_all_conditions_hold_together():
    group = CollapseRule(
        [Threshold("collapse/subprompt_cos_max", above=0.9), Threshold("collapse/assign_max_share", above=0.9)]
    )
    assert group.update({"collapse/subprompt_cos_max": 0.95, "collapse/assign_max_share": 0.4}) is None
    reason = group.update({"collapse/subprompt_cos_max": 0.95, "collapse/assign_max_share": 0.97})
    assert reason == (
        "collapse/subprompt_cos_max=0.95 > 0.9 and collapse/assign_max_share=0.97 > 0.9 for 1 report"
    )


def test_monitor_any_rule_marks_collapsed_and_stays_collapsed():
    monitor = CollapseMonitor([CollapseRule([Threshold(U, below=20)], patience=1)])
    assert monitor.update(_tokens(100)).status == HEALTHY
    verdict = monitor.update(_tokens(3))
    assert (verdict.status, verdict.iteration) == (COLLAPSED, 2)
    assert verdict.reason == f"{U}=3 < 20 for 1 report"
    assert monitor.update(_tokens(100)).status == COLLAPSED  # sticky


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_monitor_non_finite_loss_means_diverged(bad):
    monitor = CollapseMonitor([CollapseRule([Threshold(U, below=20)])])
    verdict = monitor.update(_tokens(100, loss=bad))
    assert verdict.status == DIVERGED
    assert "val/loss" in verdict.reason


def test_monitor_metric_never_reported_is_an_error_on_first_report():
    monitor = CollapseMonitor([CollapseRule([Threshold("collapse/typo", below=20)])])
    with pytest.raises(KeyError, match="collapse/typo.*it reported"):
        monitor.update(_tokens(100))


def test_monitor_state_round_trip_keeps_patience_counters():
    def make():
        return CollapseMonitor([CollapseRule([Threshold(U, below=20)], patience=3, grace=1)])

    first = make()
    for n in (1, 5, 5):
        first.update(_tokens(n))
    restored = make()
    restored.load_state_dict(pickle.loads(pickle.dumps(first.state_dict())))
    # One more low report completes the patience of 3 in both: the counters came back.
    assert first.update(_tokens(5)) == restored.update(_tokens(5))
    assert restored.verdict.status == COLLAPSED


def test_monitor_load_rejects_state_of_another_sweep():
    one = CollapseMonitor([CollapseRule([Threshold(U, below=20)])])
    two = CollapseMonitor([CollapseRule([Threshold(U, below=20)]), CollapseRule([Threshold(U, above=1e6)])])
    with pytest.raises(ValueError, match="1 rules, the sweep has 2"):
        two.load_state_dict(one.state_dict())


def test_monitor_pickles_mid_stream():
    monitor = CollapseMonitor([CollapseRule([Threshold(U, below=20)], patience=2)])
    monitor.update(_tokens(3))
    clone = pickle.loads(pickle.dumps(monitor))
    assert clone.update(_tokens(3)).status == COLLAPSED
