"""A results folder whose filesystem fills up mid-sweep (issue 22 item 2), on a real embedded
Ray through the CLI: the test mounts a 3 MB tmpfs as the results folder, fills it once both
trials have reported twice, and grows it again before `resume`. Judged by reading MLflow:
every step of every trial once, every run FINISHED once the sweep is done."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from toy_sweep import cli, sqlite_values, trial_runs, write_sweep


def _mount(folder: Path, size: str) -> None:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill (mounting needs root or CAP_SYS_ADMIN): "
                    f"{done.stderr.strip() or done.returncode}")


def _fill(folder: Path) -> None:
    """Writes one file until its filesystem has no byte left."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == 28, exc
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_full_results_folder_stops_the_sweep_in_one_line_and_resume_finishes_it(tmp_path):
    results = tmp_path / "results"
    _mount(results, "3m")
    try:
        # 20 reports: both trials must still be running when the folder fills (their runs end
        # FAILED or KILLED, none FINISHED), and the wait is for the later one to report twice;
        # the first may start up to 18 reports (9 s: a slow worker start on a loaded machine)
        # ahead of it and still be running.
        write_sweep(tmp_path, "full", num_samples="2", max_iterations="20", sleep="0.5",
                    search="{algorithm: random, seed: 0, points_to_evaluate: [{lr: 0.01}, {lr: 0.02}]}",
                    checkpoint_frequency="1")
        driver = cli("run", "sweeps/full.yaml", cwd=tmp_path, wait=False)
        try:
            deadline = time.monotonic() + 300
            while sum(int(s) >= 2 for s in sqlite_values(tmp_path / "mlflow.db", "collapsetune.step")) < 2:
                assert driver.poll() is None, driver.stdout.read()[-3000:]
                assert time.monotonic() < deadline, "2 trials did not report twice in 300 s"
                time.sleep(0.3)
            _fill(results)
            output, _ = driver.communicate(timeout=300)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, 9)
                driver.wait()
        (folder,) = [p for p in results.iterdir() if p.is_dir()]
        # 1: trials failed (on a run-time fault, not bad input); the sweep can be resumed.
        assert driver.returncode == 1, output[-4000:]
        errors = [line for line in output.splitlines() if line.startswith("collapsetune: error:")]
        assert len(errors) == 1, output[-4000:]
        assert str(folder) in errors[0] and "no space left" in errors[0].lower(), errors
        assert f"collapsetune resume {folder}" in errors[0], errors
        assert "EOFError" not in output, output[-4000:]
        client, runs = trial_runs(tmp_path, "full")
        parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
        assert parent.info.status == "KILLED", parent.info.status
        assert "no space left" in parent.data.tags.get("collapsetune.stopped", "").lower(), parent.data.tags
        assert "mlflow.note.content" in parent.data.tags  # the summary, though the atlas could not be drawn
        assert {r.info.status for r in runs} <= {"FAILED", "KILLED"}, [r.info.status for r in runs]

        # Space comes back: the same mount, grown.
        subprocess.run(["mount", "-o", "remount,size=64m", str(results)], check=True)
        out = cli("resume", str(folder), cwd=tmp_path)
        log = out.stdout + out.stderr
        assert out.returncode == 0, log[-4000:]
        client, runs = trial_runs(tmp_path, "full")
        assert len(runs) == 2
        for run in runs:
            for metric in ("val/loss", "train/loss", "collapse/unique_tokens"):
                steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
                assert steps == list(range(1, 21)), (run.data.tags["ray.trial_id"], metric, steps)
            assert run.info.status == "FINISHED", run.data.tags["ray.trial_id"]
        parent = client.get_run(parent.info.run_id)
        assert parent.info.status == "FINISHED"
        assert "collapsetune.stopped" not in parent.data.tags
        assert parent.data.tags.get("collapsetune.trials.healthy") == "2"
        assert "collapsetune.trials.error" not in parent.data.tags, parent.data.tags

        report = cli("report", str(folder), cwd=tmp_path)
        assert report.returncode == 0 and "2 healthy" in report.stdout, report.stdout
        assert "scheduler" not in report.stdout.split("best healthy")[0], report.stdout
    finally:
        subprocess.run(["umount", str(results)], check=True)
