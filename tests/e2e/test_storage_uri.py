"""`storage:` as a URI (file:// here; s3:// and gs:// go through the same pyarrow layer):
launch, report and resume all work on it, and resuming a finished sweep duplicates nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

HERE = Path(__file__).parent
SWEEP = """\
name: toy-uri
trainable: outside_wrapper:Toy
search_space: {lr: {choice: [0.2, 0.01]}}
objective: {metric: val/loss, mode: min}
max_iterations: 4
num_samples: 2
search: {algorithm: random, seed: 0, points_to_evaluate: [{lr: 0.2}, {lr: 0.01}]}
scheduler: {type: fifo}
collapse: [{metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}]
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "collapsetune.cli", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_uri_storage_run_report_and_idempotent_resume(tmp_path):
    (tmp_path / "sweeps").mkdir()
    shutil.copy(HERE / "outside_wrapper.py", tmp_path / "sweeps" / "outside_wrapper.py")
    (tmp_path / "sweeps" / "toy.yaml").write_text(SWEEP)
    storage = f"file://{tmp_path / 'remote'}"
    _cli("run", "sweeps/toy.yaml", "--set", f"storage={storage}", cwd=tmp_path)
    (folder,) = list((tmp_path / "remote").iterdir())
    assert (folder / "sweep.yaml").is_file() and (folder / "collapsetune.json").is_file()
    uri = f"{storage}/{folder.name}"

    summary = json.loads(_cli("report", uri, "--json", cwd=tmp_path).stdout)
    assert summary["counts"] == {"collapsed": 1, "healthy": 1}

    _cli("resume", uri, cwd=tmp_path)  # nothing left to run: must change nothing
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("toy-uri").experiment_id])
    assert len(runs) == 3  # one parent and two children, as before the resume
    assert json.loads(_cli("report", uri, "--json", cwd=tmp_path).stdout)["counts"] == summary["counts"]
