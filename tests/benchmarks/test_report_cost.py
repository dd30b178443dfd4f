"""benchmarks/report_cost.py's bookkeeping, on hand-made trials."""

from __future__ import annotations

import pytest

from benchmarks.report_cost import Meter, artifact_costs, per_report, summarise


def _trial(side: str, case: str, reports: list[float], end: float = 0.0, artifacts: dict | None = None) -> dict:
    return {"side": side, "case": case, "report_cpu_s": reports, "end_cpu_s": end, "artifacts": artifacts or {}}


def test_per_report_counts_the_checkpoint_a_trial_ends_with():
    # With draw_cut_trials a cut trial draws its pictures in the checkpoint after its last report: in no report's
    # time/cpu_s, but the trial's cost all the same.
    assert per_report(_trial("collapsetune", "cut", [0.1, 0.1, 0.1, 0.1], end=0.2)) == pytest.approx(0.15)


def test_per_report_counts_building_the_trial_on_either_side():
    # A function trainable builds its wrapper in its first report, a class trainable in setup().
    assert per_report({**_trial("collapsetune", "full", [0.1, 0.1]), "setup_cpu_s": 0.2}) == pytest.approx(0.2)


def test_summarise_weighs_trials_by_their_reports_and_compares_with_plain():
    trials = [
        _trial("plain", "full", [0.1] * 12), _trial("plain", "cut", [0.1] * 6),
        _trial("collapsetune", "full", [0.1] * 12, end=0.6), _trial("collapsetune", "cut", [0.1] * 6, end=0.6),
    ]
    out = summarise(trials)
    assert out["collapsetune"]["full"] == pytest.approx(0.15) and out["collapsetune"]["cut"] == pytest.approx(0.2)
    assert out["collapsetune"]["all"] == pytest.approx((1.2 + 0.6 + 0.6 + 0.6) / 18)  # not the mean of 0.15 and 0.2
    assert out["collapsetune"]["ratio_to_plain"]["all"] == pytest.approx(((1.2 + 0.6 + 0.6 + 0.6) / 18) / 0.1)
    assert out["plain"]["ratio_to_plain"] == {"full": 1.0, "cut": 1.0, "all": 1.0}


def test_artifact_costs_are_per_trial_and_per_call():
    trials = [_trial("x", "full", [0.1], artifacts={"picture: a": [0.2, 0.4, 0.3]}),
              _trial("x", "cut", [0.1], artifacts={"picture: a": [0.1], "checkpoint write": [0.01]})]
    costs = artifact_costs(trials)
    assert costs["picture: a"] == {"calls_per_trial": 2.0, "median_cpu_s": 0.25}
    assert costs["checkpoint write"] == {"calls_per_trial": 0.5, "median_cpu_s": 0.01}


def test_meter_times_each_call_of_a_wrapped_function_and_hands_them_over_once():
    class Owner:
        @staticmethod
        def draw(n: int) -> int:
            return sum(range(n))

    meter = Meter()
    meter.wrap(Owner, "draw", "picture: draw")
    assert Owner.draw(10) == 45 and Owner.draw(3) == 3
    taken = meter.take()
    assert list(taken) == ["picture: draw"] and len(taken["picture: draw"]) == 2
    assert all(t >= 0.0 for t in taken["picture: draw"]) and meter.take() == {}
