"""Sweep summaries from a results folder: trials best first, why each one stopped, the best
healthy trial, and where to look next (its MLflow run, the runs view, the collapse atlas).

Reads the folder through `collapsetune.results` (JSON/YAML only) and, when the sweep logged
to MLflow, finds the runs of its trials through MLflow's client (`collapsetune.tracking`'s
`find_runs`; MLflow is imported only then, a few seconds). Imports neither Ray nor torch.

Example:
    >>> summary = load_summary("results/bitnet-collapse-20261122-150000")  # doctest: +SKIP
    >>> print(format_summary(summary))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from collapsetune._numbers import is_finite_number
from collapsetune.collapse import HEALTHY, OUTCOMES
from collapsetune.collapse._breaker import STOPPED_WITH_SWEEP, stopped_sentence
from collapsetune.escape import terminal
from collapsetune.names import ATLAS_PAGE, FORECAST_KEY, OBJECTIVE_KEY
from collapsetune.pareto import front as pareto_front
from collapsetune.results import (
    ATLAS_DIR,
    ResultsError,
    SweepResults,
    TrialResult,
    list_launches,
    read_results,
)
from collapsetune.tracking._store import RunIndex, find_runs

__all__ = ["ATLAS_PAGE", "RunIndex", "Summary", "TrialRow", "find_runs", "format_launches", "format_summary",
           "launches_of", "load_summary",
           "known_ui", "run_url", "why_healthy", "runs_url", "summary_of", "ui_base"]

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
UI_ENV = "COLLAPSETUNE_MLFLOW_URL"  # MLflow's UI address, for links, where the store does not say it
# Said beside a link that assumes `mlflow ui`'s default address.
PORT_HINT = f"mlflow ui's default address; with `mlflow ui --port P` set {UI_ENV}=http://127.0.0.1:P"
# What "best healthy" accepts, said next to it (a trial cut before its rules could judge it,
# or cut while a condition held, is not healthy: see collapsetune.results.judge).
BEST_ACCEPTS = "ran every report, or was cut after its rules could fire with none holding"


@dataclass
class TrialRow:
    trial_id: str
    status: str  # outcome: healthy | collapsed | diverged | error | collapsing | unjudged | running
    reason: str  # the rule or error that ended it, or why its outcome is not its verdict
    iterations: int
    objective: float  # the penalised objective Ray saw (1e9 once collapsed when minimising)
    metric: float  # the objective metric itself, on the last report
    config: dict[str, Any]
    path: str
    mlflow_run_id: str = ""
    state: str = ""  # Ray's: finished | error | running | pending
    collapse_iteration: int = 0  # report where the verdict turned; 0 while healthy
    copied: bool = False  # PBT copied another trial into it: `config` is its last, not its first
    stopped_with_sweep: bool = False  # the `stop_sweep_when:` breaker ended the sweep while it ran
    forecast: float | None = None  # with `collapse_forecast:`, the last P(ends collapsed) the trial carried


@dataclass
class Summary:
    experiment_path: str
    metric: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    trials: list[TrialRow] = field(default_factory=list)  # best first
    best: TrialRow | None = None
    tracking_uri: str | None = None
    searched: list[str] = field(default_factory=list)  # search-space keys, shown first
    name: str = ""
    experiment_id: str = ""  # MLflow's, when the store has the sweep
    parent_run_id: str = ""
    runs_url: str = ""  # MLflow's runs view of the experiment
    atlas: str = ""  # the atlas page, when one was written into the results folder
    notes: list[str] = field(default_factory=list)  # what could not be read
    objectives: list[list[str]] = field(default_factory=list)  # [metric, mode] of each, with several
    pareto: list[dict[str, Any]] = field(default_factory=list)  # healthy trials no other beats on all
    max_iterations: int = 0  # reports a trial may make (the sweep's max_iterations)
    ui_url: str = ""  # MLflow's UI address where known (`known_ui`); links otherwise assume LOCAL_UI
    stopped: str = ""  # why the `stop_sweep_when:` breaker ended the sweep; "" when it did not

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def load_summary(results_dir: str, mlflow: bool = True, ui_url: str = "") -> Summary:
    """The summary of a results folder made by `collapsetune run`, with its MLflow runs
    when `mlflow` and the sweep's store exists (a missing store is never created); links
    point at `ui_url` when given (else `known_ui`'s answer, else mlflow ui's default)."""
    results = read_results(results_dir)
    summary = summary_of(results)
    if mlflow and results.sweep.tracking_uri:
        uri = _absolute_sqlite(results.sweep.tracking_uri, Path(results.launch.get("cwd") or Path.cwd()))
        summary.tracking_uri = _without_credentials(uri)
        summary.ui_url = known_ui(uri, ui_url)
        try:
            index = find_runs(uri, results.sweep.name, results.path)
        except Exception as exc:  # noqa: BLE001 - a store that does not answer costs only the links
            why = re.sub(r"//[^/@\s]*@", "//", str(exc))[:300]  # no credentials in what is printed
            if "out-of-date database schema" in why:  # MLflow's words hold the store's versions and run on
                summary.notes.append("MLflow store not read: it holds another MLflow version's schema; back it "
                                     f"up, then run `mlflow db upgrade {summary.tracking_uri}`")
            else:
                summary.notes.append(f"MLflow store not read ({type(exc).__name__}: {why})")
            index = RunIndex()
        summary.experiment_id, summary.parent_run_id = index.experiment_id, index.parent_run_id
        if index.experiment_id:
            summary.runs_url = runs_url(index.experiment_id, summary.ui_url or LOCAL_UI)
        for row in summary.trials:
            row.mlflow_run_id = index.children.get(row.trial_id, "")
    return summary


def summary_of(results: SweepResults) -> Summary:
    """The summary of already-read results (no MLflow look-up)."""
    sweep = results.sweep
    summary = Summary(results.path, sweep.objective, sweep.mode, name=sweep.name,
                      searched=sorted(sweep.search_space), notes=list(results.notes))
    summary.counts = results.counts()
    summary.max_iterations = sweep.max_iterations
    summary.stopped = results.stopped
    summary.trials = [_row(t, sweep.objective) for t in sorted(results.trials, key=lambda t: _rank(t, results))]
    best = results.best()
    summary.best = next((r for r in summary.trials if best and r.trial_id == best.trial_id), None)
    summary.atlas = _atlas_page(results.path)
    if len(sweep.objectives) > 1:
        summary.objectives = [list(o) for o in sweep.objectives]
        summary.pareto = _pareto(results)
    return summary


def _pareto(results: SweepResults) -> list[dict[str, Any]]:
    """With several objectives: the healthy trials no other healthy trial beats on all of them."""
    metrics = [m for m, _ in results.sweep.objectives]
    healthy = [t for t in results.trials if t.outcome == HEALTHY
               and all(math.isfinite(t.value(m)) for m in metrics)]
    on_front = pareto_front([[t.value(m) for m in metrics] for t in healthy],
                            [mode for _, mode in results.sweep.objectives])
    return [{"trial_id": healthy[i].trial_id, **{m: healthy[i].value(m) for m in metrics}} for i in on_front]


def _row(t: TrialResult, metric: str) -> TrialRow:
    why = t.error or t.reason or t.note
    if t.reason and t.note:
        why = f"{t.reason} ({t.note})"
    if t.copies:  # PBT: where its weights came from
        why = "; ".join(filter(None, [why, *t.copies]))
    return TrialRow(
        trial_id=t.trial_id, status=t.outcome, reason=why, iterations=t.iterations,
        objective=t.value(OBJECTIVE_KEY), metric=t.value(metric), config=t.config, path=t.path,
        state=t.state, collapse_iteration=t.collapse_iteration, copied=bool(t.copies),
        stopped_with_sweep=t.stopped_with_sweep,
        forecast=next((float(r[FORECAST_KEY]) for r in reversed(t.reports) if is_finite_number(r.get(FORECAST_KEY))), None),
    )


def _rank(t: TrialResult, results: SweepResults) -> tuple:
    group = OUTCOMES.index(t.outcome) if t.outcome in OUTCOMES else len(OUTCOMES)
    v = t.value(results.sweep.objective)
    key = v if results.sweep.mode == "min" else -v
    return group, not math.isfinite(key), key if math.isfinite(key) else 0.0, t.trial_id


# -- MLflow ----------------------------------------------------------------------------


def runs_url(experiment_id: str, base: str = LOCAL_UI) -> str:
    """MLflow's runs view of an experiment. The plain experiment page of MLflow 3 opens on its
    GenAI view (no runs); `workflowType=machine_learning` opens the model-training one."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def run_url(experiment_id: str, run_id: str, base: str = LOCAL_UI) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def ui_base(tracking_uri: str) -> str:
    """Where the store's UI is: `known_ui`'s answer, else `mlflow ui`'s default address."""
    return known_ui(tracking_uri) or LOCAL_UI


