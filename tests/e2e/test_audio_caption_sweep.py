"""End to end: the shipped audio_caption sweep, made small with --set, through the CLI and MLflow.

The seed's failing captioner (max-pooling over time, audio only as the initial state,
greedy) must be stopped and tagged collapsed with its reason; the architecture fix must
stay healthy with more distinct captions and a better CIDEr-D, and carry its samples and
weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "sweeps" / "audio_caption.yaml"


@pytest.mark.slow
def test_audio_caption_sweep_stops_baseline_and_keeps_fix(tmp_path):
    # Only the two points_to_evaluate run (num_samples=2), random search, no ASHA; a smaller
    # data set and shorter reports keep it near a minute.
    out = subprocess.run(
        [sys.executable, "-m", "collapsetune.cli", "run", str(SWEEP),
         "--set", "num_samples=2", "--set", "search.algorithm=random",
         "--set", "scheduler={type: fifo}", "--set", "max_iterations=3",
         "--set", "config.n_clips=600", "--set", "config.val_clips=100",
         "--set", "config.steps_per_report=40",
         "--set", f"storage={tmp_path / 'results'}",
         "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLLAPSETUNE_CACHE": str(tmp_path / "cache")},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("audio-caption-collapse")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 2
    by_pooling = {r.data.params["pooling"]: r for r in runs}

    bad = by_pooling["max"]
    assert bad.data.params["audio_injection"] == "init" and bad.data.params["decoding"] == "greedy"
    assert bad.data.tags["collapse.status"] == "collapsed"
    assert bad.data.tags["collapse.reason"].startswith("collapse/unique_captions=")
    assert "< 0.05 for 2 reports" in bad.data.tags["collapse.reason"]
    assert int(bad.data.tags["collapse.iteration"]) == 3  # grace 1 + patience 2
    assert bad.data.metrics["objective"] == -1.0e9  # maximising CIDEr-D

    good = by_pooling["time_preserving"]
    assert good.data.params["attention"] == "additive"
    assert good.data.tags["collapse.status"] == "healthy"
    assert good.data.metrics["collapse/unique_captions"] > 2 * bad.data.metrics["collapse/unique_captions"]
    assert good.data.metrics["val/cider_d"] > bad.data.metrics["val/cider_d"]
    names = {a.path for a in client.list_artifacts(good.info.run_id)}
    assert {"samples.txt", "captioner.pt"} <= names, names
    assert "best healthy trial" in out.stdout
