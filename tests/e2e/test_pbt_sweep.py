"""A collapse-aware PBT sweep through the CLI: a collapsed trial is rescued (it takes another
trial's checkpoint and a perturbed lr) instead of stopped; MLflow shows its history as one
run; and a driver killed after the rescue resumes with nothing logged twice."""

from __future__ import annotations

import os
import signal
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.toy_sweep import cli, sqlite_values, write_sweep

EXPLOITS_TAG = "collapsetune.pbt.exploits"


@pytest.mark.slow
@pytest.mark.parametrize("wrapper", ["outside_wrapper:Toy", "outside_loop:train"])  # a class; a user's own loop
def test_pbt_rescues_a_collapsed_trial_and_resumes_after_a_driver_kill(tmp_path, wrapper):
    # The Toy collapses while lr > 0.05: the point lr 0.2 is marked collapsed at report 3.
    # perturbation_interval 1: every trial has a score (and so can be a donor) from report 1.
    write_sweep(tmp_path, "toy-pbt", wrapper, sleep="0.5", max_iterations="8",
                scheduler="{type: pbt, mutable: [lr], perturbation_interval: 1, resample_probability: 0}",
                mlflow='{tracking_uri: "sqlite:///mlflow.db"}', checkpoint_interval_s="1")
    driver = cli("run", "sweeps/toy-pbt.yaml", cwd=tmp_path, wait=False)
    try:
        deadline = time.monotonic() + 300
        while not sqlite_values(tmp_path / "mlflow.db", EXPLOITS_TAG):
            assert driver.poll() is None, "the sweep ended without a rescue:\n" + driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no rescue within 300 s"
            time.sleep(0.5)
        time.sleep(2)  # a report or two after the rescue, then the driver dies
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.wait()

    (results,) = list((tmp_path / "results").iterdir())
    out = cli("resume", str(results), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    # Ray's results: every trial finished. (Which reports its result.json holds is not
    # checked: the lines written after Ray's last sync before the SIGKILL are lost there, and
    # MLflow, written exactly once by the driver, is the record checked below.)
    finished = [f for f in results.glob("*/result.json") if '"done": true' in f.read_text()]
    assert len(finished) == 4

    # MLflow: one run per trial, steps 1..n with none twice, and the rescue listed once.
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy-pbt").experiment_id
    runs = client.search_runs([experiment], "tags.`ray.trial_id` != ''")
    assert sorted(r.data.tags["ray.trial_id"] for r in runs) == sorted({r.data.tags["ray.trial_id"] for r in runs})
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")]
        assert steps == list(range(1, len(steps) + 1)), f"steps missing or twice: {steps}"
    with_copies = [r for r in runs if EXPLOITS_TAG in r.data.tags]
    assert with_copies
    for run in with_copies:
        lines = run.data.tags[EXPLOITS_TAG].splitlines()
        assert len(lines) == len(set(lines)), lines
        history = client.get_metric_history(run.info.run_id, "config/lr")
        assert len({m.value for m in history}) >= 2  # lr over time: before and after the copy
    rescued = [r for r in with_copies if "after collapsed" in r.data.tags[EXPLOITS_TAG]]
    assert rescued, [r.data.tags[EXPLOITS_TAG] for r in with_copies]
    for run in rescued:
        assert client.get_metric_history(run.info.run_id, "pbt/donor_report")
