"""CollapseOptunaSearch driven directly (no Ray cluster): the collapse margin reaches the
sampler's constraints, several objectives survive Tune's one metric, and a study kept in
SQLite is continued, not duplicated, by a restored searcher."""

from __future__ import annotations

import pickle

import optuna
import pytest
from ray import tune

from collapsetune.searchers import CollapseOptunaSearch, make_sampler, restoring_from, study_storage

SPACE = {"lr": tune.loguniform(1e-4, 1e-1)}


def _searcher(tmp_path=None, **kw) -> CollapseOptunaSearch:
    storage = study_storage(str(tmp_path / "optuna.db")) if tmp_path else None
    searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), constraints=True, seed=0, storage=storage,
                                    study_name="sweep-1" if tmp_path else None, **kw)
    searcher.set_search_properties("objective", "min", SPACE)
    return searcher


def test_the_collapse_margin_is_the_samplers_constraint():
    searcher = _searcher()
    for i, margin in enumerate((0.5, -0.2, float("inf"))):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"objective": 1.0 + i, "collapse/margin": margin})
    trials = searcher._ot_study.get_trials()
    assert [t.constraints for t in trials] == [{"collapse": 0.5}, {"collapse": -0.2}, {"collapse": 1e9}]
    # TPE ranks the collapsed (infeasible) trials below the healthy one, whatever their objective.
    from optuna.samplers._tpe.sampler import _split_trials

    below, _ = _split_trials(searcher._ot_study, trials, 1)
    assert [t.number for t in below] == [1]


def test_a_trial_the_forecast_stopped_is_infeasible_by_its_forecast():
    searcher = _searcher()
    searcher.suggest("f")  # healthy-looking margin, but the forecast says 0.9 collapsed
    searcher.on_trial_complete("f", {"objective": 1e9, "collapse/margin": -0.1, "collapse.forecast": 0.9})
    assert searcher._ot_study.get_trials()[0].constraints == {"collapse": pytest.approx(0.4)}


def test_without_constraints_a_trial_carries_none():
    searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), seed=0)
    searcher.set_search_properties("objective", "min", SPACE)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"objective": 1.0, "collapse/margin": 0.5})
    assert searcher._ot_study.get_trials()[0].constraints == {}


def test_several_objectives_are_not_replaced_by_the_schedulers_metric():
    searcher = CollapseOptunaSearch(metric=["objective", "objective/2"], mode=["min", "max"], seed=0,
                                    sampler=make_sampler("nsga2", 0), constraints=True)
    searcher.set_search_properties("objective", "min", SPACE)  # what Tune passes from TuneConfig
    assert searcher.metric == ["objective", "objective/2"]
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"objective": 2.0, "objective/2": 0.7, "collapse/margin": -1.0})
    (trial,) = searcher._ot_study.get_trials()
    assert trial.values == [2.0, 0.7] and len(searcher._ot_study.directions) == 2


def test_a_study_in_sqlite_is_continued_and_lost_trials_are_marked(tmp_path):
    first = _searcher(tmp_path)
    first.suggest("done")
    first.on_trial_complete("done", {"objective": 1.0, "collapse/margin": -0.5})
    first.suggest("running")
    first.save(str(tmp_path / "searcher.pkl"))  # Tune's experiment snapshot
    first.suggest("lost")  # asked after the snapshot: the driver dies before the next one

    resumed = _searcher(tmp_path)
    with restoring_from(str(tmp_path)):  # what `collapsetune resume` does while Tune restores
        resumed.restore(str(tmp_path / "searcher.pkl"))
    resumed.on_trial_complete("running", {"objective": 0.5, "collapse/margin": 0.3})
    study = optuna.load_study(study_name="sweep-1", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]  # one study: no copy, the lost trial closed
    assert "driver crash" in study.get_trials()[2].user_attrs["collapsetune.lost"]


def test_a_pickled_searcher_does_not_reopen_its_study_where_the_results_were(tmp_path):
    import pickle

    searcher = _searcher(tmp_path)
    blob = pickle.dumps(searcher)  # what tuner.pkl holds
    (tmp_path / "optuna.db").unlink()
    pickle.loads(blob)
    assert not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize("name", ["tpe", "nsga2", "gp"])
