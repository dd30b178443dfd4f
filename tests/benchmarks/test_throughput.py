"""benchmarks/throughput.py: how it sizes a cell, its steady-state rate, and its count of
what reached MLflow (the check behind "no result is lost")."""

from __future__ import annotations

import time

import pytest

from benchmarks.throughput import count_logged, reports_for, steady_rate


def test_reports_fill_the_ideal_wall_unless_the_sweep_would_be_too_large():
    assert reports_for(8, 20, ideal_s=20, max_results=8000) == 400
    assert reports_for(32, 20, ideal_s=20, max_results=8000) == 250  # capped: 32 x 250 = 8000 results
    assert reports_for(32, 1, ideal_s=20, max_results=8000) == 20
    assert reports_for(4000, 1, ideal_s=20, max_results=8000) == 5  # never fewer than 5


def test_steady_rate_counts_only_while_every_trial_runs():
    # a: reports at 0..10 s, b: at 5..15 s; both run from 5 to 10 s: b's 6-10 and a's 6-10 inside.
    reports = [("a", float(t)) for t in range(11)] + [("b", float(t)) for t in range(5, 16)]
    rate, window = steady_rate(reports)
    assert window == 5.0 and rate == pytest.approx(10 / 5.0)
    rate, window = steady_rate([("a", 0.0), ("a", 1.0), ("b", 2.0), ("b", 3.0)])  # a ended before b began
    assert rate is None and window == 0.0


def test_count_finds_every_step_and_catches_a_lost_or_doubled_one(tmp_path):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("count", artifact_location=(tmp_path / "mlruns").as_uri())
    now = int(time.time() * 1000)

    def run(trial: str, steps: list[int]) -> None:
        run_id = client.create_run(experiment, tags={"ray.trial_id": trial}).info.run_id
        # each value its own timestamp: MLflow keeps one copy of an identical (step, time, value)
        client.log_batch(run_id, metrics=[Metric("val/loss", 1.0 / s, now + i, s) for i, s in enumerate(steps)])

    client.create_run(experiment)  # the parent run: no trial id, not counted
    run("a", [1, 2, 3, 4])
    run("b", [1, 2, 3, 4])
    whole = count_logged(uri, "count", trials=2, reports=4)
    assert whole == {"mlflow_runs": 2, "mlflow_runs_complete": 2, "mlflow_values": 8,
                     "mlflow_values_expected": 8, "no_result_lost": True}
    run("c", [1, 2, 4])  # step 3 lost
    run("d", [1, 2, 2, 3, 4])  # step 2 twice (a report logged again, later)
    broken = count_logged(uri, "count", trials=4, reports=4)
    assert broken["mlflow_runs_complete"] == 2 and broken["mlflow_values"] == 16
    assert not broken["no_result_lost"]


@pytest.mark.slow
def test_quick_sweep_through_collapsetune_logs_every_report(tmp_path):
    """The benchmark's MLflow runner end to end, small: 4 trials x 5 reports at 10/s."""
    import ray

    from benchmarks.throughput import collapsetune_sweep

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        row = collapsetune_sweep(4, 5, 10.0, 0.05, tmp_path / "sweep", mlflow=True)
    finally:
        ray.shutdown()  # the Ray this test started
    assert row["results"] == row["expected_results"] == 20 and row["errors"] == 0
    assert row["no_result_lost"] and row["mlflow_runs_complete"] == 4
    assert row["report_batches"] >= 1 and row["log_batch_ms_median"] > 0