def known_ui(tracking_uri: str = "", given: str = "") -> str:
    """MLflow's UI address where it is known: `given` (a `--mlflow-url`), else the
    COLLAPSETUNE_MLFLOW_URL environment variable, else the tracking server itself; "" for a
    database store nobody said the UI of (`mlflow ui` may listen on any port)."""
    for address in (given, os.environ.get(UI_ENV, ""), tracking_uri or ""):
        parts = urlsplit(address.strip())
        if parts.scheme in ("http", "https") and parts.hostname:
            host = parts.hostname
            netloc = f"{host}:{parts.port}" if parts.port else host
            return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return ""


def _absolute_sqlite(uri: str, cwd: Path) -> str:
    # `sqlite:///mlflow.db` meant the launch directory; `report` may run from elsewhere.
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(cwd / uri[len(prefix):])
    return uri


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        return urlunsplit((parts.scheme, f"{host}:{parts.port}" if parts.port else host, parts.path, "", ""))
    return uri


# -- the atlas and output --------------------------------------------------------------


def _atlas_page(results_path: str) -> str:
    if "://" in results_path:
        return ""  # a remote results folder: `report --html OUT` writes the atlas locally
    page = Path(results_path) / ATLAS_DIR / ATLAS_PAGE
    return str(page) if page.is_file() else ""


