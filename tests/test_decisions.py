"""The stopper's, the sweep breaker's and the schedulers' collapse-aware decisions
(collapsetune.decisions), tested without Ray: plain trial ids and result dicts, as Syne Tune
tests its schedulers."""

from __future__ import annotations

import math
import random
import subprocess
import sys

from collapsetune.decisions import (
    RANK,
    RESCUE,
    STOP,
    copyable,
    cut_at_tie,
    donor_order,
    final_verdict,
    healthy_quantiles,
    pbt_on_result,
    rungs_after,
    stop_verdict,
    stopping,
    toward,
    trip_reason,
    worth_copying,
)


def _result(status: str = "healthy", **more) -> dict:
    return {"collapse.status": status, **more}


def test_decisions_import_no_ray():
    code = "import sys, collapsetune.decisions; sys.exit(1 if 'ray' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_stopping_is_collapsed_or_diverged_only():
    assert stopping(_result("collapsed")) and stopping(_result("diverged"))
    assert not any(stopping(_result(s)) for s in ("healthy", "inconclusive", "")) and not stopping({})


def test_stop_verdict_stops_a_collapsed_trial_with_its_reason():
    stop = stop_verdict(_result("collapsed", **{"collapse.reason": "collapse/unique_tokens=3 < 20 for 2 reports"}),
                        max_iterations=20)
    assert stop is not None and stop.by_collapse
    assert stop.reason == "collapsed: collapse/unique_tokens=3 < 20 for 2 reports"


def test_stop_verdict_stops_at_max_iterations_not_by_collapse():
    stop = stop_verdict(_result("healthy", training_iteration=20), max_iterations=20)
    assert stop is not None and not stop.by_collapse
    assert stop_verdict(_result("healthy", training_iteration=19), max_iterations=20) is None
    assert stop_verdict(_result("inconclusive", training_iteration=5), max_iterations=None) is None


def test_stop_verdict_leaves_collapsed_trials_to_a_rescuing_scheduler():
    assert stop_verdict(_result("diverged"), max_iterations=20, stop_collapsed=False) is None


def test_trip_reason_waits_for_after_trials_then_needs_more_than_the_share():
    four = {"a": "collapsed", "b": "collapsed", "c": "collapsed", "d": "healthy"}
    assert trip_reason(four, 0.5, after_trials=5) is None  # too few judged yet
    assert trip_reason(four, 0.5, after_trials=4) == "3 of 4 judged trials collapsed (0.75 > 0.5)"
    assert trip_reason(four, 0.75, after_trials=4) is None  # "above": 0.75 is not above 0.75
    assert trip_reason({}, 0.5, after_trials=1) is None


def test_trip_reason_counts_diverged_as_judged_not_collapsed():
    verdicts = {"a": "collapsed", "b": "diverged", "c": "diverged"}
    assert trip_reason(verdicts, 0.5, after_trials=3) is None
    assert trip_reason({**verdicts, "b": "collapsed"}, 0.5, after_trials=3) is not None


def test_final_verdict_is_a_stopping_verdict_or_the_last_report():
    assert final_verdict({"collapse.status": "collapsed", "training_iteration": 2}, 10) == "collapsed"
    assert final_verdict({"collapse.status": "diverged"}, 10) == "diverged"
    assert final_verdict({"collapse.status": "healthy", "training_iteration": 9}, 10) is None
    assert final_verdict({"collapse.status": "healthy", "training_iteration": 10}, 10) == "healthy"
    assert final_verdict({"training_iteration": 10}, None) is None  # no horizon: only verdicts count


def test_rungs_after_a_collapse_drop_the_trial_from_every_rung():
    rungs = [(9, {"a": 0.2}), (3, {"a": 0.5, "b": 0.9}), (1, {"a": 0.1, "b": 0.4, "c": 0.3})]
    after = rungs_after(rungs, "a", _result("collapsed"))
    assert after == [(9, {}), (3, {"b": 0.9}), (1, {"b": 0.4, "c": 0.3})]
    assert rungs[1][1] == {"a": 0.5, "b": 0.9}  # a new list; the one given is left as it was


