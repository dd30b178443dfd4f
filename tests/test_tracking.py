from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest
from mlflow.entities import Metric, RunTag, ViewType
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial

import collapsetune
from collapsetune.escape import markdown
from collapsetune.tracking import ORPHAN_TAG, RENAMED_PREFIX, SAMPLES_FILE, MlflowTracking, _batches


def _trial(trial_id: str) -> Trial:
    return Trial("__fake", trial_id=trial_id, stub=True, config={"lr": 0.1, "nested": {"k": 2}})


def _runs(uri: str, view=ViewType.ACTIVE_ONLY) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("exp").experiment_id
    return client.search_runs([experiment], "tags.`ray.trial_id` != ''", run_view_type=view)


def _started(tmp_path: Path) -> tuple[str, MlflowTracking]:
    """A SQLite store in tmp_path and the callback set up on it, as Tune sets it up."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = MlflowTracking(uri, "exp", str(tmp_path / "results" / "sweep-1"))
    tracking.setup()
    return uri, tracking


def _resumed(tracking: MlflowTracking, snapshot: dict | None) -> MlflowTracking:
    """The callback of a resumed driver: back from Tune's pickle with no live state, then
    handed the state saved with the snapshot it resumes from (None: no readable snapshot)."""
    resumed = pickle.loads(pickle.dumps(tracking))
    if snapshot is not None:
        resumed.set_state(snapshot)
    resumed.setup()
    return resumed


def test_resume_continues_runs_and_trashes_only_runs_the_snapshot_never_knew(tmp_path):
    uri, first = _started(tmp_path)
    a, b, lost = _trial("a"), _trial("b"), _trial("lost")
    for trial in (a, b):
        first.on_trial_start(0, [], trial)
    first.on_trial_result(0, [], a, {"training_iteration": 1, "val/loss": 2.0, "collapse.status": "healthy"})
    snapshot = first.get_state()  # Tune saves this with its experiment snapshot
    first.on_trial_start(0, [], lost)  # started after the snapshot: Ray will not know it
    first.get_state()

    # A resumed driver: the callback comes back from Tune's pickle with no live state, then
    # Tune hands it the state saved with the snapshot it resumes from.
    resumed = _resumed(first, snapshot)
    resumed.on_trial_restore(0, [], a)
    resumed.on_trial_result(0, [], a, {"training_iteration": 1, "val/loss": 9.0})  # already logged
    resumed.on_trial_result(0, [], a, {"training_iteration": 2, "val/loss": 1.5})
    resumed.on_experiment_end([a, b])
    assert resumed.parent_run_id == first.parent_run_id

    client = MlflowClient(uri)
    live = _runs(uri)
    assert sorted(r.data.tags["ray.trial_id"] for r in live) == ["a", "b"]
    run_a = next(r for r in live if r.data.tags["ray.trial_id"] == "a")
    assert [(m.step, m.value) for m in client.get_metric_history(run_a.info.run_id, "val/loss")] == [
        (1, 2.0), (2, 1.5)
    ]
    assert run_a.data.params == {"lr": "0.1", "nested.k": "2"}
    trashed = _runs(uri, ViewType.DELETED_ONLY)
    assert [r.data.tags["ray.trial_id"] for r in trashed] == ["lost"]
    assert "driver crash" in trashed[0].data.tags[ORPHAN_TAG] and trashed[0].info.status == "KILLED"


def test_resume_without_a_readable_snapshot_trashes_nothing(tmp_path):
    # A truncated experiment state: Ray restores no trial it knew. Nothing says which runs
    # are orphans, so every run stays where it is.
    uri, first = _started(tmp_path)
    for trial_id in ("a", "b"):
        first.on_trial_start(0, [], _trial(trial_id))
    first.on_experiment_end([])
    resumed = _resumed(first, None)
    resumed.on_experiment_end([_trial("new")])
    assert sorted(r.data.tags["ray.trial_id"] for r in _runs(uri)) == ["a", "b"]
    assert _runs(uri, ViewType.DELETED_ONLY) == []


def test_verdict_tags_follow_the_verdict(tmp_path):
    uri, tracking = _started(tmp_path)
    trial = _trial("a")
    tracking.on_trial_start(0, [], trial)
    client = MlflowClient(uri)

    def tags() -> tuple[str, str | None, str]:
        tracking.get_state()  # flushes the writer
        run = client.get_run(tracking._runs["a"]).data.tags
        return run["collapse.status"], run.get("collapse.reason"), run["collapse.iteration"]

    healthy = {"collapse.status": "healthy", "collapse.reason": "", "collapse.iteration": 0}
    tracking.on_trial_result(0, [], trial, {"training_iteration": 1, "val/loss": 2.0, **healthy})
    assert tags() == ("healthy", None, "0")  # no empty reason on a healthy run
    tracking.on_trial_result(0, [], trial, {"training_iteration": 2, "val/loss": 1.9, **healthy})
    collapsed = {"collapse.status": "collapsed", "collapse.reason": "collapse/unique_tokens=3 < 20 for 2 reports",
                 "collapse.iteration": 3}
    tracking.on_trial_result(0, [], trial, {"training_iteration": 3, "val/loss": 1.8, **collapsed})
    assert tags() == ("collapsed", "collapse/unique_tokens=3 < 20 for 2 reports", "3")
    assert client.get_run(tracking._runs["a"]).data.tags["collapsetune.step"] == "3"


def test_a_runs_name_carries_its_verdict_and_the_status_tag_filters_runs(tmp_path):
    # MLflow's runs list always shows a run's name; the collapse.* tags hide behind "Show more
    # columns". The verdict goes into the name when it turns, and the tags stay for filtering.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = "name: exp\nobjective: {metric: val/loss, mode: min}\nsearch_space:\n  lr: {loguniform: [1.0e-4, 0.1]}\n"
    tracking = MlflowTracking(uri, "exp", str(tmp_path / "results" / "sweep-1"), sweep_yaml=sweep)
    tracking.setup()
    good, bad = _trial("a1b2c_00001"), _trial("a1b2c_00002")
    for trial in (good, bad):
        tracking.on_trial_start(0, [], trial)
    tracking.on_trial_result(0, [], good, {"training_iteration": 1, "collapse.status": "healthy",
                                           "collapse.reason": ""})
    tracking.on_trial_result(0, [], bad, {"training_iteration": 1, "collapse.status": "inconclusive"})
    tracking.on_trial_result(0, [], bad, {"training_iteration": 2, "collapse.status": "collapsed",
                                          "collapse.reason": "collapse/unique_tokens=3 < 20 for 2 reports",
                                          "collapse.iteration": 2})
    tracking.get_state()
    client = MlflowClient(uri)
    names = {r.data.tags["ray.trial_id"]: r.info.run_name for r in _runs(uri)}
    assert names == {"a1b2c_00001": "healthy 00001 · lr=0.1", "a1b2c_00002": "collapsed 00002 · lr=0.1"}
    experiment = client.get_experiment_by_name("exp").experiment_id
    # The filter the README shows: a dotted tag name goes in backticks.
    (found,) = client.search_runs([experiment], "tags.`collapse.status` = 'collapsed'")
    assert found.data.tags["ray.trial_id"] == "a1b2c_00002"
    assert "collapse.reason" not in client.get_run(tracking._runs["a1b2c_00001"]).data.tags


def test_samples_md_is_one_line_per_sample_for_a_collapsed_trial(tmp_path):
    # The built-in LM's samples: `prompt ||| continuation`, separated by `---` lines; a
    # collapsed LM's continuations are mostly line breaks, which made samples.md thousands of
    # lines long, unreadable in MLflow's artifact viewer.
    from collapsetune.tracking import SAMPLE_MAX

    uri, tracking = _started(tmp_path)
    trial = _trial("a")
    tracking.on_trial_start(0, [], trial)
    collapsed = "\n---\n".join(f"prompt {i} ||| the\n\n\nthe\n\t the" + "\n" * 40 for i in range(8))
    long_one = "p ||| " + "word " * 500
    tracking.on_trial_result(0, [], trial, {"training_iteration": 1, "samples": collapsed})
    tracking.on_trial_result(0, [], trial, {"training_iteration": 2, "samples": long_one,
                                            "collapse.status": "collapsed", "collapse.reason": "r"})
    tracking.on_trial_complete(0, [], trial)
    tracking.on_experiment_end([trial])
    (tmp_path / "dl").mkdir()
    body = Path(MlflowClient(uri).download_artifacts(tracking._runs["a"], SAMPLES_FILE, str(tmp_path / "dl")))
    lines = body.read_text().splitlines()
    samples = [line for line in lines if line.startswith("- ")]
    assert samples[:8] == [f"- prompt {i} ||| the ⏎ ⏎ ⏎ the ⏎ the" for i in range(8)]
    assert len(samples) == 9 and samples[8].endswith("characters)") and len(samples[8]) < SAMPLE_MAX + 40
    assert "```" not in body.read_text() and len(lines) < 30


def test_unusable_tracking_store_fails_before_a_trial_trains(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    tracking = MlflowTracking(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}", "exp", str(tmp_path / "r"))
    tracking.setup()  # opens the store in the background
    with pytest.raises(Exception, match="File exists"):
        tracking.on_trial_start(0, [], _trial("a"))  # Tune calls this before the trial's first step


def test_names_mlflow_refuses_are_renamed_and_said_so(tmp_path):
    uri, tracking = _started(tmp_path)
    trials = [_trial("a"), _trial("b")]
    for trial in trials:
        tracking.on_trial_start(0, [], trial)
        for step in (1, 2):
            tracking.on_trial_result(0, [], trial, {"training_iteration": step, "acc@1": 0.5 * step,
                                                    "weird metric@!": 1.0, "val/loss": 2.0})
        tracking.on_trial_complete(0, [], trial)
        trial.status = Trial.TERMINATED
    tracking.on_experiment_end(trials)
    client = MlflowClient(uri)
    for run in _runs(uri):
        assert [m.value for m in client.get_metric_history(run.info.run_id, "acc_1")] == [0.5, 1.0]
        assert run.data.metrics["weird metric__"] == 1.0
        assert run.data.tags[RENAMED_PREFIX + "acc_1"] == "acc@1"
        assert run.data.tags[RENAMED_PREFIX + "weird metric__"] == "weird metric@!"
        assert run.info.status == "FINISHED"


def test_a_write_mlflow_refuses_is_dropped_and_counted_not_raised(tmp_path):
    uri, tracking = _started(tmp_path)
    trial = _trial("a")
    tracking.on_trial_start(0, [], trial)
    client = MlflowClient(uri)
    client.delete_run(tracking._runs["a"])  # someone deletes the run mid-sweep
    tracking.on_trial_result(0, [], trial, {"training_iteration": 1, "val/loss": 2.0})
    tracking.on_trial_complete(0, [], trial)
    tracking.on_experiment_end([trial])  # no exception reaches Tune
    parent = client.get_run(tracking.parent_run_id)
    assert "write(s) failed (log_batch failed and was dropped" in parent.data.tags["collapsetune.failed_writes"]


def test_an_interrupted_sweep_leaves_its_runs_killed_not_finished(tmp_path):
    uri, tracking = _started(tmp_path)
    done, running = _trial("done"), _trial("running")
    for trial in (done, running):
        tracking.on_trial_start(0, [], trial)
    tracking.on_trial_complete(0, [], done)
    done.status, running.status = Trial.TERMINATED, Trial.RUNNING
    tracking.on_experiment_end([done, running])  # Ctrl-C: Tune ends the experiment early
    client = MlflowClient(uri)
    assert client.get_run(tracking._runs["done"]).info.status == "FINISHED"
    assert client.get_run(tracking._runs["running"]).info.status == "KILLED"
    assert client.get_run(tracking.parent_run_id).info.status == "KILLED"


def test_samples_are_one_file_per_trial_that_a_resume_continues(tmp_path):
    uri, tracking = _started(tmp_path)
    trial = _trial("a")
    tracking.on_trial_start(0, [], trial)
    tracking.on_trial_result(0, [], trial, {"training_iteration": 1, "samples": "the cat sat"})
    snapshot = tracking.get_state()
    resumed = _resumed(tracking, snapshot)
    resumed.on_trial_restore(0, [], trial)
    resumed.on_trial_result(0, [], trial, {"training_iteration": 2, "samples": "the the the"})
    resumed.on_trial_complete(0, [], trial)
    resumed.on_experiment_end([trial])
    client = MlflowClient(uri)
    (tmp_path / "dl").mkdir()
    body = Path(client.download_artifacts(resumed._runs["a"], SAMPLES_FILE, str(tmp_path / "dl"))).read_text()
    assert body.index("## Report 1") < body.index("the cat sat") < body.index("## Report 2") < body.index("the the the")
    assert [a.path for a in client.list_artifacts(resumed._runs["a"])] == [SAMPLES_FILE]


def test_credentials_in_the_tracking_uri_are_not_pickled():
    tracking = MlflowTracking("http://ann:s3cret@127.0.0.1:5999", "exp", "/tmp/r")
    blob = pickle.dumps(tracking)
    assert b"s3cret" not in blob and pickle.loads(blob).tracking_uri == "http://127.0.0.1:5999"


def test_batches_keep_whole_reports_within_mlflow_limits():
    def report(step: int, n: int) -> tuple:
        return step, [Metric(f"m{i}", 1.0, 0, step) for i in range(n)], [RunTag("collapsetune.step", str(step))]

    batches = _batches([report(1, 600), report(2, 600), report(3, 10), report(4, 2500)])
    assert [len(m) for m, _ in batches] == [600, 610, 1000, 1000, 500]
    # the step tag rides with the last piece of the reports a batch holds
    assert [[t.value for t in tags] for _, tags in batches] == [["1"], ["3"], [], [], ["4"]]


class _CountingClient:
    """Stands in for MlflowClient inside the writer thread: records each write, in order."""

    def __init__(self):
        self.writes: list[tuple] = []

    def log_batch(self, run_id, metrics=(), tags=()):
        self.writes.append(("log_batch", run_id, sorted({m.step for m in metrics})))


def _report(writer, run_id: str, step: int) -> None:
    writer.log(run_id, step, [Metric("val/loss", 1.0 / step, 0, step)], [RunTag("collapsetune.step", str(step))])


def test_reports_waiting_together_go_in_one_log_batch_per_run():
    from collapsetune.tracking import _Writer

    client = _CountingClient()
    writer = _Writer(lambda: client, linger_s=5.0)  # a flush cuts the linger short
    for step in range(1, 6):
        _report(writer, "a", step)
        _report(writer, "b", step)
    writer.close()
    assert sorted(client.writes) == [("log_batch", "a", [1, 2, 3, 4, 5]), ("log_batch", "b", [1, 2, 3, 4, 5])]


def test_a_write_for_one_run_follows_that_runs_reports_and_leaves_the_others_batching():
    from collapsetune.tracking import _Writer

    client = _CountingClient()
    writer = _Writer(lambda: client, linger_s=5.0)
    _report(writer, "a", 1)
    _report(writer, "b", 1)
    writer.data(lambda c: c.writes.append(("samples", "a")), "a")  # e.g. a's samples.md
    _report(writer, "a", 2)
    _report(writer, "b", 2)
    writer.close()
    assert client.writes[:2] == [("log_batch", "a", [1]), ("samples", "a")]
    assert sorted(client.writes[2:]) == [("log_batch", "a", [2]), ("log_batch", "b", [1, 2])]


def test_a_run_creation_waits_for_one_write_not_for_the_whole_round():
    # With many runs a round of writes takes seconds; a trial's start (Tune's loop waits for
    # its run) is served between two runs' batches, not after the round.
    from collapsetune.tracking import _Writer

    client, queued, inside, gate = _CountingClient(), threading.Event(), threading.Event(), threading.Event()
    record = client.log_batch

    def slow_for_a(run_id, metrics=(), tags=()):
        if run_id == "a":
            inside.set()
            gate.wait(10)
        record(run_id, metrics, tags)

    client.log_batch = slow_for_a
    writer = _Writer(lambda: queued.wait(10) and client, linger_s=0.0)  # opens once both reports wait
    _report(writer, "a", 1)
    _report(writer, "b", 1)
    queued.set()
    assert inside.wait(10)  # the round that writes a and b has begun
    created = writer.call(lambda c: c.writes.append(("create_run", "c")) or "c")
    gate.set()
    assert created.result(10) == "c"
    writer.close()
    assert client.writes == [("log_batch", "a", [1]), ("create_run", "c"), ("log_batch", "b", [1])]


def test_a_pbt_copy_continues_the_runs_steps_and_is_listed_also_across_a_resume(tmp_path):
    # PBT copies trial "d"'s checkpoint at its report 2 into trial "a", which had collapsed
    # at report 3: a's next report is numbered 3 by Ray, but its run goes on at step 4.
    uri, first = _started(tmp_path)
    a = _trial("a")
    first.on_trial_start(0, [], a)
    for t, status in ((1, "inconclusive"), (2, "inconclusive"), (3, "collapsed")):
        verdict = {"collapse.reason": "unique_tokens=4 < 20", "collapse.iteration": 3} if status == "collapsed" else {}
        first.on_trial_result(0, [], a, {"training_iteration": t, "val/loss": 3.0 - t, "collapse.status": status,
                                         **verdict})
    copied = {"pbt.donor": "d", "pbt/donor_report": 2}
    first.on_trial_result(0, [], a, {"training_iteration": 3, "val/loss": 0.5, "collapse.status": "inconclusive",
                                     **copied})
    snapshot = first.get_state()

    # A resumed driver restores the same copied checkpoint and reports its report 3 again,
    # then goes on: nothing is logged twice and the offset holds.
    resumed = _resumed(first, snapshot)
    resumed.on_trial_restore(0, [], a)
    resumed.on_trial_result(0, [], a, {"training_iteration": 3, "val/loss": 0.5, **copied})
    resumed.on_trial_result(0, [], a, {"training_iteration": 4, "val/loss": 0.4, "collapse.status": "healthy"})
    resumed.on_trial_complete(0, [], a)
    resumed.on_experiment_end([a])

    client = MlflowClient(uri)
    (run,) = _runs(uri)
    history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss")]
    assert history == [(1, 2.0), (2, 1.0), (3, 0.0), (4, 0.5), (5, 0.4)]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "pbt/donor_report")] == [(4, 2.0)]
    assert run.data.tags["collapsetune.step_offset"] == "1"
    copy = "step 4 after collapsed (unique_tokens=4 < 20): took the checkpoint of trial d at its report 2"
    assert run.data.tags["collapsetune.pbt.exploits"] == copy
    assert run.data.tags["mlflow.note.content"].endswith(f"PBT copies into this trial:\n- {markdown(copy)}")
    assert "collapse.iteration" not in run.data.tags  # it was rescued; the copy's line keeps the report
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert "collapsetune.failed_writes" not in parent.data.tags


def _every_step(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def test_a_300_character_metric_name_lands_under_a_shortened_legal_name_and_costs_nothing_else(tmp_path):
    from collapsetune.tracking._names import mlflow_key

    uri, tracking = _started(tmp_path)
    long_name = "m" * 300
    trials = [_trial("a"), _trial("b")]
    for trial in trials:
        tracking.on_trial_start(0, [], trial)
        for step in (1, 2, 3):
            tracking.on_trial_result(0, [], trial, {"training_iteration": step, "val/loss": 1.0 / step,
                                                    long_name: float(step), "collapse/entropy": 2.0})
        tracking.on_trial_complete(0, [], trial)
        trial.status = Trial.TERMINATED
    tracking.on_experiment_end(trials)
    client = MlflowClient(uri)
    short = mlflow_key(long_name)
    assert len(short) == 250 and short.startswith("m" * 239)
    for run in _runs(uri):
        for key in ("val/loss", "collapse/entropy", short):
            assert _every_step(client, run.info.run_id, key) == [1, 2, 3], key
        assert run.data.tags[mlflow_key(RENAMED_PREFIX + short)] == long_name
        assert run.info.status == "FINISHED"
    assert "collapsetune.failed_writes" not in client.get_run(tracking.parent_run_id).data.tags


def test_a_key_mlflow_refuses_costs_that_key_never_the_batch(tmp_path):
    # A name the writer is handed as it is (the cleaning missed a rule of this store): MLflow
    # refuses the whole log_batch for it, naming the entry; the writer takes it out, logs it
    # under a stricter name, and writes the rest again.
    uri, tracking = _started(tmp_path)
    trial = _trial("a")
    tracking.on_trial_start(0, [], trial)
    run_id = tracking._runs["a"]
    for step in (1, 2, 3):
        tracking._writer.log(run_id, step, [Metric("val/loss", 1.0 / step, 0, step), Metric("bad~key", 1.0, 0, step),
                                            Metric("m" * 260, 2.0, 0, step), Metric("collapse/entropy", 2.0, 0, step)],
                             [RunTag("collapsetune.step", str(step))])
    tracking.on_trial_complete(0, [], trial)
    trial.status = Trial.TERMINATED
    tracking.on_experiment_end([trial])
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    for key in ("val/loss", "collapse/entropy", "bad_key"):
        assert _every_step(client, run_id, key) == [1, 2, 3], key
    # too long, and MLflow names no entry for that: found by halving the batch
    long_key = next(k for k in run.data.metrics if k.startswith("m" * 200))
    assert len(long_key) == 250 and _every_step(client, run_id, long_key) == [1, 2, 3]
    assert run.data.tags[RENAMED_PREFIX + "bad_key"] == "bad~key"
    assert run.data.tags["collapsetune.step"] == "3"
    failed = client.get_run(tracking.parent_run_id).data.tags["collapsetune.failed_writes"]
    assert failed.startswith("2 MLflow write(s) failed") and "bad~key" in failed


def test_an_entry_mlflow_refuses_for_its_value_is_dropped_with_a_tag_saying_so(tmp_path):
    uri, tracking = _started(tmp_path)
    trial = _trial("a")
    tracking.on_trial_start(0, [], trial)
    run_id = tracking._runs["a"]
    for step in (1, 2):  # a negative timestamp: no new name helps, the entry goes
        tracking._writer.log(run_id, step, [Metric("val/loss", 1.0, 0, step), Metric("clock/skewed", 1.0, -5, step)],
                             [RunTag("collapsetune.step", str(step))])
    tracking.on_experiment_end([trial])
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert _every_step(client, run_id, "val/loss") == [1, 2]
    assert "clock/skewed" not in run.data.metrics
    assert run.data.tags["collapsetune.dropped"].startswith("clock/skewed: ")
    assert "Timestamp must be a nonnegative" in run.data.tags["collapsetune.dropped"]
    assert client.get_run(tracking.parent_run_id).data.tags["collapsetune.failed_writes"].startswith("1 MLflow")


def test_a_step_whose_tag_never_landed_is_not_logged_twice_after_resume(tmp_path):
    # MLflow's SQL store writes a batch's metrics and its tags in separate transactions: a
    # driver SIGKILLed between the two leaves step 2's metrics without its step tag. The
    # resumed driver replays report 2 from the trial's checkpoint and must not log it again
    # (seen under PBT as [1, ..., 6, 6, 7, 8]).
    uri, first = _started(tmp_path)
    a = _trial("a")
    first.on_trial_start(0, [], a)
    for step, loss in ((1, 2.0), (2, 1.8)):
        first.on_trial_result(0, [], a, {"training_iteration": step, "val/loss": loss, "objective": loss,
                                         "collapse.status": "healthy", "timestamp": 1000 + step})
    snapshot = first.get_state()  # flushes the writer
    run_id = _runs(uri)[0].info.run_id
    MlflowClient(uri).set_tag(run_id, "collapsetune.step", "1")  # as if step 2's tags never landed

    resumed = _resumed(first, snapshot)
    resumed.on_trial_restore(0, [], a)
    for step, loss in ((2, 1.8), (3, 1.6)):  # replayed from the checkpoint at report 1
        resumed.on_trial_result(0, [], a, {"training_iteration": step, "val/loss": loss, "objective": loss,
                                           "collapse.status": "healthy", "timestamp": 2000 + step})
    resumed.on_experiment_end([a])
    history = MlflowClient(uri).get_metric_history(run_id, "val/loss")
    assert sorted(m.step for m in history) == [1, 2, 3]


def test_tracking_package_exports_every_name_it_lists():
    import collapsetune.tracking as tracking

    for name in [*tracking.__all__, "_Writer", "_batches", "_connect"]:
        assert getattr(tracking, name) is not None, name
        assert name in dir(tracking)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        tracking.nothing  # noqa: B018


def test_no_module_outside_the_tracking_package_imports_mlflow():
    """The tracking package owns every MLflow read and write (issue 27): a module elsewhere
    that imports mlflow is a second home for it."""
    import ast

    src = Path(collapsetune.__file__).parent
    offenders = []
    for path in sorted(src.rglob("*.py")):
        if "tracking" in path.relative_to(src).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(src)}: {n}" for n in names if n.split(".")[0] == "mlflow"]
    assert offenders == []
