"""Queries and repairs of an MLflow store, through MLflow's client API only (never its
schema): open a store (`_connect`), a sweep's experiment (`create_experiment`), a launch's
runs (`find_runs`, what `report` links; `parents`, `children`, `trial_runs`), and Ctrl-C's
KILLED runs (`mark_interrupted`).

MLflow is imported on first use, not with this module: `report` imports it, and needs MLflow
(seconds to import) only when the sweep logged to a store that exists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from collapsetune.credentials import client_uri
from collapsetune.names import (
    CUSTOM_MODEL_KIND, EXPERIMENT_KIND_TAG, LAUNCH_TAG, PARENT_TAG, PATH_TAG, STOPPED_TAG, TRIAL_TAG,
)
from collapsetune.tracking._names import TAG_MAX as _TAG_MAX

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def mark_interrupted(tracking_uri: str, experiment: str, experiment_path: str, trial_ids: Sequence[str] | None,
                     reason: str = "", only_open: bool = False, launch_id: str = "") -> None:
    """After Ctrl-C: the parent run and the runs of trials that had not finished are KILLED,
    not FINISHED (Tune ends the experiment as if those trials had completed); `resume`
    sets them RUNNING again. `trial_ids` None: every child run still RUNNING. `reason`, when
    given, goes on each run it ends as `STOPPED_TAG`. `only_open`: the parent too only while
    it is RUNNING (a sweep that cannot be resumed: a finished one stays FINISHED). `launch_id`
    finds the parent run of a results folder moved since its last driver."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    for parent in parents(client, found.experiment_id, experiment_path, launch_id):
        for run in children(client, found.experiment_id, parent.info.run_id):
            chosen = run.info.status == "RUNNING" if trial_ids is None else run.data.tags.get(TRIAL_TAG) in trial_ids
            if chosen:
                if reason:
                    client.set_tag(run.info.run_id, STOPPED_TAG, reason[:_TAG_MAX])
                client.set_terminated(run.info.run_id, "KILLED")
        if only_open and parent.info.status != "RUNNING":
            continue
        if reason:
            client.set_tag(parent.info.run_id, STOPPED_TAG, reason[:_TAG_MAX])
        client.set_terminated(parent.info.run_id, "KILLED")


def store_problem(uri: str) -> tuple[str, str] | None:
    """None when this MLflow opens the store at `uri` (its client reads only a store whose
    schema is complete); else (why, this MLflow's version): why is "schema" for another
    MLflow version's schema, else the exception's type name (MLflow's words hold values from
    the store, which are never shown)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the answer
        return ("schema" if "out-of-date database schema" in str(exc) else type(exc).__name__), mlflow.__version__
    return None


def _connect(uri: str) -> MlflowClient:
    """A client whose store is open. Two drivers creating one new SQLite store at once race
    in MLflow's schema migrations (`table _alembic_tmp_experiments already exists`): on
    this machine they take turns."""
    from mlflow.tracking import MlflowClient

    # One "View run at <url>" line per run on stdout is noise for a sweep; `report` links them.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # tqdm bars on the driver's terminal
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial ... tables"
    uri = client_uri(uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    import fcntl
    import hashlib
    import tempfile

    db = str(Path(uri[len("sqlite:///"):]).absolute())
    lock = Path(tempfile.gettempdir()) / f"collapsetune-mlflow-{hashlib.sha1(db.encode()).hexdigest()[:16]}.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # creates and migrates the schema now
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return client


def parents(client: MlflowClient, experiment_id: str, experiment_path: str, launch_id: str = "") -> list:
    """The parent runs of a launch, newest first: by its results folder, else by `launch_id`
    (a folder moved since the launch)."""
    found = client.search_runs([experiment_id], f"tags.`{PATH_TAG}` = '{_quote(experiment_path)}'")
    if not found and launch_id:
        found = client.search_runs([experiment_id], f"tags.`{LAUNCH_TAG}` = '{_quote(launch_id)}'")
    return found


def create_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name`, made if missing, tagged as a model-training experiment.

    MLflow 3.17's UI opens an experiment on the view its URL names
    (`?workflowType=machine_learning`, which `collapsetune report` prints), else the one the
    browser last chose, else GenAI; no experiment setting changes that (its UI code reads the
    `mlflow.experimentKind` tag only when workflow-based navigation is off, and in the
    open-source build it is always on). The tag is still set: it is MLflow's own statement
    of the experiment's kind, free, and read by builds and tools that honour it.
    """
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=artifact_location,
                                        tags={EXPERIMENT_KIND_TAG: CUSTOM_MODEL_KIND})
    if EXPERIMENT_KIND_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_KIND)
    return found.experiment_id


def children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    """Every (non-deleted) child run of a parent, across result pages."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def trial_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """Trial id -> run id of a parent's child runs; a trial id on two runs keeps its newest."""
    runs = reversed(children(client, experiment_id, parent_run_id))  # MLflow lists newest first
    return {r.data.tags[TRIAL_TAG]: r.info.run_id for r in runs if TRIAL_TAG in r.data.tags}


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment's artifacts go: beside a SQLite store, not in whichever
    directory the first launch ran from (MLflow's default, `./mlruns` of that cwd)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return (Path(tracking_uri[len(prefix):]).absolute().parent / "mlruns").as_uri()
    return None


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


# -- what `report` reads -------------------------------------------------------------------


@dataclass(frozen=True)
class RunIndex:
    """Where a launch is in an MLflow store."""

    experiment_id: str = ""
    parent_run_id: str = ""
    children: dict[str, str] = field(default_factory=dict)  # trial id -> run id


def find_runs(tracking_uri: str, experiment: str, experiment_path: str) -> RunIndex:
    """The launch's experiment, parent run and child runs; empty when the store is missing
    (it is never created) or knows nothing of this launch. A store that does not answer
    raises, in seconds (`_quick_http`)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).is_file():
        return RunIndex()
    from mlflow.tracking import MlflowClient

    with _quick_http():
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return RunIndex()
        launch = parents(client, found.experiment_id, experiment_path)
        if not launch:
            return RunIndex(found.experiment_id)
        parent = launch[0].info.run_id
        return RunIndex(found.experiment_id, parent, trial_runs(client, found.experiment_id, parent))


@contextmanager
def _quick_http() -> Iterator[None]:
    """A tracking server that does not answer fails in seconds, not after MLflow's minutes of
    retries: `report` only wants links."""
    saved = {k: os.environ.get(k) for k in _QUICK_HTTP}
    os.environ.update(_QUICK_HTTP)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