def test_a_value_tied_with_the_cutoff_is_cut_once_the_top_share_is_full():
    # Reduction factor 3: the top third of (earlier + this one) goes on. Four trials already hold
    # 0.97; a fifth 0.97 would be the fifth of six in a top share of two: cut.
    assert cut_at_tie([0.97, 0.97, 0.97, 0.97, 0.90], 0.97, 3)
    # One earlier trial at 0.97 (the cutoff is its value): a tie takes the second place of a
    # top share of one.
    assert cut_at_tie([0.97], 0.97, 3)
    # Reduction factor 2, earlier 0.90 0.97: the cutoff is their mean (0.935), no tie.
    assert not cut_at_tie([0.90, 0.97], 0.97, 2)


def test_values_off_the_cutoff_and_empty_rungs_are_left_to_ray():
    assert not cut_at_tie([0.95, 0.97, 0.99], 0.99, 3)  # above the cutoff: kept
    assert not cut_at_tie([0.95, 0.97, 0.99], 0.90, 3)  # below: Ray cuts it, not this rule
    assert not cut_at_tie([], 0.97, 3)  # the first trial at a rung
    assert not cut_at_tie([0.97, 0.97], math.nan, 3)
    assert not cut_at_tie([math.nan], 0.97, 3)  # NaNs are not recorded values


def test_the_tie_cutoff_is_numpys_percentile():
    import numpy as np

    rng = random.Random(3)
    for _ in range(300):
        earlier = [rng.choice([0.90, 0.93, 0.95, 0.97]) for _ in range(rng.randint(1, 12))]
        rf = rng.choice([2, 3, 4])
        cutoff = float(np.nanpercentile(earlier, (1 - 1 / rf) * 100))
        for value in {0.90, 0.93, 0.95, 0.97}:
            if value != cutoff:  # away from the cutoff the rule never cuts
                assert not cut_at_tie(earlier, value, rf)


def test_rungs_after_a_healthy_or_undecided_result_are_unchanged():
    rungs = [(3, {"a": 0.5}), (1, {"a": 0.1})]
    for status in ("healthy", "inconclusive"):
        assert rungs_after(rungs, "a", _result(status)) is rungs


def test_rung_cutoff_after_collapse_is_among_healthy_trials_only():
    # Three collapsed trials had the best values at the rung; once they are out, ASHA's
    # cutoff (its 1 - 1/rf quantile of what is recorded, higher is better) is among the healthy.
    rungs = [(2, {"x1": 9.0, "x2": 9.0, "x3": 9.0, "h1": 1.0, "h2": 2.0, "h3": 3.0})]
    for tid in ("x1", "x2", "x3"):
        rungs = rungs_after(rungs, tid, _result("collapsed"))
    assert sorted(rungs[0][1]) == ["h1", "h2", "h3"]


def test_pbt_on_result_ranks_healthy_and_rescues_or_stops_collapsed():
    full = _result("collapsed", training_iteration=4, objective=1.0)
    assert pbt_on_result(_result("healthy"), rescue=True, time_attr="training_iteration", metric="objective") == RANK
    assert pbt_on_result(full, rescue=True, time_attr="training_iteration", metric="objective") == RESCUE
    assert pbt_on_result(full, rescue=False, time_attr="training_iteration", metric="objective") == STOP
    missing = _result("diverged", training_iteration=4)  # no metric to score the trial by
    assert pbt_on_result(missing, rescue=True, time_attr="training_iteration", metric="objective") == STOP


def test_worth_copying_needs_settle_reports_left():
    assert worth_copying(7, max_t=10, settle=3) and not worth_copying(8, max_t=10, settle=3)
    assert worth_copying(100, max_t=math.inf, settle=5)


def test_copyable_refuses_a_donor_collapsed_now_or_in_its_checkpoint():
    assert copyable("healthy", "healthy") and copyable("inconclusive", None)
    assert not copyable("collapsed", "healthy") and not copyable("healthy", "diverged")


def test_healthy_quantiles_keep_only_healthy_trials_worth_copying_on_top():
    status = {"a": "healthy", "b": "collapsed", "c": "healthy", "d": "inconclusive"}
    lower, upper = healthy_quantiles(["x", "y"], ["a", "b", "c", "d"], status, worth=lambda tid: tid != "c")
    assert (lower, upper) == (["x", "y"], ["a"])
    assert healthy_quantiles(["x"], ["b", "d"], status, worth=lambda tid: True) == ([], [])


