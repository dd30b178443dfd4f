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


def _collapse(scheduler, trial, t):
    """What Tune does on the report where a trial is marked collapsed: the stopper ends it,
    and the scheduler hears of it in on_trial_complete with the penalised objective."""
    result = {"training_iteration": t, "objective": 1.0e9, "collapse.status": "collapsed"}
    scheduler.on_trial_complete(None, trial, result)


def test_collapsed_trials_do_not_shield_healthy_trials_from_the_cut():
    # Three collapsed trials reach the first rung with good values, then collapse; then three
    # healthy trials arrive. The rung's cut must be the one among the healthy trials alone:
    # the worst of them (3.0 against 1.0 and 0.8, reduction factor 3) is stopped. Rewriting
    # the collapsed trials' records to 1e9 instead kept every healthy trial in the top third.
    scheduler = _scheduler()
    collapsing, healthy = _trials(3), [Trial("__fake", trial_id=f"h{i}", stub=True) for i in range(3)]
    for trial in collapsing + healthy:
        scheduler.on_trial_add(None, trial)
    for trial in collapsing:
        assert _report(scheduler, trial, 2, 0.5) == TrialScheduler.CONTINUE
        _collapse(scheduler, trial, 3)
    assert _report(scheduler, healthy[0], 2, 1.0) == TrialScheduler.CONTINUE
    assert _report(scheduler, healthy[1], 2, 0.8) == TrialScheduler.CONTINUE
    assert _report(scheduler, healthy[2], 2, 3.0) == TrialScheduler.STOP


def test_a_trial_collapsing_on_a_rung_leaves_no_record_there():
    scheduler = _scheduler()
    (trial,) = _trials(1)
    scheduler.on_trial_add(None, trial)
    bracket = scheduler._trial_info[trial.trial_id]
    _report(scheduler, trial, 1, 1.0)
    _collapse(scheduler, trial, 2)  # the report at the rung is the collapsing one
    assert all(trial.trial_id not in recorded for _, recorded in bracket._rungs)


def test_cut_ties_cuts_a_trial_tied_at_a_rung_that_plain_ray_keeps():
    # An accuracy-like objective (mode max): the first trial reaches the rung at 0.97; a second
    # arrives with the same 0.97. Ray cuts only values strictly below the cutoff, so it keeps
    # both; with cut_ties the rung's top third (one trial of two) is already full.
    def run(cut_ties):
        scheduler = CollapseASHA(max_t=9, grace_period=2, reduction_factor=3, cut_ties=cut_ties)
        scheduler.set_search_properties(metric="objective", mode="max")
        a, b, c = _trials(3)
        for trial in (a, b, c):
            scheduler.on_trial_add(None, trial)
        decisions = [_report(scheduler, a, 2, 0.97), _report(scheduler, b, 2, 0.97)]
        return decisions + [_report(scheduler, c, 2, 0.99)]  # a better one still goes on

    assert run(cut_ties=False) == [TrialScheduler.CONTINUE] * 3
    assert run(cut_ties=True) == [TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.CONTINUE]


def test_cut_ties_leaves_reports_between_rungs_and_collapsing_reports_alone():
    scheduler = CollapseASHA(max_t=9, grace_period=2, reduction_factor=3, cut_ties=True)
    scheduler.set_search_properties(metric="objective", mode="max")
    a, b = _trials(2)
    for trial in (a, b):
        scheduler.on_trial_add(None, trial)
    _report(scheduler, a, 2, 0.97)
    # b's report 1 is at no rung: it goes on whatever its value.
    assert _report(scheduler, b, 1, 0.97) == TrialScheduler.CONTINUE
    # A collapsing report at the rung is the stopper's to end, and leaves no record behind.
    assert _report(scheduler, b, 2, 0.97, status="collapsed") == TrialScheduler.CONTINUE
    bracket = scheduler._trial_info[b.trial_id]
    assert all(b.trial_id not in recorded for _, recorded in bracket._rungs)


def test_a_collapse_asha_pickled_before_cut_ties_existed_resumes_without_it():
    import pickle

    scheduler = _scheduler()
    del scheduler.__dict__["cut_ties"]  # as a scheduler saved by an earlier collapsetune
    restored = pickle.loads(pickle.dumps(scheduler))
    assert restored.cut_ties is False


def test_collapse_asha_survives_pickle_with_its_rungs():
    import pickle

    scheduler = _scheduler()
    a, b = _trials(2)
    for trial in (a, b):
        scheduler.on_trial_add(None, trial)
    _report(scheduler, a, 2, 1.0)
    restored = pickle.loads(pickle.dumps(scheduler))
    assert isinstance(restored, CollapseASHA)
    # The restored scheduler cuts b against a's record, as the original would.
    assert _report(restored, b, 2, 3.0) == TrialScheduler.STOP
