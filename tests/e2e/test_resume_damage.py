"""`collapsetune resume` of a sweep whose stored state lost a piece (issue 22): a checkpoint
that Ray's experiment snapshot names but that is gone from storage, and a damaged Optuna
study. Each on a real embedded Ray through the CLI, judged by reading MLflow: every step
of every trial once, every run ended with a status that says why."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from toy_sweep import cli, finished_runs, interrupt_when, sqlite_values, trial_runs, write_sweep

HEALTHY = "{algorithm: random, seed: 0, points_to_evaluate: [{lr: 0.01}, {lr: 0.02}, {lr: 0.03}]}"


def _interrupt_after_two_reports(work: Path, sweep: str, trials: int) -> Path:
    """Runs `sweep` and Ctrl-C's its driver once `trials` trials have reported twice: what
    is left is a resumable sweep whose snapshot names each running trial's checkpoint."""
    driver = cli("run", f"sweeps/{sweep}.yaml", cwd=work, wait=False)

    def reported_twice() -> bool:
        return sum(int(s) >= 2 for s in sqlite_values(work / "mlflow.db", "collapsetune.step")) >= trials

    return interrupt_when(driver, reported_twice, f"{trials} trials reporting twice", work)[0]


def _every_step_once(work: Path, experiment: str, steps: int) -> list:
    client, runs = trial_runs(work, experiment)
    for run in runs:
        history = [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")]
        assert history == list(range(1, steps + 1)), (run.data.tags["ray.trial_id"], history)
        assert run.info.status == "FINISHED", run.data.tags["ray.trial_id"]
    return runs


@pytest.mark.slow
def test_resume_when_the_snapshot_names_a_deleted_checkpoint_falls_back_and_finishes(tmp_path):
    # 20 reports: the two first trials must both be running at the Ctrl-C, which waits for the
    # later of them to report twice; at 10 a start 8 reports (3.2 s) behind, a slow worker start
    # on a loaded machine, let the first finish before it (then fewer than two trials may name a
    # checkpoint). At 20 the first still has 18 reports (7.2 s) to make.
    write_sweep(tmp_path, "gone", num_samples="3", max_iterations="20", sleep="0.4", search=HEALTHY,
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
    runs = _every_step_once(tmp_path, "gone", 20)
    assert len(runs) == 3


OPTUNA = ("{algorithm: optuna, seed: 0, constraints: true, "
          "points_to_evaluate: [{lr: 0.2}, {lr: 0.01}, {lr: 0.02}, {lr: 0.03}]}")


def _interrupt_after_one_finished(work: Path, sweep: str) -> Path:
    """Ctrl-C once one trial has finished (the collapsing lr=0.2 one, at report 3)."""
    driver = cli("run", f"sweeps/{sweep}.yaml", cwd=work, wait=False)
    return interrupt_when(driver, lambda: finished_runs(work / "mlflow.db") >= 1, "a finished trial", work)[0]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "random bytes", "deleted"])
def test_resume_with_a_damaged_optuna_study_rebuilds_it_and_finishes(tmp_path, damage):
    write_sweep(tmp_path, "study", num_samples="4", max_iterations="8", sleep="0.4", search=OPTUNA)
    folder = _interrupt_after_one_finished(tmp_path, "study")
    db = folder / "optuna.db"
    if damage == "truncated":
        db.write_bytes(db.read_bytes()[:3000])
    elif damage == "random bytes":
        db.write_bytes(os.urandom(db.stat().st_size))
    else:
        db.unlink()

    out = cli("resume", str(folder), cwd=tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert f"Optuna's study {db} could not be read" in log and "rebuilt it from the results folder" in log, log
    assert (folder / "optuna.db.unreadable").exists() == (damage != "deleted")
    client, runs = trial_runs(tmp_path, "study")
    assert len(runs) == 4
    for run in runs:
        history = [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")]
        last = 3 if run.data.tags["collapse.status"] == "collapsed" else 8
        assert history == list(range(1, last + 1)), history
        assert run.info.status == "FINISHED"

    import optuna

    storage = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and all("collapse" in t.constraints for t in complete)
    assert sorted(round(t.params["lr"], 3) for t in complete) == [0.01, 0.02, 0.03, 0.2]


@pytest.mark.slow
def test_resume_with_a_read_only_optuna_study_says_so_in_one_line(tmp_path):
    write_sweep(tmp_path, "ro", num_samples="4", max_iterations="8", sleep="0.4", search=OPTUNA)
    folder = _interrupt_after_one_finished(tmp_path, "ro")
    db = folder / "optuna.db"
    db.chmod(0o444)
    locked = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode == 0
    if not os.access(db, os.W_OK) or locked:
        try:
            out = cli("resume", str(folder), cwd=tmp_path)
        finally:
            if locked:
                subprocess.run(["chattr", "-i", str(db)], check=True)
    else:
        pytest.skip("cannot make a file read-only here (root without chattr +i)")
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    (line,) = [x for x in out.stderr.splitlines() if x.strip()]
    assert str(db) in line and "read-only" in line, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
