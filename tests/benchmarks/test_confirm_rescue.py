"""The bookkeeping of benchmarks/confirm.py (one row per real sweep) and benchmarks/rescue.py's
`--resume` (which seeds it keeps)."""

from __future__ import annotations

import json

import pytest

from benchmarks.compare import Trial
from benchmarks.confirm import measure, table
from benchmarks.rescue import kept_rows


def _trial(statuses: list[str], acc: float, forecasts: list[float | None], reason: str = "") -> Trial:
    reports = [{"collapse.status": s, "val/accuracy": acc, "time/cpu_s": 1.0,
                **({"collapse.forecast": f} if f is not None else {})} for s, f in zip(statuses, forecasts)]
    if reason:
        reports[-1]["collapse.reason"] = reason
    return Trial("{}", reports)


def test_confirm_counts_forecast_stops_and_agreement_with_the_rules(tmp_path):
    trials = [
        _trial(["healthy", "healthy"], 0.9, [None, 0.1]),  # judged healthy by the rules, forecast said healthy
        _trial(["healthy", "collapsed"], 0.5, [0.2, 0.3], "collapse/x above 0.9"),  # rules: collapsed; forecast: no
        _trial(["collapsed"], 0.4, [0.95], "forecast: P(collapse)=0.950 > 0.800 at report 1"),  # the forecast stopped it
        _trial(["healthy"], 0.8, [None]),  # no forecast yet
        Trial("{}", []),  # stopped with the sweep before its first report
    ]
    (tmp_path / "sweep_stopped.json").write_text(json.dumps({"reason": "3 of 3 judged trials collapsed", "trials": []}))
    row = measure(trials, trials[0], tmp_path)
    assert row["trials"] == 5 and row["reports"] == 6 and row["cpu_s"] == 6.0
    assert row["ended"] == {"collapsed": 2, "healthy": 2, "no report": 1} and row["best_healthy"] == 0.9
    assert row["picked_collapsed"] is False
    assert row["forecast_stopped_at"] == [1]
    assert (row["forecast_judged_by_rules"], row["forecast_agreed"]) == (2, 1)
    assert row["sweep_stopped"]["reason"] == "3 of 3 judged trials collapsed"
    shown = table([{"pair": "forecast", "side": "with", "seed": 0, **row}])
    assert "| 1 (1) | 1 of 2 | 3 of 3 judged trials collapsed |" in shown


def test_rescue_resume_keeps_whole_seeds_of_the_same_sweep_and_other_sweeps_rows(tmp_path):
    out = tmp_path / "rescue.json"
    assert kept_rows(out, {"a": "k1"}, 2) == []
    rows = [{"sweep": "a", "sweep_key": "k1", "seed": 0, "side": "asha-kill"},
            {"sweep": "a", "sweep_key": "k1", "seed": 0, "side": "pbt-rescue"},
            {"sweep": "a", "sweep_key": "k1", "seed": 1, "side": "asha-kill"},  # its PBT side never ran
            {"sweep": "a", "sweep_key": "old", "seed": 2, "side": "asha-kill"},
            {"sweep": "a", "sweep_key": "old", "seed": 2, "side": "pbt-rescue"},  # an edited sweep file
            {"sweep": "b", "seed": 0, "side": "asha-kill"}]  # not run now: kept as it is
    out.write_text(json.dumps({"interval": 2, "rows": rows}))
    assert kept_rows(out, {"a": "k1"}, 2) == [rows[5], rows[0], rows[1]]
    with pytest.raises(SystemExit, match="--interval 2, not 3"):
        kept_rows(out, {"a": "k1"}, 3)
