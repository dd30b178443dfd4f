"""What a user sees in MLflow's UI after a sweep, in headless Chromium (Debian's package;
`.ci/run` installs it): scripts/browser_check.py runs a small sweep, starts `mlflow ui` on a
loopback port, and asserts on the parent run's description at 1600 px with MLflow's assistant
open, the verdicts in the runs list, a samples page, the atlas's plot titles and run link, and
(where optuna-dashboard is installed) the study on its real scale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_mlflow_ui_shows_the_sweeps_answer_and_its_atlas(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "browser_check.py"), "--shots", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "browser check passed" in out.stdout
    assert {p.name for p in tmp_path.glob("*.png")} >= {"mlflow_parent_run.png", "mlflow_atlas_artifact.png",
                                                       "mlflow_runs_view.png", "mlflow_samples.png"}
