"""benchmarks/resume_count.py: how it watches the MLflow store fill while the driver writes."""

from __future__ import annotations

import time

from benchmarks.resume_count import logged_values


def test_logged_values_counts_the_counted_metric_and_nothing_before_the_store_exists(tmp_path):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    assert logged_values(db) == 0 and not db.exists()  # read-only: it never creates the store
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.create_experiment("count", artifact_location=(tmp_path / "mlruns").as_uri())
    run_id = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("val/loss", 1.0 / s, now + s, s) for s in range(1, 4)]
                     + [Metric("train/loss", 1.0, now, 1)])
    assert logged_values(db) == 3
