"""The shipped smoke sweep on the real BitNet LM: embedded Ray, Optuna, ASHA, collapse
rules and MLflow on SQLite, checked through `mlflow.search_runs`."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from shipped_sweep import run_shipped_sweep, tracking_uri


@pytest.mark.slow
def test_smoke_sweep_stops_collapsed_lm_and_runs_healthy_one_to_the_end(tmp_path):
    out = run_shipped_sweep("smoke", tmp_path)  # trains its own BPE in tmp_path/cache
    uri = tracking_uri(tmp_path)

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["bitnet-smoke"], filter_string="tags.`ray.trial_id` != ''")
    assert len(runs) == 2
    by_lr = {float(row["params.lr"]): row for _, row in runs.iterrows()}

    collapsed = by_lr[3.0e-4]
    assert collapsed["tags.collapse.status"] == "collapsed"
    assert collapsed["tags.collapse.reason"].startswith("collapse/unique_tokens=")
    assert collapsed["tags.collapse.reason"].endswith("< 8 for 2 reports")
    assert collapsed["tags.collapse.iteration"] == "5"  # grace 3 + patience 2: stopped at once
    assert collapsed["metrics.objective"] == 1.0e9

    healthy = by_lr[3.0e-2]
    assert healthy["tags.collapse.status"] == "healthy"
    client = mlflow.tracking.MlflowClient(uri)
    steps = [m.step for m in client.get_metric_history(healthy["run_id"], "collapse/unique_tokens")]
    assert steps == list(range(1, 9))  # ran all 8 reports
    assert healthy["metrics.collapse/unique_tokens"] >= 8
    samples = Path(client.download_artifacts(healthy["run_id"], "samples.md", str(tmp_path))).read_text()
    assert samples.count("## Report ") == 8 and " ||| " in samples  # every report's prompt ||| continuation
    assert "best healthy trial" in out.stdout
