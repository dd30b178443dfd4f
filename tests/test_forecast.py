"""CollapseForecaster on hand-made trajectories, and ForecastStopper, its Ray adapter."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from collapsetune.collapse import ForecastStopper
from collapsetune.forecast import FORECAST_KEY, CollapseForecaster

JUDGED_AT = 4  # the toy rules judge a trial on report 4 (e.g. grace 2, patience 2)


def trajectory(collapses: bool, rng: np.random.Generator, noise: float = 0.005) -> list[float]:
    """A sub-prompt cosine per report: every trial starts near 0.99; a collapsing one stays
    there, a recovering one falls by ~0.03 a report."""
    start = 0.99 + rng.normal(0, noise)
    step = 0.0 if collapses else -0.03
    return [start + step * k + rng.normal(0, noise) for k in range(6)]


def result(report: int, cos: float, status: str = "inconclusive", lr: float = 0.01) -> dict:
    return {"training_iteration": report, "collapse/cos": cos, "collapse/detected": 0,
            "collapse.status": status, "config": {"lr": lr, "name": "x"}}


def trained(n: int = 60, seed: int = 0, noise: float = 0.005, **kwargs) -> CollapseForecaster:
    """A forecaster that has seen `n` trials, alternately collapsing and recovering, judged by
    the rules: all their early reports first (no model yet, so none is stopped), then the
    verdicts."""
    rng = np.random.default_rng(seed)
    forecaster = CollapseForecaster(judged_at=JUDGED_AT, **kwargs)
    trials = [(f"j{i}", trajectory(i % 2 == 0, rng, noise), i % 2 == 0) for i in range(n)]
    for report in range(1, JUDGED_AT):
        for trial_id, cos, _ in trials:
            forecaster.observe(trial_id, result(report, cos[report - 1]))
    for trial_id, cos, collapses in trials:
        forecaster.observe(trial_id, result(JUDGED_AT, cos[JUDGED_AT - 1], "collapsed" if collapses else "healthy"))
    return forecaster


def test_forecast_stops_flat_trial_and_spares_falling_one():
    forecaster = trained()
    rng = np.random.default_rng(1)
    flat, falling = trajectory(True, rng), trajectory(False, rng)
    assert forecaster.observe("flat", result(1, flat[0])) is not None  # report 1: no slope yet
    stop = forecaster.observe("flat", result(2, flat[1]))
    assert stop is not None and stop.stop and stop.p > stop.threshold
    assert stop.reason.startswith("forecast: P(collapse)=")
    forecaster.observe("falling", result(1, falling[0]))
    spare = forecaster.observe("falling", result(2, falling[1]))
    assert spare is not None and not spare.stop and spare.p < 0.5


def young(forecaster: CollapseForecaster, trial_id: str, cos: float = 0.99, reports: int = 2):
    """A new trial's forecasts on its first `reports` reports."""
    return [forecaster.observe(trial_id, result(r, cos)) for r in range(1, reports + 1)]


def test_forecast_falls_back_to_rules_before_min_trials():
    assert young(trained(n=10, min_trials=20), "new") == [None, None]
    assert young(trained(n=20, min_trials=20, max_false_stop=0.2), "new")[-1].stop


def test_forecast_needs_enough_healthy_trials_for_its_quantile():
    # max_false_stop 0.05 needs 19 healthy trials: 30 judged (15 healthy) are too few.
    assert young(trained(n=30, min_trials=20, max_false_stop=0.05), "new") == [None, None]
    assert young(trained(n=30, min_trials=20, max_false_stop=0.2), "new")[-1].stop


def test_forecast_does_not_act_once_the_rules_judge():
    forecaster = trained()
    for report in range(1, JUDGED_AT):
        forecaster.observe("late", result(report, 0.5))  # healthy-looking: never stopped
    assert forecaster.observe("late", result(JUDGED_AT, 0.99)) is None


def test_forecast_stopped_trial_never_becomes_a_label():
    forecaster = trained()
    forecaster.observe("s", result(1, 0.99))
    assert forecaster.observe("s", result(2, 0.99)).stop
    forecaster.observe("s", result(3, 0.99, "collapsed"))  # a late result of a stopped trial
    assert "s" in forecaster.stopped and "s" not in forecaster._judged()


def test_forecast_keeps_false_stops_near_the_stated_rate_on_overlapping_classes():
    # Noise as large as a report's fall: the classes overlap, so calibration must hold back.
    forecaster = trained(n=160, seed=2, noise=0.03, max_false_stop=0.05)
    forecaster._maybe_refit()
    rng = np.random.default_rng(3)
    stopped = 0
    for i in range(200):
        cos = trajectory(False, rng, noise=0.03)
        decisions = [forecaster.observe(f"h{i}", result(r, cos[r - 1])) for r in range(1, JUDGED_AT)]
        stopped += any(d is not None and d.stop for d in decisions)
    assert stopped / 200 <= 0.08  # stated 0.05 per trial, over all three reports; 160 trials to calibrate


def test_forecast_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_false_stop must be in"):
        CollapseForecaster(judged_at=4, max_false_stop=0.0)
    with pytest.raises(ValueError, match=r"first_report must be in \[1, 3\], got 4"):
        CollapseForecaster(judged_at=4, first_report=4)


def test_forecast_stopper_marks_the_result_like_a_collapse():
    stopper = ForecastStopper(trained(), max_iterations=6, penalties={"objective": 1e9})
    assert not stopper("f", {**result(1, 0.99), "objective": 0.5})
    second = {**result(2, 0.99), "objective": 0.5}
    assert stopper("f", second)
    assert second["collapse.status"] == "collapsed" and second["collapse.reason"].startswith("forecast:")
    assert second["objective"] == 1e9 and second["collapse.iteration"] == 2 and second[FORECAST_KEY] > 0.5
    assert stopper.stopped["f"].startswith("collapsed: forecast:")
    healthy = result(2, 0.93)
    assert not stopper("g", result(1, 0.96)) and not stopper("g", healthy)
    assert healthy["collapse.status"] == "inconclusive" and healthy[FORECAST_KEY] < 0.5
    # The rules still stop on their own verdict, and max_iterations still ends a trial.
    assert stopper("r", result(5, 0.99, "collapsed"))
    assert stopper("m", result(6, 0.5, "healthy"))


def test_forecast_stopper_pickle_round_trip_keeps_models_and_state():
    stopper = ForecastStopper(trained(), max_iterations=6, penalties={"objective": 1e9})
    stopper("f", result(1, 0.99))
    stopper("f", result(2, 0.99))
    clone = pickle.loads(pickle.dumps(stopper))
    assert clone.stopped == stopper.stopped and clone.forecaster.stopped == {"f"}
    a, b = result(2, 0.99), result(2, 0.99)
    stopper("n", result(1, 0.99))
    clone("n", result(1, 0.99))
    assert stopper("n", a) and clone("n", b)
    assert a[FORECAST_KEY] == b[FORECAST_KEY]


def test_forecast_stops_count_for_the_sweep_breaker():
    from collapsetune.collapse._breaker import SweepBreaker

    stopper = ForecastStopper(trained(), max_iterations=6, penalties={"objective": 1e9},
                              breaker=SweepBreaker(0.5, after_trials=1, max_iterations=6))
    assert not stopper("f", result(1, 0.99)) and not stopper.stop_all()
    assert stopper("f", result(2, 0.99))  # the forecast stops it: marked collapsed, then counted
    assert stopper.stop_all() and stopper.breaker.verdicts == {"f": "collapsed"}
