from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial

from collapsetune.tracking._catchup import steps
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


def _first_driver(tmp_path: Path, reports: int) -> tuple[_Driver, Trial]:
    """A driver that started trial "a" and logged its reports 1 to `reports` (val/loss 10 - n)."""
    first = _Driver(tmp_path)
    a = _stored_trial(tmp_path)
    first.tracking.on_trial_start(0, [], a)
    for number in range(1, reports + 1):
        first.report(a, _report(number, 10.0 - number))
    return first, a


def _run(client: MlflowClient):
    """Trial a's run."""
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id], "tags.`ray.trial_id` = 'a'")
    return run


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
    first, a = _first_driver(tmp_path, 3)
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
    run = _run(client)
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
    first, a = _first_driver(tmp_path, 3)
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
    run = _run(client)
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert history == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 5.0), (5, 4.5), (6, 4.0)]
    assert run.data.tags["collapsetune.pbt.exploits"] == "step 4: took the checkpoint of trial d at its report 3"


def test_a_copy_lost_after_a_replay_lands_on_the_step_the_run_gives_it(tmp_path):
    # Reports 1-5 are in MLflow. A driver restored the trial at report 3, it made report 4
    # again (passed over: MLflow has step 4), and PBT copied d's report 2 in: the run gives the
    # copy step 6, not 5. That driver was killed with the copy's report waiting; the next one
    # resumes the trial from its checkpoint at the copy.
    first, a = _first_driver(tmp_path, 5)
    snapshot = first.tracking.get_state()
    for row in (_report(4, 6.0), _report(3, 4.0, **{"pbt.donor": "d", "pbt/donor_report": 2})):
        first.records.on_trial_result(0, [], a, {**row, "trial_id": "a"})
    first.records.on_experiment_end([a])

    resumed = _Driver(tmp_path, first.tracking, snapshot)
    resumed.tracking.on_trial_restore(0, [], a)
    for number, loss in ((4, 3.5), (5, 3.0)):
        resumed.report(a, _report(number, loss))
    resumed.end(a)

    client = MlflowClient(resumed.uri)
    run = _run(client)
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert history == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0), (5, 5.0), (6, 4.0), (7, 3.5), (8, 3.0)]
    assert run.data.tags["collapsetune.pbt.exploits"] == "step 6: took the checkpoint of trial d at its report 2"
    assert run.data.tags["collapsetune.step_offset"] == "3"


def test_a_lost_report_lands_when_the_resumed_trial_ends_without_reporting_again(tmp_path):
    first, a = _first_driver(tmp_path, 1)
    snapshot = first.tracking.get_state()
    first.records.on_trial_result(0, [], a, {**_report(2, 8.0), "trial_id": "a"})  # never written to MLflow
    first.records.on_experiment_end([a])

    resumed = _Driver(tmp_path, first.tracking, snapshot)
    resumed.tracking.on_trial_restore(0, [], a)
    resumed.end(a)

    client = MlflowClient(resumed.uri)
    run = _run(client)
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss")) == [1, 2]


def test_steps_follow_the_runs_rules_over_the_record():
    def row(number, copy=None):
        return {"training_iteration": number, **({"pbt.donor": copy[0], "pbt/donor_report": copy[1]} if copy else {})}

    # Reports 1-5; restored at report 3 (4, 5 made again); PBT copies d's report 2 in; the copy
    # is restored again after a crash (the same copy: no new step); then e's report 2.
    rows = [row(t) for t in (1, 2, 3, 4, 5, 4, 5)]
    rows += [row(3, ("d", 2)), row(4), row(3, ("d", 2)), row(4), row(5), row(3, ("e", 2))]
    assert [(r["training_iteration"], step, offset) for r, step, offset in steps(rows)] == [
        (1, 1, 0), (2, 2, 0), (3, 3, 0), (4, 4, 0), (5, 5, 0), (3, 6, 3), (4, 7, 3), (5, 8, 3), (3, 9, 6)]


def test_reports_after_a_copy_whose_tags_never_landed_keep_their_steps_after_resume(tmp_path):
    # MLflow's SQL store writes a batch's metrics and its tags in separate transactions: a
    # driver killed between them left the copy's report at step 4 without the run's new offset
    # tag (d's report 1 copied in: Ray numbers the copy's report 2, so the offset is 2). The
    # resumed trial goes on from its checkpoint at that report; the old offset would put its
    # reports 3 and 4 on steps 3 and 4, taken as logged.
    first, a = _first_driver(tmp_path, 3)
    first.report(a, _report(2, 5.0, **{"pbt.donor": "d", "pbt/donor_report": 1}))
    snapshot = first.tracking.get_state()
    client = MlflowClient(first.uri)
    run = _run(client)
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


@pytest.mark.parametrize("damage", [
    "not json at all\n[1, 2]\n\"a string\"\n",  # junk lines
    '{"training_iteration": 3, "val/loss": 7.0}\n',  # report 3 recorded twice
    '{"training_iteration": Infinity, "val/loss": 1.0}\n',  # a number no step can be
    '{"training_iteration": NaN, "val/loss": 1.0}\n{"training_iteration": "x", "val/loss": 1.0}\n',
    '{"training_iteration": 1000000000, "val/loss": 1.0}\n',  # a jump past every report the trial makes
    '{"training_iteration": 5, "val/loss": 1.0}\n{"training_iteration": 4, "val/loss": 1.0}\n',  # out of order
    '{"training_iteration": 4, "val/lo',  # cut off mid-line
])
def test_a_damaged_record_neither_crashes_the_resumed_driver_nor_logs_a_step_twice_or_invented(tmp_path, damage):
    # Reports 1-2 are in MLflow, report 3 only in the trial's record, then the record is
    # damaged. The resumed trial, restored from its checkpoint at report 2, makes 3-6 again.
    first = _Driver(tmp_path)
    a = _stored_trial(tmp_path)
    first.tracking.on_trial_start(0, [], a)
    for number in (1, 2):
        first.report(a, _report(number, 10.0 - number))
    snapshot = first.tracking.get_state()
    first.records.on_trial_result(0, [], a, {**_report(3, 7.0), "trial_id": "a"})
    first.records.on_experiment_end([a])
    (record,) = (tmp_path / "results").rglob("collapsetune_reports.jsonl")
    with open(record, "a") as f:
        f.write(damage)

    resumed = _Driver(tmp_path, first.tracking, snapshot)
    resumed.tracking.on_trial_restore(0, [], a)
    for number in (3, 4, 5, 6):
        resumed.report(a, _report(number, 10.0 - number))
    a.set_status(Trial.TERMINATED)
    resumed.end(a)

    client = MlflowClient(resumed.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id], "tags.`ray.trial_id` = 'a'")
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert history == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0), (5, 5.0), (6, 4.0)]
    assert run.info.status == "FINISHED"
