"""MLflow glue: one experiment per sweep name, one parent run per launch, one child run
per trial with its params, per-report metrics, collapse tags and generated samples.

Only the driver talks to MLflow (a Tune callback), so a SQLite store is never written by
two processes and workers need no tracking credentials.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from collapsetune.collapse import HEALTHY, ITERATION_KEY, REASON_KEY, STATUS_KEY
from collapsetune.trainable import ARTIFACTS_DIR

# Ray's bookkeeping keys: not model metrics, and some (timestamp, pid) are not even
# comparable across runs.
_NOT_METRICS = {
    "timestamp", "pid", "training_iteration", "iterations_since_restore", "done",
    "time_since_restore", "timesteps_since_restore", "timesteps_total", "episodes_total",
    "checkpoint_dir_name", ITERATION_KEY,
}
PATH_TAG = "collapsetune.experiment_path"  # ties a parent run to its results folder
TRIAL_TAG = "ray.trial_id"
ORPHAN_TAG = "collapsetune.orphan"  # why a run was moved to the trash on resume
STEP_TAG = "collapsetune.step"  # last report logged to a run
_PARAM_MAX = 6000  # MLflow's limit on a param value


class MlflowTracking(tune.Callback):
    """Logs a sweep to MLflow. Idempotent on resume: runs are found again by tags, never
    created twice.

    Example:
        >>> cb = MlflowTracking("sqlite:///mlflow.db", "bitnet-collapse", "results/x")  # doctest: +SKIP
        >>> tune.RunConfig(callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(self, tracking_uri: str, experiment: str, experiment_path: str, sweep_yaml: str = ""):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.experiment_path = experiment_path
        self.sweep_yaml = sweep_yaml
        self._client: MlflowClient | None = None
        self._experiment_id = ""
        self.parent_run_id = ""
        self._runs: dict[str, str] = {}  # trial id -> child run id
        self._logged: dict[str, int] = {}  # trial id -> last step already in MLflow
        self._verdicts: dict[str, list[RunTag]] = {}  # trial id -> verdict tags last logged
        self._opening: Future | None = None  # the parent run being found or made in the background

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the experiment; a live client must not travel.
        return {**self.__dict__, "_client": None, "_runs": {}, "_logged": {}, "_verdicts": {},
                "parent_run_id": "", "_opening": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    # -- Tune hooks ---------------------------------------------------------------------

    def setup(self, **info: Any) -> None:
        # Opening a new SQLite store runs MLflow's schema migrations, which takes seconds: do
        # it while Ray starts the trials' worker processes. on_trial_start, which Tune calls
        # once a trial's process is up and before its first step, waits for it (and raises
        # what it raised, e.g. a bad tracking URI).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-open")
        self._opening = pool.submit(self._open_parent)
        pool.shutdown(wait=False)  # its one thread ends with this one task

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self._run_for(trial)
        step = int(result.get("training_iteration", 0))
        if step <= self._logged.get(trial.trial_id, 0):
            return  # re-reported after a restore from checkpoint: MLflow has this step
        self._logged[trial.trial_id] = step
        metrics = [
            Metric(key, float(value), int(1000 * result.get("timestamp", 0)), step)
            for key, value in result.items()
            if key not in _NOT_METRICS and _is_number(value)
        ]
        # The step rides in the same batch, so a resumed driver knows exactly what is logged.
        tags = [RunTag(STEP_TAG, str(step))]
        verdict = _verdict_tags(result)
        if verdict != self._verdicts.get(trial.trial_id):  # tags cost a write each: only on change
            self._verdicts[trial.trial_id] = verdict
            tags += verdict
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if result.get("samples"):
            self.client.log_text(run_id, result["samples"], f"samples/iter_{step:04d}.txt")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._run_for(trial)
        self._log_artifacts(run_id, trial)
        self.client.set_terminated(run_id, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._run_for(trial)
        self._log_artifacts(run_id, trial)
        error = trial.get_error()
        self.client.set_tag(run_id, "collapsetune.error", str(error)[-_PARAM_MAX:] if error else "unknown")
        self.client.set_terminated(run_id, "FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._retire_orphans({trial.trial_id for trial in trials})
        counts: dict[str, int] = {}
        for trial in trials:
            status = "error" if trial.status == "ERROR" else trial.last_result.get(STATUS_KEY, HEALTHY)
            counts[status] = counts.get(status, 0) + 1
        tags = [RunTag(f"collapsetune.trials.{k}", str(v)) for k, v in sorted(counts.items())]
        self.client.log_batch(self._ensure_parent(), tags=tags)
        self.client.set_terminated(self._ensure_parent(), "FINISHED")

    def _retire_orphans(self, known: set[str]) -> None:
        """Moves runs of trials this sweep does not know to MLflow's trash (recoverable).

        A driver killed after a trial started but before Ray's periodic experiment snapshot
        recorded it leaves a run for a trial that `resume` never sees again: Ray re-runs it
        under a new id. Without this, the resumed sweep would show one run too many.
        """
        parent = self._ensure_parent()
        for run in children(self.client, self._experiment_id, parent):
            if run.data.tags.get(TRIAL_TAG) not in known:
                self.client.set_tag(run.info.run_id, ORPHAN_TAG, "trial lost in a driver crash before "
                                    "Ray recorded it; the resumed sweep ran it again as a new trial")
                self.client.set_terminated(run.info.run_id, "KILLED")
                self.client.delete_run(run.info.run_id)

    def _log_artifacts(self, run_id: str, trial: Any) -> None:
        folder = Path(trial.path) / ARTIFACTS_DIR
        if folder.is_dir() and any(folder.iterdir()):  # a remote storage URI is not a local dir
            self.client.log_artifacts(run_id, str(folder))

    # -- runs ---------------------------------------------------------------------------

    def _ensure_parent(self) -> str:
        if self._opening is not None:
            opening, self._opening = self._opening, None
            opening.result()
        return self.parent_run_id or self._open_parent()

    def _open_parent(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment)
        self._experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(self.experiment)
        )
        found = self.client.search_runs(
            [self._experiment_id], filter_string=f"tags.`{PATH_TAG}` = '{_quote(self.experiment_path)}'"
        )
        if found:
            self.parent_run_id = found[0].info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self._experiment_id,
                run_name=self.experiment_path.rstrip("/").rsplit("/", 1)[-1],
                tags={PATH_TAG: self.experiment_path},
            )
            self.parent_run_id = run.info.run_id
            if self.sweep_yaml:
                self.client.log_text(self.parent_run_id, self.sweep_yaml, "sweep.yaml")
        return self.parent_run_id

    def _run_for(self, trial: Any) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        parent = self._ensure_parent()
        found = self.client.search_runs(
            [self._experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent}' and tags.`{TRIAL_TAG}` = '{trial.trial_id}'",
        )
        if found:  # a resumed sweep: continue the trial's run, never open a second one
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self._logged[trial.trial_id] = int(found[0].data.tags.get(STEP_TAG, 0))
        else:
            run = self.client.create_run(
                self._experiment_id,
                run_name=str(trial),
                tags={"mlflow.parentRunId": parent, TRIAL_TAG: trial.trial_id, STATUS_KEY: HEALTHY},
            )
            run_id = run.info.run_id
            params = [Param(k, str(v)[:_PARAM_MAX]) for k, v in sorted(_flatten(trial.config).items())]
            self.client.log_batch(run_id, params=params)
        self._runs[trial.trial_id] = run_id
        return run_id


def children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    """Every (non-deleted) child run of a parent, across result pages."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _verdict_tags(result: dict) -> list[RunTag]:
    if STATUS_KEY not in result:
        return []
    return [
        RunTag(STATUS_KEY, str(result[STATUS_KEY])),
        RunTag(REASON_KEY, str(result.get(REASON_KEY, ""))),
        RunTag(ITERATION_KEY, str(result.get(ITERATION_KEY, 0))),
    ]


def _is_number(value: Any) -> bool:
    # Non-finite values are left out: the collapse.reason tag already says "val/loss=nan".
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
