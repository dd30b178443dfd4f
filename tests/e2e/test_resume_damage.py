"""`collapsetune resume` of a sweep whose stored state lost a piece (issue 22): a checkpoint
that Ray's experiment snapshot names but that is gone from storage, and a damaged Optuna
study. Each on a real embedded Ray through the CLI, judged by reading MLflow: every step
of every trial once, every run ended with a status that says why."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from toy_sweep import cli, sqlite_values, trial_runs, write_sweep

HEALTHY = "{algorithm: random, seed: 0, points_to_evaluate: [{lr: 0.01}, {lr: 0.02}, {lr: 0.03}]}"


def _interrupt_after_two_reports(work: Path, sweep: str, trials: int) -> Path:
    """Runs `sweep` and Ctrl-C's its driver once `trials` trials have reported twice: what
    is left is a resumable sweep whose snapshot names each running trial's checkpoint."""
    driver = cli("run", f"sweeps/{sweep}.yaml", cwd=work, wait=False)
    try:
        deadline = time.monotonic() + 300
        while sum(int(s) >= 2 for s in sqlite_values(work / "mlflow.db", "collapsetune.step")) < trials:
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, f"{trials} trials did not report twice in 300 s"
            time.sleep(0.3)
        driver.send_signal(signal.SIGINT)
        output, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, output[-3000:]
    (folder,) = (work / "results").iterdir()
    return folder


def _every_step_once(work: Path, experiment: str, steps: int) -> list:
    client, runs = trial_runs(work, experiment)
    for run in runs:
        history = [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")]
        assert history == list(range(1, steps + 1)), (run.data.tags["ray.trial_id"], history)
        assert run.info.status == "FINISHED", run.data.tags["ray.trial_id"]
    return runs


@pytest.mark.slow
def test_resume_when_the_snapshot_names_a_deleted_checkpoint_falls_back_and_finishes(tmp_path):
    write_sweep(tmp_path, "gone", num_samples="3", max_iterations="10", sleep="0.4", search=HEALTHY,
                checkpoint_frequency="1", checkpoint_num_to_keep="2")
    folder = _interrupt_after_two_reports(tmp_path, "gone", trials=2)

    from ray.tune import ExperimentAnalysis

    named = {t.trial_id: Path(t.checkpoint.path) for t in ExperimentAnalysis(str(folder)).trials
             if t.status != "TERMINATED" and t.checkpoint is not None}
    assert len(named) >= 2, named
    older, restart = sorted(named)[:2]
    # What a rotation that ran after Ray's last snapshot leaves: the named checkpoint is gone,
    # an older one is still there (for the first trial), none at all (for the second).
    shutil.rmtree(named[older])
    assert sorted(named[older].parent.glob("checkpoint_*")), "no older checkpoint is left to fall back to"
    for checkpoint in named[restart].parent.glob("checkpoint_*"):
        shutil.rmtree(checkpoint)

    out = cli("resume", str(folder), cwd=tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert f"trial {older}: its checkpoint {named[older].name} is gone from storage; resuming from" in log
    assert f"trial {restart}: none of its checkpoints is left on storage; it starts again" in log
    assert "FileNotFoundError" not in log and "Could not recover" not in log, log[-4000:]
    runs = _every_step_once(tmp_path, "gone", 10)
    assert len(runs) == 3
