"""`search.warm_start` with a real results folder: an earlier toy sweep (2 collapsing, 2
healthy trials) seeds a new sweep's Optuna study in SQLite with its params, real values and
collapse verdicts; trials outside the new bounds are skipped and counted; a folder whose
space differs is refused naming the keys; an interrupted warm-started sweep resumes without
adding them twice, also when its study has to be rebuilt."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from ray import tune
from toy_sweep import cli, finished_runs, interrupt_when, write_sweep

from collapsetune.errors import SpecError
from collapsetune.searchers import CollapseOptunaSearch, make_sampler, study_storage
from collapsetune.spec import load_sweep
from collapsetune.warm_start import check

pytestmark = pytest.mark.slow

EARLIER = "{algorithm: optuna, seed: 0, points_to_evaluate: [{lr: 0.2}, {lr: 0.01}]}"


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """The results folder of a finished 4-trial toy sweep: lr > 0.05 collapses at report 3."""
    work = tmp_path_factory.mktemp("earlier")
    write_sweep(work, "earlier", sleep="0.05", search=EARLIER, mlflow="{tracking_uri: null}",
                storage=str(work / "earlier_results"))
    out = cli("run", "sweeps/earlier.yaml", cwd=work)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    (folder,) = (work / "earlier_results").iterdir()
    return folder


def _lrs(folder: Path) -> list[float]:
    from ray.tune import ExperimentAnalysis

    return [t.config["lr"] for t in ExperimentAnalysis(str(folder)).trials]


def _searcher(tmp_path: Path, earlier: Path, high: float = 0.3) -> CollapseOptunaSearch:
    searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), seed=0, raw_metrics=["val/loss"],
                                    storage=study_storage(str(tmp_path / "optuna.db")), study_name="later",
                                    warm_start=[str(earlier)])
    searcher.set_search_properties("objective", "min", {"lr": tune.loguniform(1e-3, high)})
    return searcher


def test_the_study_starts_with_the_earlier_trials_and_their_verdicts(tmp_path, earlier, capsys):
    searcher = _searcher(tmp_path, earlier)
    assert capsys.readouterr().out.strip() == f"collapsetune: warm start: 4 trials from {earlier} (2 collapsed)"
    trials = optuna.load_study(study_name="later", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert sorted(t.params["lr"] for t in trials) == sorted(_lrs(earlier))
    assert all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:  # the real val/loss (not the 1e9 penalty), collapse as the constraint
        assert t.values[0] < 10
        assert t.constraints == {"collapse": 1.0 if t.params["lr"] > 0.05 else 0.0}
    assert searcher.suggest("new")["lr"] > 0  # the sampler proposes from them

    again = _searcher(tmp_path, earlier)  # the same study opened again, as a resumed sweep's searcher would
    assert capsys.readouterr().out == ""
    assert len(again._ot_study.get_trials()) == 5  # the 4 warm trials once, and the proposal


def test_trials_outside_the_new_bounds_are_skipped_and_counted(tmp_path, earlier, capsys):
    outside = sum(lr > 0.1 for lr in _lrs(earlier))
    assert outside >= 1  # the lr=0.2 point
    searcher = _searcher(tmp_path, earlier, high=0.1)
    assert capsys.readouterr().out.strip() == (f"collapsetune: warm start: {4 - outside} trials from {earlier} "
                                               f"({2 - outside} collapsed); {outside} outside this sweep's search "
                                               "space skipped")
    assert all(t.params["lr"] <= 0.1 for t in searcher._ot_study.get_trials())


def test_a_folder_whose_space_differs_is_refused_naming_the_keys(tmp_path, earlier):
    sweep = write_sweep(tmp_path, "later", search=f"{{algorithm: optuna, warm_start: {earlier}}}")
    check(load_sweep(sweep))  # the same space: accepted
    spec = load_sweep(sweep, ["search_space={lr: {loguniform: [0.001, 0.3]}, seed: {choice: [1, 2]}}"])
    with pytest.raises(SpecError, match=f"{sweep}: search.warm_start: .*only this sweep searches seed"):
        check(spec)
    with pytest.raises(SpecError, match="searched lr in \\[0.001, 0.3\\], which does not overlap"):
        check(load_sweep(sweep, ["search_space={lr: {loguniform: [0.5, 0.9]}}"]))
    with pytest.raises(SpecError, match="searched lr as loguniform .* this sweep as uniform"):
        check(load_sweep(sweep, ["search_space={lr: {uniform: [0.001, 0.3]}}"]))


@pytest.mark.parametrize("study", ["kept", "deleted"])
def test_an_interrupted_warm_started_sweep_resumes_without_adding_them_twice(tmp_path, earlier, study):
    write_sweep(tmp_path, "later", num_samples="4", max_iterations="8", sleep="0.4",
                search=f"{{algorithm: optuna, seed: 1, warm_start: {earlier}}}")
    driver = cli("run", "sweeps/later.yaml", cwd=tmp_path, wait=False)
    folder, said = interrupt_when(driver, lambda: finished_runs(tmp_path / "mlflow.db") >= 1, "a finished trial",
                                  tmp_path)
    assert f"collapsetune: warm start: 4 trials from {earlier} (2 collapsed)" in said
    if study == "deleted":  # rebuilt from the results folder on resume: the warm trials come back once
        (folder / "optuna.db").unlink()

    out = cli("resume", str(folder), cwd=tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    trials = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}").trials
    warm = [t for t in trials if "collapsetune.warm_start" in t.user_attrs]
    assert sorted(t.params["lr"] for t in warm) == sorted(_lrs(earlier))
    assert sum(t.state.name == "COMPLETE" for t in trials) == 8, [(t.state.name, t.params) for t in trials]
