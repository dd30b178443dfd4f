"""benchmarks/plain_vs.py's bookkeeping: the naive stopper, why a trial ended, a sweep's
numbers and the issue's goals; and one real run of a tiny sweep (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.plain_vs import check_thresholds, goals, kept_records, main, naive_stopper, stopped_by, sweep_record, table
from collapsetune.spec import load_sweep

ROOT = Path(__file__).parents[2]
# cos above 0.9 / share above 0.95, grace 4 (the naive stopper keeps its own patience 2), and a waiting rule
SPEC = load_sweep(ROOT / "sweeps" / "mop_clip.yaml")


def _reports(cos: list[float], acc: float = 0.9, status: str = "healthy") -> list[dict]:
    out = [{"collapse/subprompt_cos_max": c, "collapse/assign_max_share": 0.5, "val/accuracy": acc,
            "time/cpu_s": 0.5, "collapse.status": "healthy"} for c in cos]
    out[-1]["collapse.status"] = status
    return out


def _feed(stop, cos: list[float]) -> list[bool]:
    return [stop("t", {**r, "training_iteration": i}) for i, r in enumerate(_reports(cos), 1)]


def test_naive_stopper_waits_for_grace_then_two_reports_in_a_row():
    stop = naive_stopper(SPEC.collapse)
    assert _feed(stop, [0.99] * 6) == [False] * 5 + [True]  # reports 5 and 6 are the first after grace 4
    assert not any(_feed(naive_stopper(SPEC.collapse), [0.99] * 4 + [0.95, 0.5, 0.95, 0.5]))  # never 2 in a row
    share = naive_stopper(SPEC.collapse)
    flags = [share("t", {"collapse/subprompt_cos_max": 0.5, "collapse/assign_max_share": 0.99,
                         "training_iteration": i}) for i in range(1, 7)]
    assert flags == [False] * 5 + [True]  # either rule stops it


def test_naive_stopper_applies_the_fixed_thresholds_and_leaves_the_waiting_rule_out():
    # sweeps/mop_clip.yaml's third rule waits for the cosine to stop falling (unless_improving,
    # grace 2): a five-line stopper keeps no history, so a flat 0.96 stops on reports 5 and 6
    # by the 0.9 threshold's grace 4, not on reports 3 and 4 by the waiting rule's grace 2.
    assert any(r.conditions[0].KIND == "unless_improving" for r in SPEC.collapse)
    assert _feed(naive_stopper(SPEC.collapse), [0.96] * 8) == [False] * 5 + [True] * 3


def test_a_sweep_with_no_fixed_threshold_is_refused_for_the_plain_side():
    waiting_only = load_sweep(ROOT / "sweeps" / "mop_clip.yaml", [
        "collapse=[{metric: collapse/subprompt_cos_max, above: 0.95, unless_improving: {by: 0.005, over: 2}}]"])
    with pytest.raises(SystemExit, match="no rule of the file is one"):
        check_thresholds(waiting_only.collapse, "sweeps/mop_clip.yaml")
    check_thresholds(SPEC.collapse, "sweeps/mop_clip.yaml")  # two fixed thresholds beside the waiting rule


def test_naive_stopper_keeps_a_streak_per_trial():
    stop = naive_stopper(SPEC.collapse)
    bad = {"collapse/subprompt_cos_max": 0.99, "collapse/assign_max_share": 0.5, "training_iteration": 5}
    assert not stop("a", bad) and not stop("b", bad)
    assert stop("a", {**bad, "training_iteration": 6})


def test_stopped_by_tells_stopper_asha_and_end_apart():
    collapsing = [0.99] * 6
    assert stopped_by("plain", _reports(collapsing), SPEC.collapse, 12) == "stopper"
    assert stopped_by("plain", _reports([0.99] * 5 + [0.8]), SPEC.collapse, 12) == "asha"
    assert stopped_by("plain_reuse", _reports([0.8] * 12), SPEC.collapse, 12) == "end"
    # collapsetune says so itself: its status on the last report
    assert stopped_by("collapsetune", _reports(collapsing, status="collapsed"), SPEC.collapse, 12) == "stopper"
    assert stopped_by("collapsetune", _reports(collapsing), SPEC.collapse, 12) == "asha"


def test_sweep_record_counts_healthy_cuts_cpu_and_a_collapsed_pick():
    cut_healthy = {"reports": _reports([0.99] * 4 + [0.8, 0.8]), "end_cpu_s": 0.25}
    cut_recovering = {"reports": _reports([0.99] * 5 + [0.8])}  # healthy: the conditions fail on its last report
    full = {"reports": _reports([0.8] * 12, acc=0.95)}
    stopped = {"reports": _reports([0.99] * 6, acc=0.97)}  # plain's get_best_result may pick it: scope last
    trials = [cut_healthy, cut_recovering, full, stopped]
    rec = sweep_record("plain", 3, 10.0, trials, stopped, SPEC)
    assert (rec["reports"], rec["cpu_s"], rec["end_cpu_s"]) == (30, 15.25, 0.25)
    assert (rec["stopped_by_stopper"], rec["asha_cuts"], rec["asha_cuts_healthy"], rec["ran_to_end"]) == (1, 2, 2, 1)
    assert rec["picked_objective"] == 0.97 and rec["picked_collapsed"]
    assert rec["best_healthy_objective"] == 0.95  # the full trial, not the stopped one
    assert not sweep_record("plain", 3, 10.0, trials, cut_healthy, SPEC)["picked_collapsed"]


def _rec(variant: str, seed: int, cpu: float, reports: int, picked: float, collapsed: bool = False,
         best_healthy: float | None = None) -> dict:
    return {"variant": variant, "seed": seed, "wall_s": 1.0, "trials": 2, "reports": reports, "cpu_s": cpu,
            "end_cpu_s": 0.0, "stopped_by_stopper": 0, "asha_cuts": 0, "asha_cuts_healthy": 0, "ran_to_end": 2,
            "picked_objective": picked, "picked_collapsed": collapsed, "picked_reports": 12,
            "best_healthy_objective": picked if best_healthy is None else best_healthy}


def test_goals_are_medians_of_per_seed_ratios_and_counts():
    records = [_rec("collapsetune", 0, 20.0, 100, 0.97), _rec("plain_reuse", 0, 10.0, 100, 0.96),
               _rec("collapsetune", 1, 10.0, 50, 0.95, collapsed=True), _rec("plain_reuse", 1, 20.0, 100, 0.96),
               _rec("collapsetune", 2, 12.0, 100, 0.96), _rec("plain_reuse", 2, 10.0, 100, 0.96),
               _rec("plain", 2, 24.0, 100, 0.99)]
    g = goals(records, "max")
    assert g["seeds"] == [0, 1, 2]
    assert g["total_cpu_ratios"] == [2.0, 0.5, 1.2] and g["total_cpu_ratio"] == 1.2
    assert g["per_report_cpu_ratios"] == [2.0, 1.0, 1.2]
    assert g["picked_equal_or_better"] == 2 and g["collapsed_picks"] == 1
    assert goals(records, "min")["picked_equal_or_better"] == 2  # 0.95 <= 0.96, 0.96 <= 0.96
    vs_plain = goals(records, "max", against="plain")
    assert vs_plain["seeds"] == [2] and vs_plain["total_cpu_ratio"] == 0.5 and vs_plain["picked_equal_or_better"] == 0
    assert goals([_rec("plain", 0, 1.0, 1, 0.5)], "max") == {}


def test_goals_hold_the_pick_against_the_other_sides_best_healthy_trial_too():
    # Plain Ray Tune often picks a collapsed model with a higher accuracy; the issue asks about
    # the healthy objective, so the pick is also compared with plain's best trial that is not
    # collapsed (nan: it had none, which counts as no comparison won).
    records = [_rec("collapsetune", 0, 1.0, 10, 0.975), _rec("plain_reuse", 0, 1.0, 10, 0.98, True, 0.97),
               _rec("collapsetune", 1, 1.0, 10, 0.975), _rec("plain_reuse", 1, 1.0, 10, 0.99, True, 0.98),
               _rec("collapsetune", 2, 1.0, 10, 0.975), _rec("plain_reuse", 2, 1.0, 10, 0.99, True, float("nan"))]
    g = goals(records, "max")
    assert g["picked_equal_or_better"] == 0
    assert g["picked_equal_or_better_than_best_healthy"] == 1


def test_table_has_a_column_per_variant_and_per_seed_values():
    records = [_rec("plain_reuse", 1, 10.0, 100, 0.96), _rec("collapsetune", 1, 20.0, 100, 0.97),
               _rec("collapsetune", 0, 12.0, 100, 0.95, collapsed=True), _rec("plain_reuse", 0, 10.0, 100, 0.96)]
    text = table(records)
    assert text.splitlines()[0] == "| (s0/s1) | collapsetune | plain_reuse |"
    assert "| trial CPU-s | 12.0 / 20.0 | 10.0 / 10.0 |" in text
    assert "| picked trial collapsed | 1 of 2 | 0 of 2 |" in text


def test_resume_keeps_whole_seeds_of_the_same_sweep_and_refuses_another(tmp_path):
    out = tmp_path / "plain_vs.json"
    assert kept_records(out, "s.yaml", "abc", []) == []  # nothing written yet
    whole = [_rec(v, 0, 10.0, 100, 0.96) for v in ("collapsetune", "plain", "plain_reuse")]
    cut_short = [_rec("collapsetune", 1, 10.0, 100, 0.96)]  # the run stopped inside seed 1
    out.write_text(json.dumps({"sweep": "s.yaml", "sweep_sha": "abc", "overrides": [], "records": whole + cut_short}))
    assert kept_records(out, "s.yaml", "abc", []) == whole
    with pytest.raises(SystemExit, match="content abc"):  # the sweep file changed since
        kept_records(out, "s.yaml", "def", [])
    with pytest.raises(SystemExit, match="overrides"):
        kept_records(out, "s.yaml", "abc", ["max_iterations=2"])


@pytest.mark.slow
def test_one_seed_of_a_tiny_sweep_runs_all_three_variants(tmp_path):
    out = tmp_path / "plain_vs.json"
    summary = main(["--sweep", str(ROOT / "sweeps" / "smoke.yaml"), "--seeds", "0", "--out", str(out)])
    assert json.loads(out.read_text())["seeds"] == [0]
    records = {r["variant"]: r for r in summary["records"]}
    assert set(records) == {"collapsetune", "plain", "plain_reuse"}
    for r in records.values():
        assert r["trials"] == 2 and r["reports"] >= 2 and r["cpu_s"] > 0
        assert r["stopped_by_stopper"] + r["asha_cuts"] + r["ran_to_end"] == 2
    # Run again with --resume: seed 0 is whole in the file, so nothing runs and nothing is lost.
    again = main(["--sweep", str(ROOT / "sweeps" / "smoke.yaml"), "--seeds", "0", "--out", str(out), "--resume"])
    assert again["records"] == summary["records"]
