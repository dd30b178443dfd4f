from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial

from collapsetune.catchup import course
from collapsetune.records import TrialRecords
from collapsetune.tracking import MlflowTracking


class _Driver:
    """The two callbacks of a driver that matter here, in launch's order: the trial's record,
    then MLflow's (a SQLite store in tmp_path)."""

    def __init__(self, tmp_path: Path, tracking: MlflowTracking | None = None, snapshot: dict | None = None):
        self.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        if tracking is None:
            tracking = MlflowTracking(self.uri, "exp", str(tmp_path / "results" / "sweep-1"))
        else:  # a resumed driver: back from Tune's pickle, given the snapshot's state
            tracking = pickle.loads(pickle.dumps(tracking))
            tracking.set_state(snapshot)
        tracking.setup()
        self.tracking, self.records = tracking, TrialRecords()

    def report(self, trial: Trial, row: dict) -> None:
        for callback in (self.records, self.tracking):
            callback.on_trial_result(0, [], trial, {**row, "trial_id": trial.trial_id, "config": dict(trial.config)})

    def end(self, trial: Trial) -> None:
        for callback in (self.records, self.tracking):
            callback.on_trial_complete(0, [], trial)
            callback.on_experiment_end([trial])


def _stored_trial(tmp_path: Path) -> Trial:
    """Trial "a" with a folder in the results folder, where its record is written."""
    storage = StorageContext(storage_path=str(tmp_path / "results"), experiment_dir_name="sweep-1",
                             trial_dir_name="trial_a")
    return Trial("__fake", trial_id="a", stub=True, config={"lr": 0.1}, storage=storage)


def _report(number: int, loss: float, **more) -> dict:
    return {"training_iteration": number, "val/loss": loss, "objective": loss, "collapse.status": "healthy",
            "timestamp": 1000 + int(100 * loss), **more}


@pytest.mark.parametrize("donor_report, restored_at", [
    (3, 4),  # issue 22's HF run: the copy's first report lost, the trial goes on from its checkpoint at it
    (3, 5),  # ... from its checkpoint one report later: two reports lost
    (1, 3),  # the donor's report older than the trial's: the run's offset changes at the copy
])
def test_a_pbt_copy_report_lost_in_a_driver_kill_lands_once_after_resume(tmp_path, donor_report, restored_at):
    # Trial "a" reports 1-3 (in MLflow at the snapshot), then PBT copies trial d's checkpoint
    # at its report `donor_report` into it. The driver records the copy's first report, and
    # those after it up to the trial's checkpoint at report `restored_at`, but is SIGKILLed
    # while they wait in the MLflow writer.
    first = _Driver(tmp_path)
    a = _stored_trial(tmp_path)
    first.tracking.on_trial_start(0, [], a)
    for number in (1, 2, 3):
        first.report(a, _report(number, 10.0 - number))
    snapshot = first.tracking.get_state()
    course_after = [_report(donor_report + 1 + k, 5.0 - k / 2, **({"pbt.donor": "d", "pbt/donor_report": donor_report}
                                                                   if k == 0 else {})) for k in range(5)]
    lost = [row for row in course_after if row["training_iteration"] <= restored_at]
    for row in lost:
        first.records.on_trial_result(0, [], a, {**row, "trial_id": "a"})  # recorded; never written to MLflow
    first.records.on_experiment_end([a])

    # The resumed driver: Ray restores "a" from its own checkpoint at `restored_at`, after the copy.
    resumed = _Driver(tmp_path, first.tracking, snapshot)
    resumed.tracking.on_trial_restore(0, [], a)
    for row in course_after[len(lost):]:
        resumed.report(a, row)
    resumed.end(a)

    client = MlflowClient(resumed.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id], "tags.`ray.trial_id` = 'a'")
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert history == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 5.0), (5, 4.5), (6, 4.0), (7, 3.5), (8, 3.0)]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "pbt/donor_report")] == [4]
    assert run.data.tags["collapsetune.pbt.exploits"] == f"step 4: took the checkpoint of trial d at its report {donor_report}"
    assert run.data.tags["collapsetune.step_offset"] == str(3 - donor_report)
    assert run.data.tags["collapsetune.step"] == "8"


