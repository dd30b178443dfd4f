from __future__ import annotations

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from collapsetune.tracking._names import mlflow_key, param_key_problem

HOSTILE = [
    "m" * 300, "é" * 300, "a/" * 200, "../" * 100, "..x", "...", "/val/loss", "val/loss/", "a//b", "./a",
    "a/./b", "a/../b", "<svg onload=alert(4)>", "acc@1", "tab\there", "new\nline", "", " ", "~", "m" * 239 + "/",
    "m" * 238 + "/.", "x:y", "数据/损失" * 60,
]


def test_every_cleaned_name_is_one_mlflow_takes_and_they_stay_distinct(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("names")).info.run_id
    keys = [mlflow_key(name) for name in HOSTILE]
    strict = [mlflow_key(name, strict=True) for name in HOSTILE]
    # One batch: MLflow refuses the whole of it if any one name is not legal.
    client.log_batch(run, metrics=[Metric(k, 1.0, 0, 0) for k in dict.fromkeys(keys)],
                     params=[Param(k, "1") for k in dict.fromkeys(strict)])
    assert set(client.get_run(run).data.metrics) == set(keys)
    assert set(client.get_run(run).data.params) == set(strict)
    assert all(len(k) <= 250 for k in keys + strict)
    assert all(k.isascii() for k in strict)
    assert len(set(keys[:3])) == 3 and mlflow_key("m" * 300) != mlflow_key("m" * 301)


def test_sweep_file_check_passes_exactly_the_param_names_logged_unchanged(tmp_path):
    # `validate` refuses a param name before the sweep starts; the callback logs the names it
    # passes as they are. One rule, so a name the check passes is one MLflow takes unchanged.
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("names")).info.run_id
    for name in [*HOSTILE, ".", "a/.", "lr", "model.d_model", "val/loss", "a b:c", "é"]:
        assert (param_key_problem(name) is None) == (mlflow_key(name) == name), name
        if param_key_problem(name) is None:
            client.log_param(run, name, "1")  # MLflow takes it
