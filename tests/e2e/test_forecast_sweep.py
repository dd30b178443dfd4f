"""`collapse_forecast:` through the real CLI with a real MLflow store: once the rules have
judged a few trials, the forecast stops the collapsing ones before the rules could, and each
trial's MLflow run and the atlas show the verdict the forecast predicted beside the actual one."""

from __future__ import annotations

import pytest
from toy_sweep import cli, trial_runs, write_sweep


@pytest.mark.slow
def test_forecast_stops_early_and_mlflow_and_the_atlas_show_predicted_beside_actual(tmp_path):
    # Toy: lr 0.2 collapses (4 unique tokens from report 2, judged on report 3 by grace 1 +
    # patience 2); lr 0.01 stays healthy to report 6. Two slots; the first four trials (two of
    # each) teach the forecast, which may act after 4 judged trials and 1 healthy one
    # (max_false_stop 0.5), from report 1.
    write_sweep(tmp_path, "toy-forecast", config="{}", max_iterations="6", num_samples="12", max_concurrent="2",
                search_space="{lr: {choice: [0.2, 0.01]}}",
                search="{algorithm: random, seed: 0, points_to_evaluate: "
                       "[{lr: 0.01}, {lr: 0.2}, {lr: 0.01}, {lr: 0.2}]}",
                collapse_forecast="{min_trials: 4, max_false_stop: 0.5, first_report: 1}",
                mlflow=f"{{tracking_uri: 'sqlite:///{tmp_path / 'mlflow.db'}'}}")
    run = cli("run", "sweeps/toy-forecast.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr

    client, runs = trial_runs(tmp_path, "toy-forecast")
    assert len(runs) == 12
    stopped, forecast = [], []
    for r in runs:
        tags = r.data.tags
        history = client.get_metric_history(r.info.run_id, "collapse.forecast")
        if not history:
            assert "collapse.forecast" not in tags  # no forecast, no predicted verdict
            continue
        forecast.append(r)
        said = tags["collapse.forecast"]
        if tags.get("collapse.reason", "").startswith("forecast:"):
            stopped.append(r)
            assert said == "collapsed" and tags["collapse.status"] == "collapsed"
            assert int(tags["collapse.iteration"]) < 3  # before the rules could have judged it
        else:
            assert said == ("collapsed" if history[-1].value >= 0.5 else "healthy")
    assert forecast and stopped, [r.data.tags for r in runs]  # it forecast, and it stopped some early

    (folder,) = (tmp_path / "results").iterdir()
    shown = cli("report", str(folder), "--html", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    page = (folder / "atlas" / "atlas.html").read_text()
    assert "<th>forecast</th>" in page
    assert f"Forecast (collapse_forecast): stopped {len(stopped)} trial(s)" in page
    assert page.count(", stopped it)") == len(stopped)