@pytest.mark.parametrize("restored", ["donor's checkpoint", "own checkpoint before the copy"])
def test_a_resumed_trial_that_makes_its_reports_again_logs_each_once(tmp_path, restored):
    # Ray makes the lost reports again itself: the trial restored from the checkpoint the
    # snapshot names (the donor's, still there) replays the copy; or one restored from before
    # the copy replays report 3 (already in MLflow) and PBT makes the same copy again.
    first = _Driver(tmp_path)
    a = _stored_trial(tmp_path)
    first.tracking.on_trial_start(0, [], a)
    for number in (1, 2, 3):
        first.report(a, _report(number, 10.0 - number))
    snapshot = first.tracking.get_state()
    copy = _report(4, 5.0, **{"pbt.donor": "d", "pbt/donor_report": 3})
    first.records.on_trial_result(0, [], a, {**copy, "trial_id": "a"})
    first.records.on_experiment_end([a])

    resumed = _Driver(tmp_path, first.tracking, snapshot)
    resumed.tracking.on_trial_restore(0, [], a)
    again = [copy] if restored == "donor's checkpoint" else [_report(3, 7.0), copy]
    for row in again + [_report(5, 4.5), _report(6, 4.0)]:
        resumed.report(a, row)
    resumed.end(a)

    client = MlflowClient(resumed.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id], "tags.`ray.trial_id` = 'a'")
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert history == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 5.0), (5, 4.5), (6, 4.0)]
    assert run.data.tags["collapsetune.pbt.exploits"] == "step 4: took the checkpoint of trial d at its report 3"


def _numbers(rows: list[dict] | None) -> list[int] | None:
    return None if rows is None else [row["training_iteration"] for row in rows]


def test_course_follows_copies_and_skips_dead_ends():
    own = [{"training_iteration": t} for t in (1, 2, 3, 4, 5)]
    copy = {"training_iteration": 3, "pbt.donor": "d", "pbt/donor_report": 2}
    after = [{"training_iteration": t} for t in (4, 5)]
    # restored at report 2 and replayed 3-5, then PBT copied d's report 2 in, and the copy was
    # restored again after a crash (the same copy twice counts once)
    rows = own + own[2:] + [copy] + after + [copy] + after[:1]
    assert _numbers(course(rows, {"training_iteration": 5})) == [1, 2, 3, 4, 5, 3, 4, 5]
    assert _numbers(course(rows, copy)) == [1, 2, 3, 4, 5, 3]
    assert course(own[2:], {"training_iteration": 4}) is None  # the record does not reach report 1
    assert _numbers(course(rows + [{"training_iteration": 5}], {"training_iteration": 5})) == [1, 2, 3, 4, 5, 3, 4, 5]


def test_reports_after_a_copy_whose_tags_never_landed_keep_their_steps_after_resume(tmp_path):
    # MLflow's SQL store writes a batch's metrics and its tags in separate transactions: a
    # driver killed between them left the copy's report at step 4 without the run's new offset
    # tag (d's report 1 copied in: Ray numbers the copy's report 2, so the offset is 2). The
    # resumed trial goes on from its checkpoint at that report; the old offset would put its
    # reports 3 and 4 on steps 3 and 4, taken as logged.
    first = _Driver(tmp_path)
    a = _stored_trial(tmp_path)
    first.tracking.on_trial_start(0, [], a)
    for number in (1, 2, 3):
        first.report(a, _report(number, 10.0 - number))
    first.report(a, _report(2, 5.0, **{"pbt.donor": "d", "pbt/donor_report": 1}))
    snapshot = first.tracking.get_state()
    client = MlflowClient(first.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id], "tags.`ray.trial_id` = 'a'")
    for tag in ("collapsetune.step_offset", "collapsetune.pbt.exploits"):
        client.delete_tag(run.info.run_id, tag)
    client.set_tag(run.info.run_id, "collapsetune.step", "3")

    resumed = _Driver(tmp_path, first.tracking, snapshot)
    resumed.tracking.on_trial_restore(0, [], a)
    for number, loss in ((3, 4.5), (4, 4.0)):
        resumed.report(a, _report(number, loss))
    resumed.end(a)

    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert history == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 5.0), (5, 4.5), (6, 4.0)]