def test_donor_order_top_healthy_then_other_healthy_then_unjudged():
    scores = {"me": 9.0, "h1": 0.9, "h2": 0.8, "h3": 0.1, "h4": 0.2, "w1": 0.5, "w2": 0.95, "x": 5.0,
              "nan": math.nan, "none": None}
    status = {"me": "collapsed", "h1": "healthy", "h2": "healthy", "h3": "healthy", "h4": "healthy",
              "w1": "inconclusive", "x": "collapsed", "nan": "healthy", "none": "healthy"}
    order = donor_order("me", scores, status, fraction=0.5, shuffle=lambda xs: xs.reverse())
    # the top half of the healthy, at least 3 (h1, h2, h4), shuffled; then h3; then the unjudged
    # best first (w2 has no verdict yet); never itself, a collapsed one, or one without a score.
    assert order == ["h4", "h2", "h1", "h3", "w2", "w1"]


def test_donor_order_early_in_a_sweep_takes_the_best_unjudged():
    order = donor_order("me", {"a": 0.1, "b": 0.3}, {"a": "inconclusive"}, fraction=0.25)
    assert order == ["b", "a"]


def test_donor_order_shuffles_its_top_with_the_global_random_as_pbt_does():
    scores = {f"h{i}": float(i) for i in range(8)}
    status = dict.fromkeys(scores, "healthy")
    random.seed(3)
    first = donor_order("me", scores, status, fraction=0.5)
    random.seed(3)
    assert donor_order("me", scores, status, fraction=0.5) == first
    assert set(first[:4]) == {"h7", "h6", "h5", "h4"} and first[4:] == ["h3", "h2", "h1", "h0"]


def test_donor_order_draws_among_several_healthy_when_few_are_healthy():
    # 8 trials, 4 healthy, quantile 0.25: the top quarter of the healthy is one trial, so
    # every rescue of such a sweep copied the same donor. At least 3 healthy ones now share it.
    scores = {f"t{i}": float(i) for i in range(8)}
    status = {tid: ("healthy" if i % 2 else "inconclusive") for i, tid in enumerate(scores)}
    rng = random.Random(0)
    firsts = {donor_order("me", scores, status, fraction=0.25, shuffle=rng.shuffle)[0] for _ in range(40)}
    assert firsts == {"t7", "t5", "t3"}


def test_donor_order_with_fewer_healthy_than_the_minimum_draws_among_all_of_them():
    order = donor_order("me", {"a": 0.1, "b": 0.3}, {"a": "healthy", "b": "healthy"}, fraction=0.25,
                        shuffle=lambda xs: xs.reverse())
    assert order == ["a", "b"]


def test_toward_scales_a_number_by_the_extreme_factor_within_its_bounds():
    assert toward(0.1, "up", factors=(1.2, 0.8), bounds=(0.05, 1.0)) == 0.1 * 1.2
    assert toward(0.1, "down", factors=(1.2, 0.8, 0.5), bounds=(0.05, 1.0)) == 0.05
    assert toward(0.9, "up", factors=(1.2, 0.8), bounds=(0.05, 1.0)) == 1.0  # clipped
    assert toward(0.01, "down", factors=(1.2, 0.8), bounds=(0.05, 1.0)) == 0.05


def test_toward_moves_an_integer_at_least_one_step():
    assert toward(2, "up", factors=(1.2, 0.8), bounds=(1, 9)) == 3  # 2.4 would round back to 2
    assert toward(2, "down", factors=(1.2, 0.8), bounds=(1, 9)) == 1
    assert toward(9, "up", factors=(1.2, 0.8), bounds=(1, 9)) == 9


def test_toward_moves_a_choice_one_neighbour_along_its_list():
    weights = [0.0, 0.1, 1.0]
    assert toward(0.1, "up", factors=(1.2, 0.8), choices=weights) == 1.0
    assert toward(0.1, "down", factors=(1.2, 0.8), choices=weights) == 0.0
    assert toward(1.0, "up", factors=(1.2, 0.8), choices=weights) == 1.0  # the end of the list: stays
    assert toward("bpe", "down", factors=(1.2, 0.8), choices=["byte", "bpe"]) == "byte"
    assert toward(0.5, "up", factors=(1.2, 0.8), choices=weights) == 0.5  # not in the list: stays
