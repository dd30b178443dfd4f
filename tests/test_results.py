"""Reading a results folder with JSON/YAML only: the fixture is a real sweep's files
(tests/fixtures/atlas_sweep, made by make_fixture.py with Ray 2.60)."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collapsetune.collapse import COLLAPSING, UNJUDGED, Above, FellFromBest, Unknown
from collapsetune.results import (
    ResultsError,
    SweepInfo,
    TrialResult,
    judge,
    list_launches,
    parse_sweep,
    read_results,
)

FIXTURE = Path(__file__).parent / "fixtures" / "atlas_sweep" / "results"


@pytest.fixture
def results(tmp_path) -> Path:
    """A writable copy of the fixture, as a launch inside a storage folder."""
    launch = tmp_path / "storage" / "knobs-20261123-221354"
    shutil.copytree(FIXTURE, launch)
    return launch


def test_read_results_every_trial_with_verdict_state_and_reports():
    sweep = read_results(str(FIXTURE))
    assert sweep.sweep.objective == "val/loss" and sweep.sweep.mode == "min"
    assert sorted(sweep.sweep.search_space) == ["decode", "label_smoothing", "lr", "seed"]
    assert sweep.sweep.search_space["lr"].log and sweep.sweep.search_space["decode"].categorical
    assert not sweep.sweep.search_space["seed"].categorical  # numbers: ordered
    assert sweep.counts() == {"diverged": 1, "healthy": 8, "error": 2, "collapsed": 3}
    assert len(sweep.trials) == 14 and not sweep.notes
    collapsed = [t for t in sweep.trials if t.outcome == "collapsed"]
    assert all(t.state == "finished" and t.collapse_iteration == t.iterations for t in collapsed)
    assert any("top1_share" in t.reason for t in collapsed)  # the `all:` group fired too
    errored = [t for t in sweep.trials if t.outcome == "error"]
    assert all(t.error.startswith("RuntimeError: loss scale underflow") for t in errored)
    healthy = [t for t in sweep.trials if t.outcome == "healthy"]
    assert all(t.iterations == 8 and [r["training_iteration"] for r in t.reports] == list(range(1, 9))
               for t in healthy)
    assert "max_iterations" not in healthy[0].config and set(healthy[0].config) >= {"lr", "decode"}
    best = sweep.best()
    assert best.outcome == "healthy"
    assert best.value("val/loss") == min(t.value("val/loss") for t in healthy)
    steps, values = best.series("collapse/unique_tokens")
    assert steps == list(range(1, 9)) and all(v > 15 for v in values)


def test_read_results_imports_no_ray_torch_or_mlflow():
    code = ("import sys, collapsetune.results as r; "
            f"r.read_results({str(FIXTURE)!r}); "
            "print(sorted(m for m in ('ray', 'torch', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_truncated_last_report_is_skipped_and_said(results):
    trial = next(p for p in results.iterdir() if p.name.startswith("Knobs_2fccd_00001"))
    text = (trial / "result.json").read_text()
    (trial / "result.json").write_text(text[: len(text) - 40])  # cut mid-line, as a killed writer does
    sweep = read_results(str(results))
    row = next(t for t in sweep.trials if t.trial_id == "2fccd_00001")
    assert row.iterations == 7
    assert any("not whole JSON" in n for n in sweep.notes)


def test_unreadable_experiment_state_falls_back_to_trial_folders(results):
    (state,) = results.glob("experiment_state-*.json")
    state.write_text(state.read_text()[:5000])  # truncated, as a full disk leaves it
    sweep = read_results(str(results))
    assert len(sweep.trials) == 14
    assert {t.outcome for t in sweep.trials} == {"healthy", "collapsed", "diverged", "error"}
    assert any("unreadable" in n for n in sweep.notes)


def test_older_snapshot_used_when_newest_is_truncated(results):
    (state,) = results.glob("experiment_state-*.json")
    shutil.copy(state, results / "experiment_state-2099-01-01_00-00-00.json")
    (results / "experiment_state-2099-01-01_00-00-00.json").write_text("{\"trial_data\": [")
    sweep = read_results(str(results))
    assert len(sweep.trials) == 14 and any(state.name in n for n in sweep.notes)


def test_pickles_in_a_results_folder_are_never_loaded(results, tmp_path):
    # A tampered folder: a pickle that would write a file when loaded, where Ray keeps its own.
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for name in ("tuner.pkl", "trainable.pkl"):
        (results / name).write_bytes(pickle.dumps(Payload()))
    for trial in results.iterdir():
        if trial.is_dir():
            (trial / "params.pkl").write_bytes(pickle.dumps(Payload()))
    read_results(str(results))
    assert not marker.exists()


def test_missing_folder_and_storage_root_say_what_they_are(results, tmp_path):
    with pytest.raises(ResultsError, match="no such results folder"):
        read_results(str(tmp_path / "nope"))
    with pytest.raises(ResultsError, match="holding 1 launches") as err:
        read_results(str(results.parent))
    assert str(results) in str(err.value)
    assert list_launches(str(results.parent)) == [str(results)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no sweep.yaml here"):
        read_results(str(tmp_path / "empty"))


def test_results_read_through_a_file_uri(results):
    sweep = read_results(f"file://{results}")
    assert len(sweep.trials) == 14 and sweep.path == f"file://{results}"


def test_parse_sweep_reads_rules_through_collapse_and_keeps_newer_kinds_as_unknown():
    sweep = parse_sweep(
        """
        name: x
        objective: {metric: val/loss, mode: max}
        search_space: {lr: {loguniform: [1.0e-4, 1.0e-1]}, width: 64, act: {choice: [relu, gelu]}, n: {int: [1, 4]},
                       z: {sobol: [1, 2]}}
        collapse:
          - {metric: collapse/entropy, below: 1.5, patience: 3, grace: 2}
          - {metric: collapse/distinct_2, fell_from_best: 0.5}
          - all: [{metric: a, above: 0.9}, {metric: b, above: 0.9}, {trend: c}]   # a kind added later
            patience: 1
          - not a rule
        """
    )
    assert sweep.mode == "max" and sweep.config == {"width": 64}
    assert list(sweep.search_space) == ["lr", "act", "n", "z"]
    assert sweep.search_space["n"].kind == "randint" and sweep.search_space["z"].kind == "sobol"  # kept as written
    assert [r.text() for r in sweep.rules] == [
        "collapse/entropy < 1.5", "collapse/distinct_2 fell 50% from its best",
        "a > 0.9 and b > 0.9 and (unknown rule kind: trend)", "(unknown rule kind: not a rule)"]
    assert sweep.rules[1].conditions == (FellFromBest("collapse/distinct_2", 0.5),)
    assert sweep.rules[2].conditions[0] == Above("a", 0.9) and isinstance(sweep.rules[2].conditions[2], Unknown)
    assert [r.known for r in sweep.rules] == [True, True, False, False]
    assert sweep.collapse_metrics == ["collapse/entropy", "collapse/distinct_2", "a", "b"]
    assert sweep.horizon == 5  # grace 2 + patience 3
    with pytest.raises(ResultsError, match="objective"):
        parse_sweep("name: x\n")


def _trial(reports: list[dict], state: str = "finished") -> TrialResult:
    last = reports[-1] if reports else {}
    return TrialResult("t", "/t", {}, reports, state, verdict=last.get("collapse.status", ""))


def _unique_tokens_sweep(max_iterations: int, scheduler: str | None = None) -> SweepInfo:
    """A sweep under `scheduler` (the file's default without one) with one rule: unique
    tokens below 20 for 2 reports after a grace of 1."""
    return parse_sweep(json.dumps({
        "objective": {"metric": "val/loss", "mode": "min"}, "max_iterations": max_iterations,
        **({"scheduler": {"type": scheduler}} if scheduler else {}),
        "collapse": [{"metric": "collapse/unique_tokens", "below": 20, "patience": 2, "grace": 1}],
    }))


def test_judge_never_says_a_scheduler_that_cuts_no_trial_cut_one():
    for kind in ("fifo", "pbt"):
        sweep = _unique_tokens_sweep(12, kind)
        ok = {"collapse.status": "healthy", "collapse/unique_tokens": 50}
        maybe = {"collapse.status": "inconclusive", "collapse/unique_tokens": 50}
        reports = lambda *rs: [{**r, "training_iteration": i + 1} for i, r in enumerate(rs)]  # noqa: E731
        stopped = _trial(reports(ok, ok))  # what a full disk left (issue 22): 2 of 12 reports
        assert judge(stopped, sweep) == ("inconclusive", f"interrupted at report 2 of 12 (not cut: the {kind} "
                                                         f"scheduler cuts no trial)")
        stopped.num_failures = 1
        assert judge(stopped, sweep)[1].startswith("failed (1 time(s)) and stopped at report 2 of 12")
        assert "cut by" not in judge(_trial(reports(ok, ok, ok, ok, maybe)), sweep)[1]
        assert judge(_trial(reports(*[ok] * 12)), sweep) == ("healthy", "")


def test_judge_names_trials_the_scheduler_cut_before_a_verdict():
    sweep = _unique_tokens_sweep(10)
    ok = {"collapse.status": "healthy", "collapse/unique_tokens": 50}
    low = {"collapse.status": "healthy", "collapse/unique_tokens": 4}
    reports = lambda *rs: [{**r, "training_iteration": i + 1} for i, r in enumerate(rs)]  # noqa: E731
    assert judge(_trial(reports(ok, ok, ok, ok, low)), sweep)[0] == COLLAPSING  # ASHA cut it mid-collapse
    outcome, note = judge(_trial(reports(ok, ok)), sweep)
    assert outcome == UNJUDGED and "report 3" in note  # grace 1 + patience 2
    assert judge(_trial(reports(*[ok] * 5)), sweep) == ("healthy", "cut by the scheduler at report 5")
    assert judge(_trial(reports(*[ok] * 10)), sweep) == ("healthy", "")
    assert judge(_trial(reports(ok), state="running"), sweep)[0] == "running"
    assert judge(_trial(reports(ok), state="error"), sweep)[0] == "error"
    maybe = {"collapse.status": "inconclusive", "collapse/unique_tokens": 4}  # the trainable's own word
    assert judge(_trial(reports(ok, ok, maybe)), sweep) == (
        "inconclusive", "cut by the scheduler at report 3 while collapse/unique_tokens=4 < 20 for 1 of 2 reports")
    assert judge(_trial(reports(ok, maybe), state="running"), sweep)[0] == "running"
    gone = {"collapse.status": "collapsed"}
    assert judge(_trial(reports(ok, gone), state="running"), sweep)[0] == "collapsed"


def test_a_trial_that_ends_before_a_history_rule_could_fire_is_not_healthy():
    # Results written before the trainable said "inconclusive" call such a trial healthy. A
    # rule that needs a history (fell_from_best: a best first; unless_improving: `over`
    # reports) fires later than grace + patience, and unless_improving is no plain `below`.
    reports = lambda key, *values: [  # noqa: E731
        {"collapse.status": "healthy", key: v, "training_iteration": i + 1} for i, v in enumerate(values)]
    fell = parse_sweep(json.dumps({
        "objective": {"metric": "val/loss"}, "max_iterations": 10,
        "collapse": [{"metric": "d", "fell_from_best": 0.5, "patience": 1, "grace": 1}],  # fires from report 3
    }))
    assert judge(_trial(reports("d", 9, 8)), fell)[0] == UNJUDGED  # cut at report 2
    assert judge(_trial(reports("d", 9, 8, 8)), fell) == ("healthy", "cut by the scheduler at report 3")
    lifting = parse_sweep(json.dumps({
        "objective": {"metric": "val/loss"}, "max_iterations": 3,
        "collapse": [{"metric": "u", "below": 20, "unless_improving": {"by": 2, "over": 3}}],  # from report 4
    }))
    outcome, note = judge(_trial(reports("u", 30, 30, 30)), lifting)  # ran every report it had
    assert outcome == "inconclusive" and "report 4" in note
    lifting = parse_sweep(json.dumps({**lifting.raw, "max_iterations": 10}))
    # Below 20 on its last report but recovering: not collapsing.
    assert judge(_trial(reports("u", 5, 6, 8, 10, 12)), lifting) == ("healthy", "cut by the scheduler at report 5")
    assert judge(_trial(reports("u", 5, 6, 7, 7, 7)), lifting)[0] == COLLAPSING  # stalled under 20


def test_a_pbt_copy_is_read_as_the_trials_course_and_a_rescue_is_named(results):
    # Trial 00001 collapsed at its report 3, then PBT copied trial 00000's report 2 into it:
    # Ray appends reports 3.. again. The later course wins; the rescue is told.
    trial = next(p for p in results.iterdir() if p.name.startswith("Knobs_2fccd_00001"))
    lines = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()][:3]
    lines[2]["collapse.status"] = "collapsed"
    after = [{**lines[2], "training_iteration": t, "collapse.status": "healthy", "objective": 0.5} for t in (3, 4)]
    after[0].update({"pbt.donor": "2fccd_00000", "pbt/donor_report": 2})
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in [*lines, *after]))
    row = next(t for t in read_results(str(results)).trials if t.trial_id == "2fccd_00001")
    assert [r["training_iteration"] for r in row.reports] == [1, 2, 3, 4]
    assert row.reports[2]["objective"] == 0.5
    assert row.copies == ["rescued when collapsed at report 3: took trial 2fccd_00000's report 2"]


def test_the_trials_own_record_is_read_over_results_json_and_every_copy_counts(results):
    # Under PBT Ray's result.json lost reports (issue 22); the record collapsetune appends to
    # has them all. Trial 00001 was copied twice: at report 4 from 00000's report 5 (a plain
    # PBT round), then rescued when collapsed at its report 7 from 00000's report 3. The
    # second course re-reports 4 onward, overwriting the row of the first copy; both count.
    trial = next(p for p in results.iterdir() if p.name.startswith("Knobs_2fccd_00001"))
    first = json.loads((trial / "result.json").read_text().splitlines()[0])
    rows = [{**first, "training_iteration": t, "collapse.status": "healthy"} for t in (1, 2, 3, 4)]
    rows += [{**first, "training_iteration": 6, "collapse.status": "healthy", "pbt.donor": "2fccd_00000",
              "pbt/donor_report": 5}, {**first, "training_iteration": 7, "collapse.status": "collapsed"}]
    rows += [{**first, "training_iteration": t, "collapse.status": "healthy"} for t in (4, 5, 6, 7, 8)]
    rows[6].update({"pbt.donor": "2fccd_00000", "pbt/donor_report": 3})
    rows += [{**rows[6]}]  # a resumed driver restored the copied checkpoint: the same copy again
    (trial / "collapsetune_reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))  # lost the rest
    row = next(t for t in read_results(str(results)).trials if t.trial_id == "2fccd_00001")
    assert [r["training_iteration"] for r in row.reports] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert row.copies == ["took trial 2fccd_00000's report 5",
                          "rescued when collapsed at report 7: took trial 2fccd_00000's report 3"]


def test_judge_says_a_trial_the_breaker_stopped_was_stopped_with_the_sweep():
    for kind in ("fifo", "asha"):
        sweep = _unique_tokens_sweep(12, kind)
        ok = {"collapse.status": "healthy", "collapse/unique_tokens": 50}
        trial = _trial([{**ok, "training_iteration": i} for i in range(1, 6)])
        trial.stopped_with_sweep = True
        assert judge(trial, sweep) == ("healthy", "stopped with the sweep (stop_sweep_when) at report 5")
        early = _trial([{**ok, "training_iteration": 1}])
        early.stopped_with_sweep = True
        outcome, note = judge(early, sweep)
        assert outcome == UNJUDGED and note.startswith("stopped with the sweep (stop_sweep_when) at report 1, before")
        unstarted = _trial([])
        unstarted.stopped_with_sweep = True
        assert judge(unstarted, sweep) == (UNJUDGED, "stopped with the sweep (stop_sweep_when) before its first report")
        gone = _trial([{"collapse.status": "collapsed", "training_iteration": 3}])
        gone.stopped_with_sweep = True  # Tune stopped the trial that tripped it with the rest: its verdict stands
        assert judge(gone, sweep)[0] == "collapsed"


def test_read_results_reads_the_breakers_record(results):
    trial_id = read_results(str(results)).trials[0].trial_id
    (results / "sweep_stopped.json").write_text(json.dumps({"reason": "9 of 10 judged trials collapsed",
                                                            "trials": [trial_id]}))
    read = read_results(str(results))
    assert read.stopped == "9 of 10 judged trials collapsed"
    assert [t.trial_id for t in read.trials if t.stopped_with_sweep] == [trial_id]
    (results / "sweep_stopped.json").write_text("{not json")
    assert read_results(str(results)).stopped == ""
