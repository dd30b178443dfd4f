"""Sweep summaries from a results folder: trials by status, the best healthy trial."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

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


@dataclass
class Summary:
    experiment_path: str
    metric: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    trials: list[TrialRow] = field(default_factory=list)
    best: TrialRow | None = None

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
            reason=last.get(REASON_KEY, "") or (str(trial.error_file or "") if status == "error" else ""),
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


def format_summary(summary: Summary, tracking_uri: str | None = None) -> str:
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
        lines.extend(f"    {k}: {v}" for k, v in sorted(b.config.items()))
        lines.append(f"    results: {b.path}")
    if tracking_uri:
        lines.append(f"  browse: mlflow ui --backend-store-uri {tracking_uri}   (http://127.0.0.1:5000)")
    return "\n".join(lines)
