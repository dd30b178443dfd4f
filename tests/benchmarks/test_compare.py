"""The definitions benchmarks/compare.py measures with: onset, transient, oracle, outcome."""

from __future__ import annotations

import json

from pathlib import Path

from benchmarks.compare import Trial, could_fire, onset, oracle, outcome
from collapsetune.spec import load_sweep

ROOT = Path(__file__).parents[2]
SPEC = load_sweep(ROOT / "benchmarks" / "sweeps" / "bitnet_lm.yaml")  # below 8, grace 3, patience 2


def _trial(tokens: list[float], key: str = "k", status: str = "healthy") -> Trial:
    reports = [{"collapse/unique_tokens": n, "val/loss": 5.0 - i, "time/cpu_s": 1.0,
                "collapse.status": "healthy"} for i, n in enumerate(tokens)]
    reports[-1]["collapse.status"] = status
    return Trial(key, reports)


def test_onset_is_start_of_final_collapsed_run():
    assert onset(SPEC.collapse, _trial([3, 3, 20, 5, 4, 2]).reports) == 4
    assert onset(SPEC.collapse, _trial([3, 3, 3, 3]).reports) == 1  # collapsed from the start
    assert onset(SPEC.collapse, _trial([3, 3, 20, 20, 5]).reports) is None  # one report < patience 2
    assert onset(SPEC.collapse, _trial([3, 3, 20, 20]).reports) is None


def test_could_fire_respects_grace_and_patience():
    assert not could_fire(SPEC.collapse, _trial([1, 1, 1, 20, 20]).reports)  # only inside grace 3
    assert not could_fire(SPEC.collapse, _trial([20, 20, 20, 5, 20, 5]).reports)  # never 2 in a row
    assert could_fire(SPEC.collapse, _trial([20, 20, 20, 5, 5, 20]).reports)  # fires, then recovers


def test_oracle_stops_lasting_collapses_at_onset_only():
    trials = [_trial([20] * 10), _trial([20, 20, 5, 5, 5, 5]), _trial([20, 20, 20, 5, 5, 20])]
    assert oracle(trials, SPEC.collapse) == (10 + 3 + 6, 19.0)


def test_outcome_counts_latency_and_stopped_recoveries_against_fifo_twins():
    fifo = {"a": _trial([20, 20, 5, 5, 5, 5, 5, 5], "a"),  # lasting collapse from report 3
            "b": _trial([20, 20, 20, 5, 5, 20, 20, 20], "b"),  # recovers
            "c": _trial([20] * 8, "c")}
    stopped_a = _trial([20, 20, 5, 5, 5], "a", "collapsed")
    stopped_b = _trial([20, 20, 20, 5, 5], "b", "collapsed")
    out = outcome("collapsetune", 0, 1.0, [stopped_a, stopped_b, fifo["c"]], fifo["c"], fifo, SPEC)
    assert (out.iterations, out.cpu_s) == (18, 18.0)
    assert out.stopped_collapsed == 2 and out.reports_after_onset == [5 - 3] and out.stopped_recovering == 1
    assert out.same_as_fifo == 3 and not out.best_collapsed and out.best_at_end == {"collapse/unique_tokens": 20}

    picked_collapsed = outcome("fifo", 0, 1.0, list(fifo.values()), fifo["a"], fifo, SPEC)
    assert picked_collapsed.best_collapsed and picked_collapsed.stopped_collapsed == 0


def test_trial_reports_come_from_collapsetunes_record_where_ray_lost_some(tmp_path):
    # Under PBT Ray's result.json (metrics_dataframe) loses reports of a paused and resumed
    # trial; collapsetune's record keeps every one, a rescued trial's repeated iterations too.
    import types

    import pandas as pd

    from benchmarks.compare import trial_reports

    record = [{"training_iteration": i, "time/cpu_s": 0.5} for i in (1, 2, 3, 2, 3, 4)]
    (tmp_path / "collapsetune_reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in record))
    lossy = types.SimpleNamespace(path=str(tmp_path), metrics_dataframe=pd.DataFrame(record[:2]))
    assert trial_reports(lossy) == record
    bare = types.SimpleNamespace(path=str(tmp_path / "no-record"), metrics_dataframe=pd.DataFrame(record[:2]))
    assert trial_reports(bare) == record[:2]
    assert trial_reports(types.SimpleNamespace(path=str(tmp_path / "no-record"), metrics_dataframe=None)) == []
