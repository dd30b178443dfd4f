"""A sweep's answer written onto its MLflow parent run: the description, params and metrics
`collapsetune.insight` words, the collapse atlas as artifacts, and each child run's one-line
verdict. Safe to call again on the same parent run (on resume): params already logged are
left as they are, the description, metrics and atlas are replaced by the current ones.

Example:
    >>> client = MlflowClient("sqlite:///mlflow.db")  # doctest: +SKIP
    >>> publish_sweep(client, parent_run_id, "results/bitnet-collapse-20261122-150000")  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from collapsetune.escape import markdown
from collapsetune.insight import _trial_note, sweep_metrics, sweep_note, sweep_params
from collapsetune.names import CHANGED_TAG, NOTE_TAG
from collapsetune.report import known_ui, run_url
from collapsetune.results import ATLAS_DIR, SweepResults, read_results
from collapsetune.tracking._names import BATCH_TAGS as _BATCH
from collapsetune.tracking._names import TAG_MAX as _TAG_MAX
from collapsetune.tracking._names import mlflow_key
from collapsetune.tracking._store import trial_runs

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


@dataclass
class Published:
    """What `publish_sweep` wrote."""

    note: str
    params: dict[str, str] = field(default_factory=dict)  # newly logged
    unchanged: list[str] = field(default_factory=list)  # already logged with this value
    changed: list[str] = field(default_factory=list)  # already logged with another value: kept, tagged
    metrics: dict[str, float] = field(default_factory=dict)
    atlas: list[str] = field(default_factory=list)  # artifact paths under atlas/
    child_notes: int = 0


def publish_sweep(
    client: MlflowClient,
    parent_run_id: str,
    results_dir: str,
    *,
    atlas: bool = True,
    keep_atlas: bool = True,
    child_notes: bool = True,
    ui_url: str = "",
) -> Published:
    """Writes a sweep's summary onto its MLflow parent run.

    Args:
        client: An MlflowClient on the sweep's tracking store.
        parent_run_id: The launch's parent run.
        results_dir: The launch's results folder (local path or URI).
        atlas: Draw the collapse atlas and log it as artifacts under `atlas/`.
        keep_atlas: Also leave the atlas in the results folder (when it is local), where
            `collapsetune report` points to it.
        child_notes: Give each trial's child run its one-line verdict as its description.
        ui_url: MLflow's UI address, for the atlas's links to runs (`collapsetune.report.known_ui`:
            else the COLLAPSETUNE_MLFLOW_URL variable or an http tracking server; with none
            known, the atlas shows run ids).

    Returns:
        What was written (`Published`).
    """
    results = read_results(results_dir)
    parent = client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id
    runs = trial_runs(client, experiment_id, parent_run_id)
    note = sweep_note(results, runs, experiment_id, parent_run_id, pictures=atlas)
    published = Published(note)

    wanted = sweep_params(results)
    logged = parent.data.params
    published.params = {k: v for k, v in wanted.items() if k not in logged}
    published.unchanged = sorted(k for k, v in wanted.items() if logged.get(k) == v)
    published.changed = sorted(k for k, v in wanted.items() if k in logged and logged[k] != v)
    from mlflow.entities import Metric, Param, RunTag

    params = [Param(k, v) for k, v in sorted(published.params.items())]
    for i in range(0, len(params), _BATCH):
        client.log_batch(parent_run_id, params=params[i:i + _BATCH])
    published.metrics = sweep_metrics(results)
    now = int(time.time() * 1000)
    step = sum(len(t.reports) for t in results.trials)  # grows as the sweep goes on (and on resume)
    metrics = [Metric(k, v, now, step) for k, v in sorted(published.metrics.items())]
    tags = [RunTag(NOTE_TAG, note)] + [
        RunTag(mlflow_key(CHANGED_TAG + k), f"now {wanted[k]}"[:_TAG_MAX]) for k in published.changed
    ]
    client.log_batch(parent_run_id, metrics=metrics, tags=tags)

    if child_notes:
        for trial in results.trials:
            if trial.trial_id in runs:
                client.set_tag(runs[trial.trial_id], NOTE_TAG, markdown(_trial_note(trial, results.sweep))[:_TAG_MAX])
                published.child_notes += 1
    if atlas:
        published.atlas = _publish_atlas(client, parent_run_id, results, runs, experiment_id, keep_atlas,
                                         known_ui(client.tracking_uri, ui_url))
    return published


def _publish_atlas(client: MlflowClient, run_id: str, results: SweepResults, runs: dict[str, str],
                   experiment_id: str, keep: bool, base: str) -> list[str]:
    from collapsetune.atlas import write_atlas

    links = {t: run_url(experiment_id, r, base) for t, r in runs.items()} if base else {}
    local = keep and "://" not in results.path
    with tempfile.TemporaryDirectory(prefix="collapsetune-atlas-") as scratch:
        out = Path(results.path) / ATLAS_DIR if local else Path(scratch)
        write_atlas(results, out, run_links=links, run_ids=runs)
        client.log_artifacts(run_id, str(out), ATLAS_DIR)
        return sorted(f"{ATLAS_DIR}/{p.name}" for p in out.iterdir() if not p.name.startswith("."))
