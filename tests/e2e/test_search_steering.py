"""Constraint-aware and multi-objective Optuna sweeps through the real CLI: the study lands
in the results folder with each trial's collapse constraint, and `report` shows the Pareto
front of healthy trials."""

from __future__ import annotations

import json

import optuna
import pytest
from toy_sweep import cli, results, write_sweep


@pytest.mark.slow
def test_multi_objective_sweep_keeps_its_study_and_reports_the_pareto_front(tmp_path):
    write_sweep(tmp_path, "toy-pareto", sleep="0.05", num_samples="6", max_iterations="4",
                objective="[{metric: val/loss, mode: min}, {metric: collapse/unique_tokens, mode: max}]",
                search="{algorithm: optuna, sampler: nsga2, seed: 0, points_to_evaluate: [{lr: 0.2}, {lr: 0.01}]}",
                mlflow="{tracking_uri: null}")
    run = cli("run", "sweeps/toy-pareto.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr

    reports = results(tmp_path)
    assert reports and all("objective/2" in r for r in reports)
    collapsed = [r for r in reports if r["collapse.status"] == "collapsed"]
    assert collapsed and all(r["objective/2"] == -1e9 for r in collapsed)  # maximised: the worst is -1e9

    (folder,) = (tmp_path / "results").iterdir()
    storage = f"sqlite:///{folder / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6
    # Several objectives: collapse is always the constraint; > 0 where the rule fired.
    feasible = {t.params["lr"] <= 0.05 for t in complete}
    assert feasible == {True, False}
    for t in complete:
        assert (t.constraints["collapse"] > 0) == (t.params["lr"] > 0.05)

    shown = cli("report", str(folder), cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Pareto front of healthy trials on val/loss (min), collapse/unique_tokens (max)" in shown.stdout
    data = json.loads(cli("report", str(folder), "--json", cwd=tmp_path).stdout)
    healthy = {t["trial_id"] for t in data["trials"] if t["status"] == "healthy"}
    front = {p["trial_id"] for p in data["pareto"]}
    assert front and front <= healthy
