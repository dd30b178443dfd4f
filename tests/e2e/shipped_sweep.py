"""Running a shipped sweep through the CLI into a test's tmp_path, and reading its runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


def run_shipped_sweep(name: str, tmp_path: Path, *overrides: str, timeout: int = 600):
    """`collapsetune run sweeps/<name>.yaml`, its results, MLflow store and data cache all
    under tmp_path, `overrides` as --set KEY=VALUE; fails the test if the run fails."""
    sets = [f"storage={tmp_path / 'results'}", f"mlflow.tracking_uri={tracking_uri(tmp_path)}", *overrides]
    out = subprocess.run(
        [sys.executable, "-m", "collapsetune.cli", "run", str(SWEEPS / f"{name}.yaml"),
         *(arg for value in sets for arg in ("--set", value))],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLLAPSETUNE_CACHE": str(tmp_path / "cache")},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def child_runs(tmp_path: Path, experiment: str) -> tuple[MlflowClient, list]:
    """The MLflow client and the trial (child) runs of an experiment in tmp_path's store."""
    client = MlflowClient(tracking_uri=tracking_uri(tmp_path))
    found = client.get_experiment_by_name(experiment)
    return client, [r for r in client.search_runs([found.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
