"""The collapse atlas: one self-contained interactive HTML page (plotly, inlined) and PNG
copies (matplotlib) that answer what a sweep is run for: which knobs drive collapse, where
each trial collapsed and why, the quality/diversity trade-off, which healthy setting to take.

Panels (titles are stable strings, see `TITLES`):

1. parallel coordinates of every trial's knobs (and its objective and main diversity metric),
   coloured healthy / collapsed / diverged / other;
2. per knob, the collapse rate across its range (categories, values, or bins; log knobs
   binned in log space);
3. per collapse metric, every trial's trajectory with the rules' thresholds and an x where
   each trial was stopped;
4. the objective against the main diversity metric (the first rule's), with the front of
   healthy trials no other healthy trial beats on both;
5. knob importance for collapse next to importance for the objective (random forests,
   permutation importance).

Example:
    >>> from collapsetune.results import read_results
    >>> page = write_atlas(read_results("results/knobs-20261123-221354"), "atlas")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from collapsetune.atlas import _panels, _plotly, _png
from collapsetune.atlas._panels import (
    IMPORTANCE_TITLE,
    PARALLEL_TITLE,
    PARETO_TITLE,
    RATE_TITLE,
    TRAJECTORY_TITLE,
)
from collapsetune.collapse import COLLAPSED, HEALTHY
from collapsetune.decisions import forecast_verdict
from collapsetune.names import FORECAST_REASON
from collapsetune.report import ATLAS_PAGE, BEST_ACCEPTS, TrialRow, summary_of
from collapsetune.results import SweepResults

__all__ = ["ATLAS_PAGE", "IMPORTANCE_TITLE", "PARALLEL_TITLE", "PARETO_TITLE", "RATE_TITLE", "TITLES",
           "TRAJECTORY_TITLE", "write_atlas"]

TITLES = (PARALLEL_TITLE, RATE_TITLE, TRAJECTORY_TITLE, PARETO_TITLE, IMPORTANCE_TITLE)


def write_atlas(results: SweepResults, out_dir: str | Path, run_links: dict[str, str] | None = None,
                run_ids: dict[str, str] | None = None) -> Path:
    """Writes `atlas.html` and one PNG per panel into `out_dir`; returns the page's path.

    Args:
        results: A read results folder (`collapsetune.results.read_results`).
        out_dir: Folder to write into (made if missing; files of an earlier atlas are replaced).
        run_links: Optional trial id -> absolute URL of its MLflow run, for the best trial and
            the trial table (only where MLflow's UI address is known: a relative link means
            nothing in a page opened from a file or inside MLflow's artifact viewer).
        run_ids: Optional trial id -> MLflow run id, shown plainly beside the best trial.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    its = results.sweep.max_iterations or max((t.iterations for t in results.trials), default=1)
    par = _panels.parallel(results)
    rates = _panels.collapse_rates(results)
    trajectories = _panels.trajectories(results)
    front = _panels.pareto(results)
    imp = _panels.importance(results)

    _png.parallel_png(par, out / "parallel_coordinates.png")
    _png.rate_png(rates, out / "collapse_rate.png")
    for t in trajectories:
        _png.trajectory_png(t, its, out / f"trajectories_{_slug(t.metric)}.png")
    _png.pareto_png(front, out / "pareto_front.png")
    _png.importance_png(imp, out / "importance.png")

    diversity = front.x_metric or "no diversity metric"
    sections = [
        (PARALLEL_TITLE, "One line per trial across its knobs and final results; drag along an axis to filter.",
         _plotly.parallel_figure(par)),
        (RATE_TITLE, "Share of trials whose rules had their say that collapsed (or were cut while a "
                     "collapse condition held), per category or range of each knob.",
         _plotly.rate_figure(rates)),
        *[(TRAJECTORY_TITLE.format(metric=t.metric),
           "Each trial's value per report; dashed: the rules' thresholds; x: the report where a trial was stopped.",
           _plotly.trajectory_figure(t, its)) for t in trajectories],
        (PARETO_TITLE, f"{results.sweep.objective} ({results.sweep.mode}) against {diversity} on each trial's "
                       "last report; circled: healthy trials no other healthy trial beats on both.",
         _plotly.pareto_figure(front)),
        (IMPORTANCE_TITLE, "Random forests on the trials' knobs, permutation importance: which knobs tell "
                           "collapsed from other trials, and which move the objective among healthy ones. "
                           "A pointer, not a test: few trials make it noisy.",
         _plotly.importance_figure(imp)),
    ]
    page = out / ATLAS_PAGE
    tmp = out / f".{ATLAS_PAGE}.tmp"
    tmp.write_text(_plotly.page(f"Collapse atlas: {results.sweep.name or results.path}",
                                _header(results, run_links or {}, run_ids or {}), sections), encoding="utf-8")
    tmp.replace(page)  # atomic: MLflow never uploads half a page
    return page


def _header(results: SweepResults, links: dict[str, str], ids: dict[str, str]) -> str:
    summary = summary_of(results)
    counts = ", ".join(f'<span class="{html.escape(s)}">{n} {html.escape(s)}</span>'
                       for s, n in sorted(summary.counts.items(), key=lambda kv: -kv[1]))
    parts = [f"<p>{len(summary.trials)} trials: {counts or 'none yet'}. "
             f"Results: <code>{html.escape(results.path)}</code></p>"]
    parts.extend(f"<p class=\"caption\">note: {html.escape(n)}</p>" for n in summary.notes)
    b = summary.best
    if b is None:
        parts.append(f"<p><b>Best healthy trial:</b> none (a healthy trial {html.escape(BEST_ACCEPTS)}).</p>")
    else:
        config = ", ".join(f"<code>{html.escape(str(k))}={html.escape(str(v))}</code>" for k, v in
                           ((k, b.config[k]) for k in (summary.searched or sorted(b.config)) if k in b.config))
        run = ""
        if b.trial_id in ids:
            run = f" (MLflow run <code>{html.escape(ids[b.trial_id])}</code>)"
        if b.trial_id in links:  # the address itself too: MLflow's artifact viewer blocks links out of it
            run += (f'<br><span class="caption">open in MLflow: <a class="run-link" href="{html.escape(links[b.trial_id])}" '
                    f'target="_top">{html.escape(links[b.trial_id])}</a></span>')
        parts.append(f"<p><b>Best healthy trial:</b> {_trial(b.trial_id, links)}{run}, "
                     f"{html.escape(summary.metric)} = {b.metric:.4g}; {config}</p>")
    forecasts = any(t.forecast is not None for t in summary.trials)  # a sweep with `collapse_forecast:`
    if forecasts:
        parts.append(f"<p>{html.escape(_forecast_line(summary.trials))}</p>")
    rows = "".join(
        f'<tr><td>{_trial(t.trial_id, links)}</td><td class="{html.escape(t.status)}">{html.escape(t.status)}</td>'
        + (f"<td>{_predicted(t)}</td>" if forecasts else "")
        + f"<td>{t.iterations}</td><td>{t.metric:.4g}</td><td>{html.escape(t.reason)}</td></tr>"
        for t in summary.trials)
    forecast_head = "<th>forecast</th>" if forecasts else ""
    parts.append(f"<details><summary>Every trial, best first</summary><table><tr><th>trial</th><th>outcome</th>"
                 f"{forecast_head}<th>reports</th><th>{html.escape(summary.metric)}</th><th>why</th></tr>{rows}"
                 "</table></details>")
    return "".join(parts)


def _predicted(t: TrialRow) -> str:
    """The verdict the forecast predicted for a trial, with its last P(ends collapsed)."""
    if t.forecast is None:
        return "-"
    stopped = t.reason.startswith(FORECAST_REASON)
    return f"{forecast_verdict(t.forecast, t.reason)} (P={t.forecast:.2f}{', stopped it' if stopped else ''})"


def _forecast_line(trials: list[TrialRow]) -> str:
    """How often the forecast's last prediction matched the verdict, over the trials the rules judged."""
    judged = [t for t in trials if t.forecast is not None and t.status in (COLLAPSED, HEALTHY)
              and not t.reason.startswith(FORECAST_REASON)]
    right = sum(forecast_verdict(t.forecast, t.reason) == t.status for t in judged)
    stopped = sum(t.reason.startswith(FORECAST_REASON) for t in trials)
    return (f"Forecast (collapse_forecast): stopped {stopped} trial(s); its last prediction matched the verdict "
            f"of {right} of {len(judged)} trial(s) the rules judged (healthy or collapsed) while it forecast.")


def _trial(trial_id: str, links: dict[str, str]) -> str:
    if trial_id in links:
        return f'<a href="{html.escape(links[trial_id])}" target="_top">{html.escape(trial_id)}</a>'
    return html.escape(trial_id)


def _slug(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric).strip("_") or "metric"