def launches_of(storage: str) -> list[dict[str, Any]]:
    """One line of facts per launch in a storage folder (empty when it holds none)."""
    rows = []
    for path in list_launches(storage):
        try:
            results = read_results(path)
        except ResultsError as exc:
            rows.append({"path": path, "name": "", "counts": {}, "problem": exc.message})
            continue
        rows.append({"path": path, "name": results.sweep.name, "counts": results.counts(), "problem": ""})
    return rows


def format_launches(storage: str, launches: list[dict[str, Any]]) -> str:
    lines = [f"{len(launches)} launch{'es' if len(launches) != 1 else ''} in {storage} "
             f"(`collapsetune report LAUNCH` for one):"]
    for row in launches:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(row["counts"].items(), key=lambda kv: _order(kv[0])))
        lines.append(f"  {row['path']}  {row['problem'] or counts or 'no trials yet'}")
    return _printable(lines)


def _printable(lines: list[str]) -> str:
    """What a terminal is given: folder names, values, reasons and errors come from files
    anyone could have written, so their control characters are shown, never sent."""
    return "\n".join(terminal(line) for line in lines)


def _order(outcome: str) -> int:
    return OUTCOMES.index(outcome) if outcome in OUTCOMES else len(OUTCOMES)


def format_summary(summary: Summary) -> str:
    lines = [f"Sweep {summary.name} ({summary.experiment_path})" if summary.name else f"Sweep {summary.experiment_path}"]
    order = sorted(summary.counts, key=_order)
    counts = ", ".join(f"{summary.counts[s]} {s}" for s in order)
    lines.append(f"  {len(summary.trials)} trials: {counts or 'none'}")
    if summary.stopped:
        lines.append(f"  {stopped_sentence(summary.stopped)}")
    lines.extend(f"  note: {n}" for n in summary.notes)
    if summary.trials:
        width = max(len(terminal(t.trial_id)) for t in summary.trials)
        lines.append(f"  {'trial':<{width}}  {'outcome':<10} {'reports':>7}  {summary.metric:>10}  why")
    for t in summary.trials:
        why = t.reason
        if t.status != HEALTHY and t.collapse_iteration and t.reason:
            why = f"at report {t.collapse_iteration}: {t.reason}"
        lines.append(f"  {terminal(t.trial_id):<{width}}  {t.status:<10} {t.iterations:>7}  {t.metric:>10.4g}  {why}".rstrip())
    if summary.best is None:
        lines.append(f"  best healthy trial: none (a healthy trial {BEST_ACCEPTS})")
    else:
        b = summary.best
        lines.append(f"  best healthy trial: {b.trial_id}  {summary.metric}={b.metric:.4g}   "
                     f"({why_healthy(b.iterations, summary.max_iterations, b.stopped_with_sweep)})")
        searched = [k for k in summary.searched if k in b.config] or sorted(b.config)
        if b.copied:  # Ray names a trial's folder once, for its first config
            lines.append("    config on its last report, after PBT copied another trial into it (see its why above):")
        lines.extend(f"    {k}: {b.config[k]}" for k in searched)
        named = " (its folder is named for its first config, before PBT copied)" if b.copied else ""
        lines.append(f"    results{named}: {b.path}")
        if b.mlflow_run_id and summary.experiment_id:
            lines.append(f"    mlflow run: {run_url(summary.experiment_id, b.mlflow_run_id, _base(summary))}")
            lines.append(f"    mlflow run id: {b.mlflow_run_id}")
    if summary.objectives:
        names = ", ".join(f"{m} ({mode})" for m, mode in summary.objectives)
        lines.append(f"  Pareto front of healthy trials on {names}: {len(summary.pareto)} trial(s)")
        lines.extend("    " + "  ".join([p["trial_id"], *(f"{m}={p[m]:.4g}" for m, _ in summary.objectives)])
                     for p in summary.pareto)
    if summary.atlas:
        lines.append(f"  collapse atlas: {summary.atlas}")
    else:
        lines.append(f"  collapse atlas: none yet; write one with `collapsetune report {summary.experiment_path} --html`")
    if summary.tracking_uri:
        if summary.tracking_uri.startswith(("http://", "https://")):
            lines.append(f"  browse: {summary.runs_url or ui_base(summary.tracking_uri)}")
        else:
            lines.append(f"  browse: mlflow ui --backend-store-uri {summary.tracking_uri}")
            hint = "" if summary.ui_url else f"  ({PORT_HINT})"
            lines.append(f"          then open {summary.runs_url or LOCAL_UI}{hint}")
    return _printable(lines)


def why_healthy(iterations: int, max_iterations: int, stopped_with_sweep: bool = False) -> str:
    """Why a healthy trial counts as healthy, said of that trial (not `BEST_ACCEPTS`' either-or)."""
    if max_iterations and iterations >= max_iterations:
        return f"ran all {iterations} reports"
    how = STOPPED_WITH_SWEEP if stopped_with_sweep else "cut"
    return f"{how} at report {iterations}, after its rules could fire, with none holding"


def _base(summary: Summary) -> str:
    return summary.ui_url or LOCAL_UI


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
