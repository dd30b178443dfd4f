"""Sweep summaries from a results folder: trials by status, the best healthy trial."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray.tune import ExperimentAnalysis

from collapsetune.collapse import HEALTHY, REASON_KEY, STATUS_KEY

_HIDDEN = {"max_iterations"}  # handed to every wrapper; not a setting anyone chose


@dataclass
class TrialRow:
    trial_id: str
    status: str  # healthy | collapsed | diverged | error
    reason: str
    iterations: int
    objective: float
    metric: float
    config: dict[str, Any]
    path: str
    mlflow_run_id: str = ""


@dataclass
class Summary:
    experiment_path: str
    metric: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    trials: list[TrialRow] = field(default_factory=list)
    best: TrialRow | None = None
    tracking_uri: str | None = None
    searched: list[str] = field(default_factory=list)  # search-space keys, shown first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(experiment_path: str, metric: str, mode: str) -> Summary:
    """Reads a sweep's trials (finished or not) from its results folder."""
    analysis = ExperimentAnalysis(experiment_path)
    summary = Summary(experiment_path, metric, mode)
    for trial in analysis.trials:
        last = trial.last_result or {}
        status = "error" if trial.status == "ERROR" else last.get(STATUS_KEY, HEALTHY)
        row = TrialRow(
            trial_id=trial.trial_id,
            status=status,
            reason=last.get(REASON_KEY, "") or (_last_error(trial.path) if status == "error" else ""),
            iterations=int(last.get("training_iteration", 0)),
            objective=float(last.get("objective", math.nan)),
            metric=float(last.get(metric, math.nan)),
            config={k: v for k, v in trial.config.items() if k not in _HIDDEN},
            path=str(trial.path),
        )
        summary.trials.append(row)
        summary.counts[status] = summary.counts.get(status, 0) + 1
    healthy = [t for t in summary.trials if t.status == HEALTHY and math.isfinite(t.objective)]
    if healthy:
        pick = min if mode == "min" else max
        summary.best = pick(healthy, key=lambda t: t.objective)
    summary.trials.sort(key=lambda t: t.trial_id)
    return summary


def load_summary(results_dir: str) -> Summary:
    """The summary of a results folder made by `collapsetune run`, with MLflow run ids."""
    from collapsetune.launch import LAUNCH_FILE, SWEEP_FILE
    from collapsetune.storage import location, read_text

    folder = location(results_dir)
    resolved = yaml.safe_load(read_text(folder, SWEEP_FILE))
    launch = json.loads(read_text(folder, LAUNCH_FILE))
    summary = summarize(folder, resolved["objective"]["metric"], resolved["objective"]["mode"])
    summary.searched = sorted(resolved.get("search_space") or {})
    uri = (resolved.get("mlflow") or {}).get("tracking_uri")
    if uri:
        summary.tracking_uri = _absolute_sqlite(uri, Path(launch["cwd"]))
        runs = _mlflow_runs(summary.tracking_uri, resolved["name"], folder)
        for row in summary.trials:
            row.mlflow_run_id = runs.get(row.trial_id, "")
    return summary


def _absolute_sqlite(uri: str, cwd: Path) -> str:
    # `sqlite:///mlflow.db` meant the launch directory; `report` may run from elsewhere.
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(cwd / uri[len(prefix):])
    return uri


def _mlflow_runs(tracking_uri: str, experiment: str, experiment_path: str) -> dict[str, str]:
    """trial id -> child run id; empty when the store is missing (never creates one)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).is_file():
        return {}
    from mlflow.tracking import MlflowClient

    from collapsetune.tracking import PATH_TAG, TRIAL_TAG, children

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{PATH_TAG}` = '{experiment_path}'")
    if not runs:
        return {}
    return {
        r.data.tags[TRIAL_TAG]: r.info.run_id
        for r in children(client, found.experiment_id, runs[0].info.run_id)
        if TRIAL_TAG in r.data.tags
    }


def _last_error(trial_path: str) -> str:
    """The last line of the trial's error.txt (Tune writes one per failure)."""
    from collapsetune.storage import read_text

    try:
        lines = read_text(trial_path, "error.txt").strip().splitlines()
    except Exception:  # a missing or unreadable file only costs the summary its detail
        return "error"
    return lines[-1][:300] if lines else "error"


def format_summary(summary: Summary) -> str:
    lines = [f"Sweep {summary.experiment_path}"]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    lines.append(f"  trials: {counts or 'none'}")
    for t in summary.trials:
        note = f"  ({t.reason})" if t.reason else ""
        lines.append(
            f"  {t.trial_id}  {t.status:<9} iter {t.iterations:>3}  {summary.metric}={t.metric:.4g}{note}"
        )
    if summary.best is None:
        lines.append("  best healthy trial: none (every trial collapsed, diverged or failed)")
    else:
        b = summary.best
        lines.append(f"  best healthy trial: {b.trial_id}  {summary.metric}={b.metric:.4g}")
        searched = [k for k in summary.searched if k in b.config] or sorted(b.config)
        lines.extend(f"    {k}: {v}" for k, v in ((k, b.config[k]) for k in searched))
        lines.append(f"    results: {b.path}")
        if b.mlflow_run_id:
            lines.append(f"    mlflow run: {b.mlflow_run_id}")
    if summary.tracking_uri:
        lines.append(f"  browse: mlflow ui --backend-store-uri {summary.tracking_uri}   (http://127.0.0.1:5000)")
    return "\n".join(lines)
