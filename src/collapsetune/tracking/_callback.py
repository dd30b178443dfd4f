"""The driver's MLflow callback: one experiment per sweep name, one parent run per launch, one child run
per trial with its params, per-report metrics, collapse tags and generated samples.

Only the driver talks to MLflow (a Tune callback), so a SQLite store is never written by
two processes and workers need no tracking credentials. Every write goes through one
background thread (`_writer._Writer`): Tune's loop only queues a report, and the thread batches
the reports of each run into one `log_batch`, so the driver keeps up with many trials
reporting many times a second. The queue is flushed before every experiment snapshot
(`get_state`), when a trial ends and when the sweep ends, so whatever Ray's snapshot says
was reported is in MLflow too; `collapsetune.step` (written in the same batch as the
metrics) tells a resumed driver which steps are already there, so none is logged twice.

A tracking failure never ends a sweep: a write MLflow refuses is dropped with a warning
(once per kind of failure) and counted on the parent run. Metric and param names MLflow
cannot store (`acc@1`, 300 characters) are renamed (`acc_1`, cut to 250 with a hash), and
the run's `collapsetune.renamed.*` tags say what each new name was. One entry MLflow refuses
all the same costs only that entry, never its batch (`collapsetune.tracking._batch`): it is
named again in a stricter form, or dropped with the run's `collapsetune.dropped` tag saying
why, and counted on the parent run.

A run's steps are its trial's reports, counted in order. Under PBT a trial that takes another
trial's checkpoint continues from that trial's report number; its run's steps go on from its
own last one (`collapsetune.step_offset`; the rule is `_steps.place`), and
`collapsetune.pbt.exploits` lists each copy (which trial, at which of its reports), so a
rescued trial reads as one history. A resumed
driver first logs what a run lacks of its trial's own record of reports (`_catchup`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from collapsetune._numbers import is_finite_number as _is_number  # non-finite: collapse.reason already says "val/loss=nan"
from collapsetune._numbers import log_spaced as _log_spaced
from collapsetune.tracking._catchup import catch_up
from collapsetune.collapse import ERROR, INCONCLUSIVE, ITERATION_KEY, REASON_KEY, STATUS_KEY, STOPPING
from collapsetune.collapse._breaker import STOPPED_WITH_SWEEP
from collapsetune.credentials import live_uri, redact_uri
from collapsetune.decisions import forecast_verdict
from collapsetune.escape import markdown
from collapsetune.names import (
    ARTIFACTS_DIR, COUNT_PREFIX, ERROR_TAG, EXPLOITS_TAG, FAILED_WRITES_TAG, FORECAST_KEY, LAUNCH_TAG,
    NOTE_TAG, OBJECTIVE_KEY, OFFSET_TAG, ORPHAN_TAG, PARENT_TAG, PATH_TAG, RUN_NAME_TAG, SAMPLES_FILE, STEP_TAG,
    STOPPED_TAG, SWEEP_STOP_TAG, TRIAL_TAG,
)
from collapsetune.results import copy_of
from collapsetune.tracking._names import BATCH_TAGS as _BATCH_TAGS
from collapsetune.tracking._names import PARAM_MAX as _PARAM_MAX
from collapsetune.tracking._names import TAG_MAX as _TAG_MAX
from collapsetune.tracking._names import flatten, run_name
from collapsetune.tracking._renames import _Names
from collapsetune.tracking._samples import _read_samples, _samples_markdown, sample_records
from collapsetune.tracking._steps import place
from collapsetune.tracking._store import _connect, _quote, artifact_location, children, create_experiment
from collapsetune.tracking._writer import _Writer

logger = logging.getLogger(__name__)

# Ray's bookkeeping keys: not model metrics, and some (timestamp, pid) are not even
# comparable across runs.
_NOT_METRICS = {
    "timestamp", "pid", "training_iteration", "iterations_since_restore", "done",
    "time_since_restore", "timesteps_since_restore", "timesteps_total", "episodes_total",
    "checkpoint_dir_name", "should_checkpoint", ITERATION_KEY,
}
# This driver's trials' runs: Ray trial id -> (MLflow run id, the run's address in MLflow's UI
# or "" where the UI's address is not known). The Optuna searcher reads it to give each study
# trial its run (`collapsetune.searchers`), while Optuna still lets it set attributes.
_TRIAL_RUNS: dict[str, tuple[str, str]] = {}


def run_of(trial_id: str) -> tuple[str, str] | None:
    """The MLflow run id of a trial of this driver's sweep, and its address where known."""
    return _TRIAL_RUNS.get(trial_id)


