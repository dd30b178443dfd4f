from __future__ import annotations

import io
import pickle

from ray.tune.experiment import Trial

from collapsetune.progress import Progress


def _trial(trial_id: str, lr: float) -> Trial:
    return Trial("__fake", trial_id=trial_id, stub=True, config={"lr": lr, "max_iterations": 4})


def test_progress_says_a_few_lines_per_trial_and_where_the_sweep_stands():
    out = io.StringIO()
    progress = Progress("val/loss", ["collapse/unique_tokens", "collapse/unique_tokens"], ["lr"], 4,
                        interval=1e-9, out=out)
    progress.setup()
    bad, good, cut = _trial("bad", 0.2), _trial("good", 0.01), _trial("cut", 0.03)
    for trial in (bad, good, cut):
        progress.on_trial_start(0, [], trial)
    report = {"training_iteration": 1, "val/loss": 2.0, "collapse/unique_tokens": 50.0,
              "collapse.status": "inconclusive", "collapse.reason": "a rule can judge from report 2"}
    progress.on_trial_result(0, [], bad, report)
    progress.on_trial_result(0, [], bad, {**report, "training_iteration": 2, "collapse/unique_tokens": 3.0,
                                          "collapse.status": "collapsed",
                                          "collapse.reason": "collapse/unique_tokens=3 < 20 for 1 report"})
    progress.on_trial_result(0, [], bad, {**report, "training_iteration": 3, "collapse.status": "collapsed"})
    progress.on_trial_complete(0, [], bad)
    progress.on_trial_result(0, [], good, {**report, "training_iteration": 4, "collapse.status": "healthy"})
    progress.on_trial_complete(0, [], good)
    progress.on_trial_result(0, [], cut, report)
    cut.status = Trial.RUNNING
    progress.on_step_end(0, [bad, good, cut])
    progress.on_trial_complete(0, [], cut)
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines() if "] " in line]
    assert lines == [
        "trial bad started: lr=0.2",
        "trial good started: lr=0.01",
        "trial cut started: lr=0.03",
        "trial bad collapsed at report 2: collapse/unique_tokens=3 < 20 for 1 report",  # said once
        "trial good healthy after all 4 reports, val/loss=2",
        "2 of 3 trials done (1 collapsed, 1 healthy), 1 running",
        "trial cut inconclusive cut by the scheduler at report 1 (a rule can judge from report 2), val/loss=2",
    ]
    assert "  trial cut report 1: inconclusive, val/loss=2, unique_tokens=50" in out.getvalue()
    assert pickle.loads(pickle.dumps(progress)).metric == "val/loss"  # Tune pickles callbacks


def test_a_pbt_rescue_is_said_as_the_summary_says_it():
    out = io.StringIO()
    progress = Progress("val/loss", ["collapse/unique_tokens"], ["lr"], 6, out=out)
    progress.setup()
    rescued = _trial("r", 0.2)
    progress.on_trial_start(0, [], rescued)
    progress.on_trial_result(0, [], rescued, {"training_iteration": 3, "collapse.status": "collapsed",
                                              "collapse.reason": "collapse/unique_tokens=3 < 20 for 2 reports"})
    rescued.config["lr"] = 0.03
    progress.on_trial_result(0, [], rescued, {"training_iteration": 4, "collapse.status": "healthy",
                                              "pbt.donor": "d", "pbt/donor_report": 3})
    progress.on_trial_result(0, [], rescued, {"training_iteration": 5, "collapse.status": "healthy",
                                              "pbt.donor": "d", "pbt/donor_report": 4})
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines() if "] " in line]
    assert lines[-2:] == ["trial r rescued when collapsed at report 3: took trial d's report 3, now lr=0.03",
                          "trial r took trial d's report 4, now lr=0.03"]


def test_progress_never_says_a_scheduler_that_cuts_no_trial_cut_one():
    out = io.StringIO()
    progress = Progress("val/loss", ["collapse/unique_tokens"], ["lr"], 12, out=out, cuts=False, scheduler="fifo")
    progress.setup()
    stopped = _trial("stopped", 0.01)
    progress.on_trial_start(0, [], stopped)
    progress.on_trial_result(0, [], stopped, {"training_iteration": 3, "val/loss": 2.0, "collapse.status": "healthy"})
    progress.on_trial_complete(0, [], stopped)
    last = out.getvalue().splitlines()[-1].split("] ", 1)[1]
    assert last == ("trial stopped healthy ended at report 3 of 12 (not cut: the fifo scheduler cuts no trial), "
                    "val/loss=2")
