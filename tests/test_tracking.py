from __future__ import annotations

import pickle

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial

from collapsetune.tracking import ORPHAN_TAG, MlflowTracking


def _trial(trial_id: str) -> Trial:
    return Trial("__fake", trial_id=trial_id, stub=True, config={"lr": 0.1, "nested": {"k": 2}})


def test_runs_are_found_again_not_duplicated_and_orphans_go_to_the_trash(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MlflowTracking(uri, "exp", str(tmp_path / "results" / "sweep-1"))
    first.setup()
    a, b, lost = _trial("a"), _trial("b"), _trial("lost")
    for trial in (a, b, lost):
        first.on_trial_start(0, [], trial)
    first.on_trial_result(0, [], a, {"training_iteration": 1, "val/loss": 2.0, "collapse.status": "healthy"})

    # A resumed driver: the callback comes back from Tune's pickle with no live state, and
    # Ray no longer knows the trial that started after its last snapshot.
    resumed = pickle.loads(pickle.dumps(first))
    resumed.setup()
    resumed.on_trial_restore(0, [], a)
    assert resumed.parent_run_id == first.parent_run_id
    resumed.on_trial_result(0, [], a, {"training_iteration": 1, "val/loss": 9.0})  # already logged
    resumed.on_trial_result(0, [], a, {"training_iteration": 2, "val/loss": 1.5})
    resumed.on_experiment_end([a, b])

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("exp").experiment_id
    live = client.search_runs([experiment], "tags.`ray.trial_id` != ''")
    assert sorted(r.data.tags["ray.trial_id"] for r in live) == ["a", "b"]
    run_a = next(r for r in live if r.data.tags["ray.trial_id"] == "a")
    assert [(m.step, m.value) for m in client.get_metric_history(run_a.info.run_id, "val/loss")] == [
        (1, 2.0), (2, 1.5)
    ]
    assert run_a.data.params == {"lr": "0.1", "nested.k": "2"}
    trashed = [r for r in client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)]
    assert [r.data.tags["ray.trial_id"] for r in trashed] == ["lost"]
    assert "driver crash" in trashed[0].data.tags[ORPHAN_TAG] and trashed[0].info.status == "KILLED"


def test_verdict_tags_follow_the_verdict(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = MlflowTracking(uri, "exp", str(tmp_path / "results" / "sweep-1"))
    tracking.setup()
    trial = _trial("a")
    tracking.on_trial_start(0, [], trial)
    client = MlflowClient(uri)

    def tags() -> tuple[str, str, str]:
        run = client.get_run(tracking._runs["a"]).data.tags
        return run["collapse.status"], run["collapse.reason"], run["collapse.iteration"]

    healthy = {"collapse.status": "healthy", "collapse.reason": "", "collapse.iteration": 0}
    tracking.on_trial_result(0, [], trial, {"training_iteration": 1, "val/loss": 2.0, **healthy})
    assert tags() == ("healthy", "", "0")
    tracking.on_trial_result(0, [], trial, {"training_iteration": 2, "val/loss": 1.9, **healthy})
    collapsed = {"collapse.status": "collapsed", "collapse.reason": "collapse/unique_tokens=3 < 20 for 2 reports",
                 "collapse.iteration": 3}
    tracking.on_trial_result(0, [], trial, {"training_iteration": 3, "val/loss": 1.8, **collapsed})
    assert tags() == ("collapsed", "collapse/unique_tokens=3 < 20 for 2 reports", "3")
    assert client.get_run(tracking._runs["a"]).data.tags["collapsetune.step"] == "3"


def test_unusable_tracking_store_fails_before_a_trial_trains(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    tracking = MlflowTracking(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}", "exp", str(tmp_path / "r"))
    tracking.setup()  # opens the store in the background
    with pytest.raises(Exception, match="File exists"):
        tracking.on_trial_start(0, [], _trial("a"))  # Tune calls this before the trial's first step