class MlflowTracking(tune.Callback):
    """Logs a sweep to MLflow. Idempotent on resume: runs are found again by tags, never
    created twice, and a run is moved to the trash only when it is known to be a trial the
    resumed sweep re-ran under a new id.

    Example:
        >>> cb = MlflowTracking("sqlite:///mlflow.db", "bitnet-collapse", "results/x")  # doctest: +SKIP
        >>> tune.RunConfig(callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(self, tracking_uri: str, experiment: str, experiment_path: str, sweep_yaml: str = "",
                 launch_id: str = ""):
        self.tracking_uri = redact_uri(tracking_uri)  # what is pickled with the experiment
        self._live_uri = tracking_uri  # never pickled: it may hold a password
        self.experiment = experiment
        self.experiment_path = experiment_path
        self.sweep_yaml = sweep_yaml
        self.launch_id = launch_id
        self._init_live_state()

    def _init_live_state(self) -> None:
        self._writer: _Writer | None = None
        self._experiment_id = ""
        self.parent_run_id = ""
        self._runs: dict[str, str] = {}  # trial id -> child run id
        self._logged: dict[str, int] = {}  # trial id -> last step already in MLflow (or queued)
        self._offsets: dict[str, int] = {}  # trial id -> run step minus report number (PBT exploits)
        self._exploits: dict[str, list[str]] = {}  # trial id -> its EXPLOITS_TAG lines
        self._verdicts: dict[str, list[RunTag]] = {}  # trial id -> verdict tags last logged
        self._samples: dict[str, list[tuple[int, list[str]]]] = {}  # trial id -> (step, samples) so far
        self._found: set[str] = set()  # trials whose run a resumed driver found, until their first report
        self._names = _Names()
        self._knobs: list[str] | None = None  # the sweep's searched keys, for run names
        # Child runs that existed at the experiment snapshot this driver resumed from; None
        # when it did not resume from one (or could not read it): then no run is retired.
        self._snapshot_runs: set[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the experiment (tuner.pkl): no live client, thread or
        # password may travel.
        keep = ("tracking_uri", "experiment", "experiment_path", "sweep_yaml", "launch_id")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._live_uri = None
        self._init_live_state()

    # -- Tune's experiment snapshots ------------------------------------------------------

    def get_state(self) -> dict | None:
        """Called before each experiment snapshot: everything reported so far is written
        first, so the snapshot never claims a report MLflow lacks."""
        if self._writer is not None:
            self._writer.flush()
        return {"runs": dict(self._runs)}

    def set_state(self, state: dict) -> None:
        self._snapshot_runs = set(state.get("runs", {}).values())

    # -- Tune hooks ---------------------------------------------------------------------

    def setup(self, **info: Any) -> None:
        if self._live_uri is None:
            self._live_uri = live_uri(self.tracking_uri)
        uri = self._live_uri
        self._writer = _Writer(lambda: _connect(uri), refused=self._names.refused)
        # Opening a new SQLite store runs MLflow's schema migrations, which takes seconds: it
        # happens on the writer thread while Ray starts the trials' worker processes.
        # on_trial_start, which Tune calls once a trial's process is up and before its first
        # step, waits for it (and raises what it raised, e.g. a bad tracking URI).
        self._opening = self._writer.call(self._open_parent)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self._run_for(trial)
        if not run_id:
            return
        self._catch_up(trial)
        copied = self._new_copy(trial.trial_id, result)
        logged = self._logged.get(trial.trial_id, 0)
        step, self._offsets[trial.trial_id] = place(int(result.get("training_iteration", 0)), logged,
                                                    self._offsets.get(trial.trial_id, 0), new_copy=bool(copied))
        tags = self._exploit_tags(run_id, trial.trial_id, copied, step) if copied else []
        if step is None:
            return  # re-reported after a restore from checkpoint: MLflow has this step
        self._logged[trial.trial_id] = step
        timestamp = int(1000 * result.get("timestamp", 0))
        reported = [(key, value) for key, value in result.items() if key not in _NOT_METRICS and _is_number(value)]
        metrics = [Metric(name, float(value), timestamp, step)
                   for name, value in ((self._names.key(key), value) for key, value in reported) if name is not None]
        tags.append(RunTag(STEP_TAG, str(step)))
        verdict = _verdict_tags(result)
        before = self._verdicts.get(trial.trial_id)
        changed = verdict != before
        if changed:  # tags cost a write each: only on change
            self._verdicts[trial.trial_id] = verdict
            tags += verdict
            if verdict:
                tags.append(RunTag(RUN_NAME_TAG, self._run_name(trial, str(result[STATUS_KEY]))))
            if any(t.key == REASON_KEY for t in before or ()) and not any(t.key == REASON_KEY for t in verdict):
                # a PBT rescue: the reason of a verdict that no longer holds goes (EXPLOITS_TAG keeps it)
                self._writer.data(lambda client: _delete_tag(client, run_id, REASON_KEY), run_id)
        tags += self._names.tags_for(run_id, (key for key, _ in reported))
        self._writer.log(run_id, step, metrics, tags)
        if result.get("samples"):
            history = self._samples.setdefault(trial.trial_id, [])
            history.append((step, sample_records(str(result["samples"]))))
            if changed or _log_spaced(step) or step % 10 == 0:
                self._write_samples(run_id, trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "FINISHED")

    def _catch_up(self, trial: Any) -> None:
        """Before the first report or the end of a run a resumed driver found: logs first what
        the run lacks of its trial's record of reports."""
        if trial.trial_id not in self._found:
            return
        self._found.discard(trial.trial_id)
        found = catch_up(trial, self._logged.get(trial.trial_id, 0))
        if found is not None:
            self._offsets[trial.trial_id] = found.offset
            if found.missing and found.last is not None:  # what a copy among them rescued the trial from
                self._verdicts[trial.trial_id] = _verdict_tags(found.last)
            for row in found.missing:
                self.on_trial_result(0, [], trial, row)

    def _new_copy(self, trial_id: str, result: dict) -> str:
        """How the PBT copy `result` is the first report after is listed ("trial d at its
        report 3"); "" for any other report, and for the same copy as the last one listed (a
        resumed driver restoring the copied checkpoint: a replay)."""
        copy = copy_of(result)
        if copy is None:
            return ""
        copied = f"trial {copy[0]} at its report {copy[1]}"
        lines = self._exploits.get(trial_id)
        return "" if lines and lines[-1].endswith(copied) else copied

    def _exploit_tags(self, run_id: str, trial_id: str, copied: str, step: int) -> list[RunTag]:
        """PBT copied another trial's checkpoint into this one (`copied`): its run goes on from
        its own last step (`step`, `_steps.place`), and the copy is listed; after a rescue the
        run's `collapse.iteration` goes (the list keeps it)."""
        lines = self._exploits.setdefault(trial_id, [])
        before = {t.key: t.value for t in self._verdicts.get(trial_id, [])}
        why = ""
        if before.get(STATUS_KEY) in STOPPING:
            why = f" after {before[STATUS_KEY]} ({before.get(REASON_KEY, '')})"
            self._writer.data(lambda client: client.delete_tag(run_id, ITERATION_KEY), run_id)
        lines.append(f"step {step}{why}: took the checkpoint of {copied}")
        return [RunTag(OFFSET_TAG, str(self._offsets[trial_id])), RunTag(EXPLOITS_TAG, "\n".join(lines)[-_TAG_MAX:])]

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "FAILED", error=_error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._ensure_parent()
        self._end_stopped_with_sweep(trials)
        known = {trial.trial_id for trial in trials}
        counts: dict[str, int] = {}
        for trial in trials:
            status = ERROR if trial.status == "ERROR" else trial.last_result.get(STATUS_KEY, INCONCLUSIVE)
            counts[status] = counts.get(status, 0) + 1
        tags = [RunTag(f"{COUNT_PREFIX}{k}", str(v)) for k, v in sorted(counts.items())]
        # The driver was interrupted (Ctrl-C): the sweep is not over, `resume` continues it.
        unfinished = [self._runs.get(t.trial_id) for t in trials if t.status not in ("TERMINATED", "ERROR")]
        writer = self._writer
        writer.data(lambda client: self._retire_orphans(client, known))
        writer.data(lambda client: self._recount(client, tags))
        for run_id in filter(None, unfinished):
            writer.data(lambda client, run_id=run_id: client.set_terminated(run_id, "KILLED"))
        writer.flush()
        if writer.failures:
            writer.data(lambda client: client.set_tag(self.parent_run_id, FAILED_WRITES_TAG,
                                                      writer.failure_summary()))
        # The sweep's answer on the parent run: description, params, counts, the atlas.
        writer.data(lambda client: self._publish(client))
        end = "KILLED" if unfinished else "FINISHED"
        writer.data(lambda client: client.set_terminated(self.parent_run_id, end))
        writer.close()
        if writer.failures:
            logger.warning("collapsetune: %s", writer.failure_summary())

    # -- trials ending --------------------------------------------------------------------

    def _end_stopped_with_sweep(self, trials: list) -> None:
        """When the `stop_sweep_when:` breaker tripped, Tune stopped every other trial itself,
        without their on_trial_complete: their runs end FINISHED here, tagged why, as does the
        parent. `records.SweepStopRecord`, earlier in the callback list, wrote which trials."""
        from collapsetune.results import read_sweep_stop

        reason, stopped = read_sweep_stop(self.experiment_path)
        if not reason:
            return
        why = f"{STOPPED_WITH_SWEEP}: {reason}"[:_TAG_MAX]
        parent = self.parent_run_id
        self._writer.data(lambda client: client.set_tag(parent, SWEEP_STOP_TAG, why))
        for trial in trials:
            if trial.trial_id not in stopped or not (trial.trial_id in self._runs or trial.last_result):
                continue  # a trial that never started has no run (one that did: this driver opened it, or it reported)
            if run_id := self._run_for(trial):
                self._writer.data(lambda client, run_id=run_id: client.set_tag(run_id, SWEEP_STOP_TAG, why), run_id)
                self._finish(trial, "FINISHED")


    def _finish(self, trial: Any, status: str, error: str | None = None) -> None:
        run_id = self._run_for(trial)
        if not run_id:
            return
        self._catch_up(trial)
        if trial.trial_id in self._samples:
            self._write_samples(run_id, trial.trial_id)
        # The trial's folder in storage, where Ray syncs the files its worker wrote
        # (sync_artifacts); a remote storage URI is not a local folder, and is skipped.
        stored = getattr(trial, "path", None)
        folder = Path(stored) / ARTIFACTS_DIR if stored and "://" not in stored else None
        tags = [RunTag(ERROR_TAG, error[-_TAG_MAX:]), RunTag(STATUS_KEY, ERROR),
                RunTag(RUN_NAME_TAG, self._run_name(trial, ERROR))] if error is not None else []
        note = markdown(_note(trial, error, self.sweep_yaml))  # the run's description (Markdown)
        if self._exploits.get(trial.trial_id):
            copies = self._exploits[trial.trial_id]
            note += "\n\nPBT copies into this trial:\n" + "\n".join(f"- {markdown(c)}" for c in copies)
        tags.append(RunTag(NOTE_TAG, note[:_TAG_MAX]))

        def finish(client: MlflowClient) -> None:
            if folder is not None and folder.is_dir() and any(folder.iterdir()):
                client.log_artifacts(run_id, str(folder))
            if tags:
                client.log_batch(run_id, tags=tags)
            client.set_terminated(run_id, status)

        self._writer.data(finish, run_id)

    def _recount(self, client: MlflowClient, tags: list[RunTag]) -> None:
        """The parent's counts of trials by outcome, without those of an earlier end (a
        resumed sweep's `error: 2` from a full disk must not outlive the errors)."""
        fresh = {t.key for t in tags}
        for key in client.get_run(self.parent_run_id).data.tags:
            if key.startswith(COUNT_PREFIX) and key not in fresh:
                client.delete_tag(self.parent_run_id, key)
        client.log_batch(self.parent_run_id, tags=tags)

    def _publish(self, client: MlflowClient) -> None:
        from collapsetune.tracking._publish import publish_sweep

        try:
            publish_sweep(client, self.parent_run_id, self.experiment_path)
            return
        except Exception as exc:  # noqa: BLE001 - the summary is a view; the runs are already whole
            logger.warning("collapsetune: could not write the sweep's atlas to its MLflow parent run "
                           "(`collapsetune report %s --html` draws it): %s: %s",
                           self.experiment_path, type(exc).__name__, exc)
        try:  # the atlas is drawn into the results folder, which may be full: the summary without it
            publish_sweep(client, self.parent_run_id, self.experiment_path, atlas=False)
        except Exception as exc:  # noqa: BLE001
            logger.warning("collapsetune: could not write the sweep's summary to its MLflow parent run: %s: %s",
                           type(exc).__name__, exc)

    def _run_name(self, trial: Any, status: str) -> str:
        """The child run's name: the trial's number, its verdict and its searched knobs,
        e.g. `collapsed 00003 · lr=0.01, weight_decay=0.1`. MLflow's runs list always shows
        a run's name, while the `collapse.*` tags hide behind "Show more columns"."""
        if self._knobs is None:
            from collapsetune.results import ResultsError, parse_sweep

            try:
                self._knobs = sorted(parse_sweep(self.sweep_yaml).search_space) if self.sweep_yaml else []
            except ResultsError:
                self._knobs = []
        return run_name(trial.trial_id, status, trial.config or {}, self._knobs)

    def _write_samples(self, run_id: str, trial_id: str) -> None:
        text = _samples_markdown(self._samples[trial_id])
        self._writer.data(lambda client: client.log_text(run_id, text, SAMPLES_FILE), run_id)

    def _retire_orphans(self, client: MlflowClient, known: set[str]) -> None:
        """Moves runs of trials this sweep re-ran under a new id to MLflow's trash (recoverable).

        A driver killed after a trial started but before Ray's periodic experiment snapshot
        recorded it leaves a run for a trial that `resume` never sees again: Ray re-runs it
        under a new id. Such a run is one this callback had not yet saved in the snapshot's
        state either. Only those are retired; a run the snapshot knew, or any run at all
        when this driver did not resume from a readable snapshot, is left alone.
        """
        if self._snapshot_runs is None:
            return
        for run in children(client, self._experiment_id, self.parent_run_id):
            trial_id = run.data.tags.get(TRIAL_TAG)
            if trial_id in known or run.info.run_id in self._snapshot_runs:
                continue
            client.set_tag(run.info.run_id, ORPHAN_TAG, "trial lost in a driver crash before Ray "
                           "recorded it; the resumed sweep ran it again as a new trial")
            client.set_terminated(run.info.run_id, "KILLED")
            client.delete_run(run.info.run_id)

    # -- runs ---------------------------------------------------------------------------

    def _ensure_parent(self) -> str:
        if not self.parent_run_id:
            self.parent_run_id = self._opening.result()
        return self.parent_run_id

    def _open_parent(self, client: MlflowClient) -> str:
        self._experiment_id = create_experiment(client, self.experiment, artifact_location(self._live_uri))
        found = client.search_runs([self._experiment_id], filter_string=f"tags.`{PATH_TAG}` = '{_quote(self.experiment_path)}'")
        if not found and self.launch_id:  # the results folder was moved since the launch
            found = client.search_runs([self._experiment_id], filter_string=f"tags.`{LAUNCH_TAG}` = '{_quote(self.launch_id)}'")
            if found:
                client.set_tag(found[0].info.run_id, PATH_TAG, self.experiment_path)
        if found:
            run_id = found[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            if STOPPED_TAG in found[0].data.tags:  # resumed: what stopped it is over
                client.delete_tag(run_id, STOPPED_TAG)
            return run_id
        tags = {PATH_TAG: self.experiment_path, **({LAUNCH_TAG: self.launch_id} if self.launch_id else {})}
        run = client.create_run(self._experiment_id, run_name=self.experiment_path.rstrip("/").rsplit("/", 1)[-1],
                                tags=tags)
        if self.sweep_yaml:
            client.log_text(run.info.run_id, self.sweep_yaml, "sweep.yaml")
        return run.info.run_id

    def _run_for(self, trial: Any) -> str:
        """The trial's child run id; "" when MLflow could not make one (the trial goes on
        untracked). A store that cannot open the parent run raises: that fails the sweep
        before any trial trains, while nothing is lost yet."""
        if trial.trial_id not in self._runs:
            parent = self._ensure_parent()
            try:
                run_id = self._writer.call(lambda client: self._find_or_create(client, parent, trial)).result()
            except Exception as exc:  # noqa: BLE001 - a tracking failure must not end the sweep
                logger.warning("collapsetune: MLflow could not open a run for trial %s; it is not tracked: %s",
                               trial.trial_id, exc)
                run_id = ""
            self._runs[trial.trial_id] = run_id
            if run_id:
                from collapsetune.report import known_ui, run_url

                base = known_ui(self.tracking_uri)
                _TRIAL_RUNS[trial.trial_id] = (run_id, run_url(self._experiment_id, run_id, base) if base else "")
        return self._runs[trial.trial_id]

    def _last_step(self, client: MlflowClient, run: Any) -> int:
        """The last step MLflow holds for a run. Its step tag, or more: the SQL store's
        log_batch writes a batch's metrics and its tags in separate transactions, so a driver
        killed between the two left a step whose tag never landed, and the resumed driver
        logged that step again (seen under PBT). Every report has `objective`: its history
        says which steps are there."""
        last = int(run.data.tags.get(STEP_TAG, 0))
        key = self._names.key(OBJECTIVE_KEY)
        try:
            history = client.get_metric_history(run.info.run_id, key) if key else []
        except Exception:  # noqa: BLE001 - the tag alone, as before
            history = []
        return max([last, *(m.step for m in history)])

    def _find_or_create(self, client: MlflowClient, parent: str, trial: Any) -> str:
        found = client.search_runs(
            [self._experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent}' and tags.`{TRIAL_TAG}` = '{trial.trial_id}'",
        )
        if found:  # a resumed sweep: continue the trial's run, never open a second one
            run = found[0]
            client.update_run(run.info.run_id, status="RUNNING")
            if STOPPED_TAG in run.data.tags:
                client.delete_tag(run.info.run_id, STOPPED_TAG)
            self._logged[trial.trial_id] = self._last_step(client, run)
            self._offsets[trial.trial_id] = int(run.data.tags.get(OFFSET_TAG, 0))
            self._exploits[trial.trial_id] = run.data.tags.get(EXPLOITS_TAG, "").splitlines()
            self._samples[trial.trial_id] = _read_samples(client, run.info.run_id)
            self._found.add(trial.trial_id)
            return run.info.run_id
        run = client.create_run(
            self._experiment_id,
            run_name=self._run_name(trial, ""),
            tags={PARENT_TAG: parent, TRIAL_TAG: trial.trial_id},
        )
        flat = sorted(flatten(trial.config).items())
        params = [Param(key, str(v)[:_PARAM_MAX]) for key, v in ((self._names.key(k), v) for k, v in flat)
                  if key is not None]
        for i in range(0, len(params), _BATCH_TAGS):
            self._writer.write_batch(run.info.run_id, params=params[i:i + _BATCH_TAGS])
        renamed = self._names.tags_for(run.info.run_id, (k for k, _ in flat))
        for i in range(0, len(renamed), _BATCH_TAGS):
            self._writer.write_batch(run.info.run_id, tags=renamed[i:i + _BATCH_TAGS])
        return run.info.run_id


def _error_text(trial: Any) -> str:
    """The trial's latest error: Tune writes error.txt in the trial's local folder before it
    calls on_trial_error (the copy in storage may not be synced yet)."""
    local, text = _local_path(trial), ""
    try:
        text = Path(local, "error.txt").read_text() if local else str(trial.get_error() or "")
    except OSError:
        text = str(trial.get_error() or "")
    return text.strip() or "unknown error (Ray recorded none)"


def _note(trial: Any, error: str | None, sweep_yaml: str) -> str:
    from collapsetune.insight import trial_note

    try:
        return trial_note(trial.last_result or {}, state="error" if error is not None else "finished",
                          error=error or "", sweep=sweep_yaml or None)[:_TAG_MAX]
    except Exception as exc:  # noqa: BLE001 - a description must never cost the run its end
        return f"(no verdict line: {type(exc).__name__}: {exc})"[:_TAG_MAX]


def _local_path(trial: Any) -> str | None:
    """The trial's folder on the driver (Tune's staging copy of its results), if it has one."""
    try:
        return trial.local_path
    except AttributeError:  # a trial without storage (tests, stubs)
        return None


def _verdict_tags(result: dict) -> list[RunTag]:
    if STATUS_KEY not in result:
        return []
    tags = [RunTag(STATUS_KEY, str(result[STATUS_KEY]))]
    if result.get(REASON_KEY):  # a healthy run has no reason, not an empty one
        tags.append(RunTag(REASON_KEY, str(result[REASON_KEY])[:_TAG_MAX]))
    if _is_number(result.get(FORECAST_KEY)):  # the verdict the forecast predicts, beside the actual one
        tags.append(RunTag(FORECAST_KEY, forecast_verdict(result[FORECAST_KEY], str(result.get(REASON_KEY, "")))))
    if ITERATION_KEY in result:  # only once collapsed or diverged: "0" would read as "at report 0"
        tags.append(RunTag(ITERATION_KEY, str(result[ITERATION_KEY])))
    return tags


def _delete_tag(client: MlflowClient, run_id: str, key: str) -> None:
    try:
        client.delete_tag(run_id, key)
    except Exception:  # noqa: BLE001 - MLflow raises when the run never had it
        pass
