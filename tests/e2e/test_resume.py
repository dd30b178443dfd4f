"""SIGKILL the driver mid-sweep, move its results folder, then `collapsetune resume`: every
trial finishes exactly once and MLflow holds exactly one child run per trial with one value
per step."""

from __future__ import annotations

import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from tests.e2e.toy_sweep import finished_runs

HERE = Path(__file__).parent
SWEEP = """\
name: toy-resume
trainable: TRAINABLE
config: {sleep: 0.5}
search_space:
  lr: {loguniform: [0.001, 0.3]}
objective: {metric: val/loss, mode: min}
max_iterations: 8
num_samples: 6
search: {algorithm: optuna, seed: 0, constraints: true, points_to_evaluate: [{lr: 0.2}]}
scheduler: {type: fifo}
collapse:
  - {metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}
resources: {cpu: 1}
checkpoint_interval_s: 1  # checkpoints mid-trial, so a resumed trial restores one
"""


def _finished_trials(results: Path) -> int:
    return sum(1 for r in results.glob("*/*/result.json") if '"done": true' in r.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("trainable", ["outside_wrapper:Toy", "outside_loop:train"])  # a class; a user's own loop
def test_resume_after_driver_sigkill_finishes_each_trial_once(tmp_path, trainable):
    module = trainable.partition(":")[0] + ".py"
    sweep = SWEEP.replace("TRAINABLE", trainable)
    (tmp_path / "sweeps").mkdir()
    shutil.copy(HERE / module, tmp_path / "sweeps" / module)
    (tmp_path / "sweeps" / "toy.yaml").write_text(sweep)
    cli = [sys.executable, "-m", "collapsetune.cli"]
    # Own process group, so the local Ray it starts can be stopped exactly after the kill.
    driver = subprocess.Popen([*cli, "run", "sweeps/toy.yaml"], cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while finished_runs(tmp_path / "mlflow.db") < 2:
            assert driver.poll() is None, "sweep ended before it could be interrupted"
            assert time.monotonic() < deadline, "no trial finished within 300 s"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait()

    (launched,) = list((tmp_path / "results").iterdir())
    assert finished_runs(tmp_path / "mlflow.db") < 6, "killed too late to test resume"
    # The user moves the results before resuming: the runs must still be found, not made anew.
    results = tmp_path / "moved" / launched.name
    results.parent.mkdir()
    launched.rename(results)
    out = subprocess.run([*cli, "resume", str(results)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, start_new_session=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("toy-resume").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) - len(children) == 1  # one parent run for the launch and its resume
    assert sorted(r.data.tags["ray.trial_id"] for r in children) == sorted(
        {r.data.tags["ray.trial_id"] for r in children}
    )
    assert len(children) == 6
    # Runs of a trial lost between Ray's snapshots are in the trash, tagged with why.
    every = client.search_runs([runs[0].info.experiment_id], run_view_type=ViewType.ALL)
    for orphan in (r for r in every if r.info.lifecycle_stage == "deleted"):
        assert "driver crash" in orphan.data.tags["collapsetune.orphan"]
        assert orphan.info.status == "KILLED"
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")]
        assert steps == sorted(set(steps)), f"duplicate or missing steps {steps}"
        expected = 3 if run.data.tags["collapse.status"] == "collapsed" else 8
        assert steps[-1] == expected and run.info.status == "FINISHED"
    assert _finished_trials(tmp_path / "moved") == 6

    # One Optuna study in the results folder, continued by the resume: a COMPLETE trial per
    # Tune trial with its collapse constraint, and any trial lost in the crash closed as FAIL.
    import optuna

    storage = f"sqlite:///{results / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6 and all("collapse" in t.constraints for t in complete)
    assert all(t.state.name == "FAIL" and "driver crash" in t.user_attrs["collapsetune.lost"]
               for t in study.trials if t not in complete)

    # The same sweep, uninterrupted (and without the sleep): the same trials and outcomes.
    calm = tmp_path / "calm"
    (calm / "sweeps").mkdir(parents=True)
    shutil.copy(HERE / module, calm / "sweeps" / module)
    (calm / "sweeps" / "toy.yaml").write_text(sweep.replace("sleep: 0.5", "sleep: 0.0"))
    out = subprocess.run([*cli, "run", "sweeps/toy.yaml"], cwd=calm, capture_output=True, text=True,
                         timeout=600, start_new_session=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert _outcomes(tmp_path) == _outcomes(calm)


def _outcomes(work: Path) -> list[tuple]:
    """(config, status, last iteration, last val/loss) of every trial, from MLflow."""
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("toy-resume").experiment_id],
                              "tags.`ray.trial_id` != ''")
    return sorted(
        (r.data.params["lr"], r.data.tags["collapse.status"], r.data.tags["collapsetune.step"],
         round(r.data.metrics["val/loss"], 9))
        for r in runs
    )
