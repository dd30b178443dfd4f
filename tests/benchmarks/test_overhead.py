"""benchmarks/overhead.py's split of a sweep's idle slot-time, on a hand-made timeline."""

from __future__ import annotations

import pytest

from benchmarks.overhead import timeline


def _report(trial: str, t0: float, t1: float) -> dict:
    return {"trial_id": trial, "bench/t0": t0, "bench/t1": t1}


def test_timeline_splits_idle_time_into_its_parts():
    # 2 slots, fit() from 0 to 10. Slot 1: trial a (1-2, 2.5-3.5), then c (4-5). Slot 2: b (2-8).
    reports = [_report("a", 1, 2), _report("a", 2.5, 3.5), _report("b", 2, 8), _report("c", 4, 5)]
    split = timeline(reports, fit_start=0.0, fit_end=10.0)
    assert split["idle_slot_s"] == pytest.approx(2 * 10 - (1 + 1 + 6 + 1))
    assert split["start_up_slot_s"] == pytest.approx(1 + 2)  # a and b start at 1 and 2
    assert split["between_reports_slot_s"] == pytest.approx(0.5) and split["between_reports_median_s"] == 0.5
    assert split["teardown_slot_s"] == pytest.approx((10 - 8) + (10 - 5))  # b and c end last
    assert split["between_trials_slot_s"] == pytest.approx(11 - 3 - 0.5 - 7)  # a ends 3.5, c starts 4
    assert split["between_trials_per_trial_s"] == pytest.approx(0.5)
