"""End to end: the shipped mop_clip sweep, made small with --set, through the CLI and MLflow.

The seed's collapsing setting (tau_end 0.05, no regularizers) must be stopped and tagged
collapsed with its reason; the seed's fix (tau_end 0.3, diversity 0.1, entropy 0.01) must
stay healthy and carry its pictures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "sweeps" / "mop_clip.yaml"


@pytest.mark.slow
def test_mop_clip_sweep_tags_seed_collapse_and_keeps_its_fix(tmp_path):
    # Only the two points_to_evaluate run (num_samples=2), random search, no ASHA: the
    # verdicts come from the shipped collapse rules and the shipped points alone.
    out = subprocess.run(
        [sys.executable, "-m", "collapsetune.cli", "run", str(SWEEP),
         "--set", "num_samples=2", "--set", "search.algorithm=random",
         "--set", "scheduler={type: fifo}", "--set", "max_iterations=8",
         "--set", f"storage={tmp_path / 'results'}",
         "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLLAPSETUNE_CACHE": str(tmp_path / "cache")},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mop-clip-collapse")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 2
    by_tau = {r.data.params["tau_end"]: r for r in runs}

    bad = by_tau["0.05"]
    assert bad.data.params["diversity_loss_weight"] == "0.0"
    assert bad.data.tags["collapse.status"] == "collapsed"
    assert bad.data.tags["collapse.reason"].startswith("collapse/subprompt_cos_max=")
    assert "> 0.9 for 2 reports" in bad.data.tags["collapse.reason"]
    stopped_at = int(bad.data.tags["collapse.iteration"])
    assert stopped_at == 6  # grace 4 + patience 2: stopped on the report where it collapsed
    assert max(m.step for m in client.get_metric_history(bad.info.run_id, "val/loss")) == stopped_at
    assert bad.data.metrics["objective"] == -1.0e9  # maximising val/accuracy

    good = by_tau["0.3"]
    assert good.data.params["diversity_loss_weight"] == "0.1"
    assert good.data.params["entropy_loss_weight"] == "0.01"
    assert good.data.tags["collapse.status"] == "healthy"
    assert good.data.metrics["collapse/subprompt_cos_max"] < 0.9
    assert max(m.step for m in client.get_metric_history(good.info.run_id, "val/loss")) == 8
    for run in (good, bad):
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"subprompt_similarity.png", "subprompt_images.png"} <= names, names
    assert "best healthy trial" in out.stdout
