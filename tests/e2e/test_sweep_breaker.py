"""`stop_sweep_when:` through the real CLI: a sweep whose trials all collapse is ended by its
breaker, and nothing is left open or lost: every MLflow run ends FINISHED with each of its
reports once, and the summary, `report` and the parent run say why the sweep stopped."""

from __future__ import annotations

import json
import signal
import time

import pytest
from toy_sweep import assert_each_step_once, cli, kill_when, sqlite_values, trial_runs, write_sweep

REASON = "2 of 2 judged trials collapsed (1.00 > 0.5)"


def _breaker_sweep(tmp_path) -> None:
    """Trial A is healthy and slow; B and C collapse on report 3 (lr 0.2, grace 1 + patience
    2); two slots; the breaker trips at 2 of 2 judged trials collapsed."""
    write_sweep(tmp_path, "toy-breaker", config="{}", max_iterations="60", num_samples="6", max_concurrent="2",
                search_space="{lr: {choice: [0.2, 0.01]}, sleep: {choice: [0.0, 2.0]}}",
                search="{algorithm: random, seed: 0, points_to_evaluate: "
                       "[{lr: 0.01, sleep: 2.0}, {lr: 0.2, sleep: 0.0}, {lr: 0.2, sleep: 0.0}]}",
                stop_sweep_when="{collapsed_share_above: 0.5, after_trials: 2}",
                # A second, late rule (never holding: 4 tokens are not below 1) puts the report a
                # healthy trial is counted on at 41, past where the breaker trips: A is not counted.
                collapse="[{metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}, "
                         "{metric: collapse/unique_tokens, below: 1, patience: 2, grace: 40}]",
                mlflow=f"{{tracking_uri: 'sqlite:///{tmp_path / 'mlflow.db'}'}}")


@pytest.mark.slow
def test_breaker_ends_a_collapsing_sweep_and_every_run_with_it(tmp_path):
    # Trial A is healthy and slow (up to 120 s); B and C collapse on report 3 (lr 0.2,
    # grace 1 + patience 2). Two slots: A runs while B and then C collapse, which trips the
    # breaker (2 of 2 judged trials collapsed), so A is stopped with the sweep.
    _breaker_sweep(tmp_path)
    run = cli("run", "sweeps/toy-breaker.yaml", cwd=tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out  # a sweep stopped by its own rule is no error
    assert f"sweep stopped by stop_sweep_when: {REASON}" in out  # the progress line, as it happens
    assert f"the sweep was stopped by stop_sweep_when: {REASON}" in out  # the end summary
    assert "Widen the ranges of its anti-collapse knobs" in out

    (folder,) = (tmp_path / "results").iterdir()
    record = json.loads((folder / "sweep_stopped.json").read_text())
    assert record["reason"] == REASON
    reports, lrs = {}, {}  # trial id -> its training_iterations (the trial's own record), its lr
    for params in folder.glob("*/params.json"):
        trial_id = "_".join(params.parent.name.split("_")[1:3])  # Toy_<experiment>_<number>_...
        record_file = params.parent / "collapsetune_reports.jsonl"
        rows = [json.loads(line) for line in record_file.read_text().splitlines()] if record_file.exists() else []
        reports[trial_id] = [r["training_iteration"] for r in rows]
        lrs[trial_id] = json.loads(params.read_text())["lr"]
    # A, stopped mid-way (possibly before its first report: a busy machine). The list may also
    # hold C, which tripped the breaker: Tune can stop it with the rest before its own stop is
    # carried out; its verdict (collapsed) stands.
    (healthy,) = [t for t, lr in lrs.items() if lr == 0.01]
    assert healthy in record["trials"] and len(reports[healthy]) < 60, (record, reports)
    assert sum(steps == [1, 2, 3] for steps in reports.values()) == 2  # B and C
    assert sum(bool(steps) for steps in reports.values()) <= 3  # the breaker let no further trial report

    client, runs = trial_runs(tmp_path, "toy-breaker")
    assert_each_step_once(client, runs, trials=len(reports))  # every run FINISHED, steps 1..n once
    for r in runs:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "val/loss")]
        assert steps == reports[r.data.tags["ray.trial_id"]]  # nothing reported is missing from MLflow
    by_trial = {r.data.tags["ray.trial_id"]: r for r in runs}
    assert by_trial[healthy].data.tags["collapsetune.sweep_stopped"] == \
        f"stopped with the sweep (stop_sweep_when): {REASON}"
    assert sum(r.data.tags.get("collapse.status") == "collapsed" for r in runs) == 2
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    assert REASON in parent.data.tags["collapsetune.sweep_stopped"]
    assert "**Stopped early:** The sweep was stopped by stop" in parent.data.tags["mlflow.note.content"]
    assert "stopped with the sweep (stop_sweep_when)" in by_trial[healthy].data.tags["mlflow.note.content"]

    shown = cli("report", str(folder), cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "stopped with the sweep (stop_sweep_when) " in shown.stdout
    assert "cut by the scheduler" not in shown.stdout and "interrupted" not in shown.stdout
    assert f"the sweep was stopped by stop_sweep_when: {REASON}" in shown.stdout


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["SIGINT", "SIGKILL"])
def test_a_driver_stopped_right_after_the_breaker_trips_resumes_to_the_same_end(tmp_path, fault):
    # The sweep above, its driver Ctrl-C'd or killed as soon as MLflow has the second
    # collapse (the one that trips the breaker). `resume` ends it as the breaker did: every
    # run FINISHED with each report once, and no trial beyond those that ran before the trip.
    db = tmp_path / "mlflow.db"
    _breaker_sweep(tmp_path)
    driver = cli("run", "sweeps/toy-breaker.yaml", cwd=tmp_path, wait=False)

    def tripped() -> bool:
        return sqlite_values(db, "collapse.status").count("collapsed") >= 2

    if fault == "SIGINT":  # the sweep may have ended already (exit 0) or not (130): either way resume ends it
        while not tripped():
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            time.sleep(0.3)
        driver.send_signal(signal.SIGINT)
        interrupted, _ = driver.communicate(timeout=300)
        assert driver.returncode in (0, 130), interrupted[-3000:]
    else:
        kill_when(driver, tripped, "second collapse")
    (folder,) = (tmp_path / "results").iterdir()
    resumed = cli("resume", str(folder), cwd=tmp_path)
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:]
    assert f"the sweep was stopped by stop_sweep_when: {REASON}" in out, out[-3000:]

    reports = {}  # trial id -> its training_iterations (the trial's own record)
    for params in folder.glob("*/params.json"):
        record_file = params.parent / "collapsetune_reports.jsonl"
        rows = [json.loads(line) for line in record_file.read_text().splitlines()] if record_file.exists() else []
        reports["_".join(params.parent.name.split("_")[1:3])] = [r["training_iteration"] for r in rows]
    assert sum(bool(steps) for steps in reports.values()) <= 3, reports  # nothing ran past the trip
    client, runs = trial_runs(tmp_path, "toy-breaker")
    assert_each_step_once(client, runs, trials=len(runs))
    for r in runs:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "val/loss")]
        assert steps == list(range(1, max(reports[r.data.tags["ray.trial_id"]], default=0) + 1)), (steps, reports)
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    assert REASON in parent.data.tags["collapsetune.sweep_stopped"]
