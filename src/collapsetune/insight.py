"""What a sweep found, in the words MLflow users read: the parent run's description, params
and metrics, and a one-line verdict for each child run. `collapsetune.tracking.publish_sweep`
writes them (with the collapse atlas) onto the runs; this module only says them.

Everything is computed from the results folder (`collapsetune.results`), so the driver-side
callback, `report` and a later re-publish all say the same thing.

Example:
    >>> trial_note({"collapse.status": "collapsed", "collapse.iteration": 9,
    ...             "collapse.reason": "collapse/unique_tokens=6 < 15 for 3 reports"})
    'collapsed at report 9: collapse/unique_tokens=6 < 15 for 3 reports'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from collapsetune.collapse import (
    COLLAPSED,
    COLLAPSING,
    DIVERGED,
    ERROR,
    HEALTHY,
    INCONCLUSIVE,
    OUTCOMES,
    RUNNING,
    UNJUDGED,
)
from collapsetune.escape import markdown, markdown_code
from collapsetune.tracking._names import PARAM_MAX as _PARAM_MAX
from collapsetune.tracking._names import TAG_MAX as _TAG_MAX
from collapsetune.tracking._names import flatten, mlflow_key
from collapsetune.names import EXPERIMENT_KIND_TAG, NOTE_TAG
from collapsetune.report import BEST_ACCEPTS, summary_of
from collapsetune.results import (
    ATLAS_DIR,
    SweepInfo,
    SweepResults,
    TrialResult,
    judge,
    parse_sweep,
)

__all__ = ["EXPERIMENT_KIND_TAG", "NOTE_TAG", "sweep_metrics", "sweep_note", "sweep_params", "trial_note"]

# Without it MLflow 3's sidebar switches to its GenAI view when a link is followed.
_ML_VIEW = "?workflowType=machine_learning"
_NOTE_BUDGET = 7500  # characters of description, under the tag limit with room to spare


# -- what is written ------------------------------------------------------------------


def sweep_note(results: SweepResults, run_ids: Mapping[str, str] | None = None, experiment_id: str = "",
               parent_run_id: str = "", pictures: bool = False) -> str:
    """The parent run's description (Markdown): outcomes, the best healthy trial and its
    config, what was stopped and when, the rules, where the atlas is. Under MLflow's tag limit.

    With `pictures` (and the parent run's id), two atlas PNGs logged on the parent run are
    shown in the description itself, through the tracking server's `get-artifact` address.
    Every user string in it (names, values, rules, reasons, paths) is escaped
    (`collapsetune.escape.markdown`): no HTML, link or image of a user's making."""
    runs = dict(run_ids or {})
    summary = summary_of(results)
    sweep = results.sweep
    stopped = [t for t in summary.trials if t.status != HEALTHY]
    n = len(summary.trials)
    collapsed = sum(summary.counts.get(s, 0) for s in (COLLAPSED, COLLAPSING))
    head = [f"## {markdown(sweep.name) or 'Sweep'}: {collapsed} of {n} trials collapsed", ""]
    order = sorted(summary.counts, key=lambda s: OUTCOMES.index(s) if s in OUTCOMES else len(OUTCOMES))
    head.append(" · ".join(f"**{summary.counts[s]}** {markdown(s)}" for s in order) or "no trials yet")
    head.append("")
    if results.stopped:
        from collapsetune.collapse._breaker import stopped_sentence

        sentence = stopped_sentence(results.stopped)
        head += [f"**Stopped early:** {markdown(sentence[0].upper() + sentence[1:])}.", ""]
    copied = [t for t in results.trials if t.copies]
    if copied:  # PBT
        rescued = [t for t in copied if any(c.startswith("rescued") for c in t.copies)]
        head += [f"**PBT** copied a checkpoint into {len(copied)} trial(s); {len(rescued)} of them were rescued "
                 f"after collapsing or diverging, and {sum(t.outcome == HEALTHY for t in rescued)} of those "
                 "ended healthy (each run's tag `collapsetune.pbt.exploits` lists its copies).", ""]
    b = summary.best
    if b is None:
        head.append(f"**Best healthy trial:** none (a healthy trial {BEST_ACCEPTS}).")
    else:
        lowest = "lowest" if sweep.mode == "min" else "highest"
        head.append(f"**Best healthy trial:** {_link(b.trial_id, runs, experiment_id)}, "
                    f"{markdown_code(sweep.objective)} = {b.metric:.4g} ({lowest} among healthy trials)")
        head.append("")
        keys = [k for k in summary.searched if k in b.config] or sorted(b.config)
        head.extend(f"- {markdown_code(k)}: {markdown(b.config[k])}" for k in keys)
    head.append("")
    if sweep.rules:
        head.append("**Collapse rules** (any one marks a trial collapsed):")
        head.extend(f"{i + 1}. {markdown(r.text())} for {r.patience} report(s) in a row, "
                    f"after {r.grace} report(s) of grace" for i, r in enumerate(sweep.rules))
        head.append("")
    tail = ["", f"_Healthy_: {BEST_ACCEPTS}; a trial that ended before its rules could judge it, "
            "or while a collapse condition held, is _inconclusive_.", "", f"**Collapse atlas:** artifacts {_atlas_link(experiment_id, parent_run_id)} (interactive: which knobs drive "
            "collapse, trajectories, quality against diversity, importance) and its PNG copies. "
            f"Results folder: {markdown_code(results.path)}."]
    if pictures and parent_run_id:
        tail[-1:-1] = [f"![{name}](get-artifact?path={ATLAS_DIR}%2F{name}&run_uuid={parent_run_id})"
                       for name in ("collapse_rate.png", "importance.png")] + [""]
    tail.extend(f"\n_note: {markdown(x)}_" for x in results.notes)
    lines = list(head)
    if stopped:
        # A list, not a table: MLflow draws a Markdown table with no space between its
        # columns ("collapsed9"), and a list wraps to whatever width MLflow leaves.
        lines += ["### What was stopped, and when", ""]
        budget = _NOTE_BUDGET - len("\n".join(head + tail)) - 200
        for i, t in enumerate(sorted(stopped, key=lambda t: (t.collapse_iteration or t.iterations, t.trial_id))):
            why = _cut(markdown(t.reason), 300)
            row = (f"- {_link(t.trial_id, runs, experiment_id)}: **{markdown(t.status)}** at report "
                   f"{t.collapse_iteration or t.iterations}" + (f" — {why}" if why else ""))
            budget -= len(row) + 1
            if budget < 0:
                lines.append(f"- … and {len(stopped) - i} more: see the atlas's trial table")
                break
            lines.append(row)
    return "\n".join(lines + tail)[:_TAG_MAX]


def sweep_params(results: SweepResults) -> dict[str, str]:
    """The sweep's settings as MLflow params: `search_space.<knob>`, `config.<key>` (nested keys
    dotted), objective, rules and the sweep's shape. Keys MLflow refuses are rewritten the same
    way every time, so a re-publish finds them again."""
    sweep, raw = results.sweep, results.sweep.raw
    params: dict[str, Any] = {
        "objective": f"{sweep.objective} ({sweep.mode})",
        "max_iterations": sweep.max_iterations,
        "num_samples": raw.get("num_samples"),
        "trainable": raw.get("trainable"),
        "search.algorithm": (raw.get("search") or {}).get("algorithm") if isinstance(raw.get("search"), dict) else None,
        "scheduler.type": (raw.get("scheduler") or {}).get("type") if isinstance(raw.get("scheduler"), dict) else None,
    }
    params.update({f"search_space.{k}": d.describe() for k, d in sweep.search_space.items()})
    params.update({f"config.{k}": v for k, v in flatten(sweep.config).items()})
    params.update({f"collapse.{i}": f"{r.text()}, patience {r.patience}, grace {r.grace}"
                   for i, r in enumerate(sweep.rules)})
    return {mlflow_key(k): str(v)[:_PARAM_MAX] for k, v in params.items() if v is not None}


def sweep_metrics(results: SweepResults) -> dict[str, float]:
    """Trial counts by outcome (`trials/<outcome>`, the four main ones always present) and the
    best healthy objective (`best/<objective metric>`)."""
    counts = results.counts()
    metrics = {f"trials/{s}": float(counts.get(s, 0)) for s in (HEALTHY, COLLAPSED, DIVERGED, ERROR)}
    metrics.update({f"trials/{s}": float(n) for s, n in counts.items()})
    metrics["trials/total"] = float(len(results.trials))
    best = results.best()
    if best is not None:
        metrics[mlflow_key(f"best/{results.sweep.objective}")] = best.value(results.sweep.objective)
    return {mlflow_key(k): v for k, v in metrics.items() if math.isfinite(v)}


def trial_note(
    result: Mapping[str, Any],
    *,
    state: str = "finished",
    error: str = "",
    sweep: SweepInfo | str | None = None,
) -> str:
    """A trial's verdict in one line, for its child run's description.

    Args:
        result: The trial's last result (Ray's `trial.last_result`), with the verdict keys.
        state: finished | error | running, or Ray's TERMINATED | ERROR | RUNNING | PENDING | PAUSED.
        error: The error's text for a failed trial (its last line is used).
        sweep: The sweep (a `SweepInfo` or the resolved sweep.yaml's text), to tell a trial
            the scheduler cut before a verdict from a healthy one; without it a trial that
            reports healthy is called healthy.

    Example:
        >>> trial_note({"collapse.status": "healthy", "training_iteration": 8, "val/loss": 1.87})
        'healthy at report 8'
    """
    info = parse_sweep(sweep) if isinstance(sweep, str) else sweep
    states = {"TERMINATED": "finished", "ERROR": "error", "RUNNING": "running", "PENDING": "pending",
              "PAUSED": "pending"}
    report = {k: v for k, v in result.items() if k != "config"}
    trial = TrialResult(
        trial_id=str(result.get("trial_id", "")), path="", config={},
        reports=[report] if report else [], state=states.get(state, state),
        verdict=str(result.get("collapse.status", "")), reason=str(result.get("collapse.reason", "") or ""),
        collapse_iteration=int(result.get("collapse.iteration") or 0),
        error=_last_line(str(error or "")),
    )
    if info is None:
        info = SweepInfo("", "", "min", 0, {}, {}, (), None)
    return _trial_note(trial, info)


def _trial_note(t: TrialResult, sweep: SweepInfo) -> str:
    outcome, why = judge(t, sweep) if not t.outcome else (t.outcome, t.note)
    n = t.iterations
    objective = t.value(sweep.objective) if sweep.objective else math.nan
    score = f"; {sweep.objective}={objective:.4g}" if math.isfinite(objective) else ""
    if outcome == ERROR:
        return f"failed at report {n}: {t.error or 'error'}"
    if outcome == RUNNING:
        total = f" of {sweep.max_iterations}" if sweep.max_iterations else ""
        return f"running: report {n}{total}"
    if outcome in (COLLAPSING, UNJUDGED, INCONCLUSIVE):
        return f"{outcome}: {why}{score}"
    if outcome == HEALTHY:
        if sweep.max_iterations and n >= sweep.max_iterations:
            return f"healthy: ran all {n} reports{score}"
        return f"healthy: {why}{score}" if why else f"healthy at report {n}{score}"
    at = t.collapse_iteration or n
    return f"{outcome} at report {at}: {t.reason}" if t.reason else f"{outcome} at report {at}"


# -- helpers --------------------------------------------------------------------------


def _link(trial_id: str, runs: Mapping[str, str], experiment_id: str) -> str:
    if trial_id in runs and experiment_id:  # the address holds MLflow's ids only
        return f"[{markdown(trial_id)}](#/experiments/{experiment_id}/runs/{runs[trial_id]}{_ML_VIEW})"
    return markdown_code(trial_id)


def _atlas_link(experiment_id: str, parent_run_id: str) -> str:
    page = f"{ATLAS_DIR}/atlas.html"
    if experiment_id and parent_run_id:
        return f"[{page}](#/experiments/{experiment_id}/runs/{parent_run_id}/artifacts/{page}{_ML_VIEW})"
    return f"`{page}`"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _cut(text: str, limit: int) -> str:
    """Escaped text cut to about `limit` characters, never inside an escape (`\\|`, `&lt;`)."""
    cut = text[:limit]
    if len(cut) < len(text):
        if cut.rfind("&") > cut.rfind(";"):  # every `&` of escaped text starts an entity
            cut = cut[:cut.rfind("&")]
        if (len(cut) - len(cut.rstrip("\\"))) % 2:  # a backslash whose character was cut off
            cut = cut[:-1]
    return cut
