"""The shipped smoke sweep on the real BitNet LM: embedded Ray, Optuna, ASHA, collapse
rules and MLflow on SQLite, checked through `mlflow.search_runs`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_smoke_sweep_stops_collapsed_lm_and_runs_healthy_one_to_the_end(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "collapsetune.cli", "run", str(ROOT / "sweeps" / "smoke.yaml"),
         "--set", f"storage={tmp_path / 'results'}", "--set", f"mlflow.tracking_uri={uri}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLLAPSETUNE_CACHE": str(tmp_path / "cache")},  # trains its own BPE
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

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
    samples = client.download_artifacts(healthy["run_id"], "samples/iter_0008.txt", str(tmp_path))
    assert Path(samples).read_text().strip()
    assert "best healthy trial" in out.stdout
