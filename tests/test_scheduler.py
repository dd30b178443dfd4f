from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from collapsetune.schedulers import CollapseASHA


def _scheduler() -> CollapseASHA:
    scheduler = CollapseASHA(max_t=9, grace_period=2, reduction_factor=3)
    scheduler.set_search_properties(metric="objective", mode="min")
    return scheduler


def _report(scheduler, trial, t, objective, status="healthy"):
    result = {"training_iteration": t, "objective": objective, "collapse.status": status}
    return scheduler.on_trial_result(None, trial, result)


def _trials(n):
    trials = [Trial("__fake", trial_id=f"t{i}", stub=True) for i in range(n)]
    return trials


def test_collapsed_trial_rung_value_no_longer_cuts_healthy_trials():
    scheduler = _scheduler()
    collapsing, healthy = _trials(2)
    for trial in (collapsing, healthy):
        scheduler.on_trial_add(None, trial)
    # At the first rung the trial about to collapse has the best loss ...
    assert _report(scheduler, collapsing, 2, 1.0) == TrialScheduler.CONTINUE
    # ... then collapses on the next report and is given the penalised objective.
    _report(scheduler, collapsing, 3, 1.0e9, status="collapsed")
    # A healthy trial reaching the rung now is compared with 1e9, not with 1.0.
    assert _report(scheduler, healthy, 2, 3.0) == TrialScheduler.CONTINUE


def test_plain_asha_would_have_cut_the_healthy_trial():
    # The same sequence without the rewrite: the reason CollapseASHA exists.
    from ray.tune.schedulers import ASHAScheduler

    scheduler = ASHAScheduler(max_t=9, grace_period=2, reduction_factor=3)
    scheduler.set_search_properties(metric="objective", mode="min")
    collapsing, healthy = _trials(2)
    for trial in (collapsing, healthy):
        scheduler.on_trial_add(None, trial)
    _report(scheduler, collapsing, 2, 1.0)
    _report(scheduler, collapsing, 3, 1.0e9, status="collapsed")
    assert _report(scheduler, healthy, 2, 3.0) == TrialScheduler.STOP


def test_healthy_results_leave_rungs_alone():
    scheduler = _scheduler()
    a, b = _trials(2)
    for trial in (a, b):
        scheduler.on_trial_add(None, trial)
    _report(scheduler, a, 2, 1.0)
    assert _report(scheduler, b, 2, 3.0) == TrialScheduler.STOP  # ordinary ASHA behaviour