def test_a_searcher_pickles_with_each_sampler(name):
    searcher = CollapseOptunaSearch(metric="objective", mode="min", sampler=make_sampler(name, 0), seed=0,
                                    space={"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
    back = pickle.loads(pickle.dumps(searcher))  # Tune pickles the searcher into every snapshot
    assert type(back._sampler) is type(searcher._sampler)
    assert back.suggest("t1")["lr"] > 0  # a lock made anew: the sampler still proposes


def test_a_partial_point_to_evaluate_runs_first_and_optuna_samples_the_rest():
    # docs/sweep-format.md allows partial points; Ray's OptunaSearch alone wants every dimension.
    space = {"lr": tune.loguniform(1e-4, 1e-1), "label_smoothing": tune.uniform(0.0, 0.2),
             "k": tune.choice([4, 8, 32])}
    searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), seed=0,
                                    points_to_evaluate=[{"lr": 1e-4, "label_smoothing": 0.0}, {"k": 32}])
    searcher.set_search_properties("objective", "min", space)
    first, second, third = (searcher.suggest(t) for t in ("a", "b", "c"))
    assert (first["lr"], first["label_smoothing"]) == (1e-4, 0.0) and first["k"] in (4, 8, 32)
    assert second["k"] == 32 and 1e-4 <= second["lr"] <= 1e-1 and 0.0 <= second["label_smoothing"] <= 0.2
    assert set(third) == set(space)


def test_the_study_holds_real_values_and_a_collapsed_trial_is_infeasible():
    # optuna-dashboard draws the study: with the 1e9 penalty as a value its history chart was
    # all penalty. The study gets val/loss itself and the collapse as the trial's constraint,
    # and TPE still ranks the collapsed trial (lowest loss) below the healthy ones.
    from optuna.samplers._tpe.sampler import _split_trials

    for constraints in (False, True):
        searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), seed=0, constraints=constraints,
                                        raw_metrics=["val/loss"])
        searcher.set_search_properties("objective", "min", SPACE)
        reports = {
            "healthy": {"val/loss": 2.0, "objective": 2.0, "collapse.status": "healthy", "collapse/margin": -0.5},
            "collapsed": {"val/loss": 1.2, "objective": 1e9, "collapse.status": "collapsed", "collapse/margin": 0.4},
            "diverged": {"val/loss": float("nan"), "objective": 1e9, "collapse.status": "diverged",
                         "collapse/margin": float("nan")},
            "worse": {"val/loss": 3.0, "objective": 3.0, "collapse.status": "healthy", "collapse/margin": -0.1},
        }
        for trial_id, last in reports.items():
            searcher.suggest(trial_id)
            searcher.on_trial_result(trial_id, {"training_iteration": 1, **last, "val/loss": 2.5, "objective": 2.5})
            searcher.on_trial_complete(trial_id, {"training_iteration": 2, **last})
        trials = searcher._ot_study.get_trials()
        assert [t.user_attrs["ray_trial_id"] for t in trials] == list(reports)
        assert [t.value for t in trials] == [2.0, 1.2, 2.5, 3.0]  # diverged: its last finite value
        assert [t.intermediate_values for t in trials] == [{1: 2.5}] * 4
        feasible = [all(v <= 0 for v in t.constraints.values()) for t in trials]
        assert feasible == [True, False, False, True], (constraints, [t.constraints for t in trials])
        below, _ = _split_trials(searcher._ot_study, trials, 2)
        assert [t.number for t in below] == [0, 3]



def test_a_trial_the_study_already_closed_can_still_complete_without_ending_the_sweep():
    # After a resume the restored study closes the Optuna trials lost in the crash (FAIL);
    # Tune can still complete such a trial. Writing its constraint or MLflow link raised
    # UpdateFinishedTrialError and ended the resumed driver (tests/e2e/test_resume.py).
    searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), seed=0, raw_metrics=["val/loss"])
    searcher.set_search_properties("objective", "min", SPACE)
    searcher.suggest("lost")
    searcher._ot_study.tell(searcher._ot_trials["lost"].number, state=optuna.trial.TrialState.FAIL)
    searcher.on_trial_complete("lost", {"training_iteration": 2, "val/loss": 1.0, "objective": 1e9,
                                        "collapse.status": "collapsed", "collapse/margin": 0.4})
    (trial,) = searcher._ot_study.get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL and not trial.constraints
