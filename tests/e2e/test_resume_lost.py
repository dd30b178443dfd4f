"""`collapsetune resume` of a sweep that nothing can restore (issue 22 item 4): after a driver
SIGKILL its MLflow runs are still RUNNING; when every Ray snapshot is unreadable, or Ray
cannot restore the one there is, `resume` must end them KILLED with the reason (the sweep can
never finish) and say so, not claim that nothing was changed. Real embedded Ray, real SQLite."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from toy_sweep import cli, sqlite_values, trial_runs, write_sweep


def _killed_mid_sweep(work: Path) -> Path:
    # Both trials must still be running at the kill (their runs RUNNING), but the wait is for
    # the later one to report twice: 40 reports, so the first may start up to 38 reports
    # (19 s: a slow worker start on a loaded machine) ahead and still not have finished. Free:
    # nothing is resumed, so no report beyond the kill is ever made.
    write_sweep(work, "lost", num_samples="2", max_iterations="40", sleep="0.5",
                search="{algorithm: random, seed: 0, points_to_evaluate: [{lr: 0.01}, {lr: 0.02}]}")
    driver = cli("run", "sweeps/lost.yaml", cwd=work, wait=False)
    try:
        deadline = time.monotonic() + 300
        while sum(int(s) >= 2 for s in sqlite_values(work / "mlflow.db", "collapsetune.step")) < 2:
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "2 trials did not report twice in 300 s"
            time.sleep(0.3)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait()
    (folder,) = (work / "results").iterdir()
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["every snapshot truncated", "searcher state unreadable"])
def test_resume_that_nothing_can_restore_ends_the_open_runs_killed_and_says_so(tmp_path, damage):
    folder = _killed_mid_sweep(tmp_path)
    client, runs = trial_runs(tmp_path, "lost")
    parent_id = runs[0].data.tags["mlflow.parentRunId"]
    assert {r.info.status for r in runs} | {client.get_run(parent_id).info.status} == {"RUNNING"}
    if damage == "every snapshot truncated":
        for state in folder.glob("experiment_state-*.json"):
            state.write_text(state.read_text()[:300])
    else:
        (searcher,) = folder.glob("basic-variant-state-*.json")
        searcher.write_bytes(os.urandom(2000))
        moved = tmp_path / "moved" / folder.name  # its runs are still found, by the launch's id
        moved.parent.mkdir()
        folder = folder.rename(moved)
    kept = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".driver.lock"}

    out = cli("resume", str(folder), cwd=tmp_path)
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("collapsetune:")]  # Ray may warn first
    assert str(folder) in line and "nothing was changed" not in line, line
    assert "open MLflow runs were ended KILLED" in line and "collapsetune.stopped" in line, line
    assert "Traceback" not in out.stdout + out.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in kept} == kept  # the folder as it was

    client, runs = trial_runs(tmp_path, "lost")
    for run in [*runs, client.get_run(parent_id)]:
        assert run.info.status == "KILLED", run.info.run_name
        assert run.data.tags["collapsetune.stopped"].startswith("resume could not restore the sweep: "), run.data.tags
