"""The atlas's interactive page: plotly figures, plotly.js inlined once (no CDN: the page
must open offline and inside MLflow's artifact viewer)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from collapsetune.atlas._panels import (
    COLLAPSED,
    COLOURS,
    GROUPS,
    IMPORTANCE_TITLE,
    PARALLEL_TITLE,
    PARETO_TITLE,
    RATE_TITLE,
    TRAJECTORY_TITLE,
    Importance,
    Parallel,
    Pareto,
    Rates,
    Trajectories,
)

_LAYOUT = {"template": "plotly_white", "margin": {"l": 70, "r": 30, "t": 90, "b": 60}, "font": {"size": 12}}


def parallel_figure(p: Parallel) -> go.Figure:
    colour = [GROUPS.index(g) for g in p.groups]
    n = len(GROUPS)
    scale = []  # stepped: one solid band per group
    for i, g in enumerate(GROUPS):
        scale += [(i / n, COLOURS[g]), ((i + 1) / n, COLOURS[g])]
    dims = [
        {"label": a.label, "values": a.values.tolist(), "tickvals": [t for t, _ in a.ticks],
         "ticktext": [s for _, s in a.ticks],
         "range": [min(t for t, _ in a.ticks + [(float(a.values.min()), "")]),
                   max(t for t, _ in a.ticks + [(float(a.values.max()), "")])]}
        for a in p.axes
    ]
    fig = go.Figure(go.Parcoords(
        line={"color": colour, "colorscale": scale, "cmin": -0.5, "cmax": n - 0.5, "showscale": True,
              "colorbar": {"tickvals": list(range(n)), "ticktext": list(GROUPS), "title": {"text": "outcome"},
                           "len": 0.6}},
        dimensions=dims, labelangle=-15))
    fig.update_layout(title={"text": PARALLEL_TITLE}, height=500, **_LAYOUT)
    fig.update_layout(margin={"t": 140})  # room for the tilted axis labels under the title
    return _noted(fig, p.note)


def rate_figure(r: Rates) -> go.Figure:
    names = list(r.per_knob)
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names or [""], vertical_spacing=0.45 / rows)
    for i, name in enumerate(names):
        bars = r.per_knob[name]
        fig.add_trace(go.Bar(
            x=[b.label for b in bars], y=[b.rate for b in bars], marker_color=COLOURS[COLLAPSED],
            text=[f"{b.collapsed}/{b.judged}" for b in bars], textposition="outside", showlegend=False,
            hovertemplate="%{x}: %{text} collapsed<extra>" + html.escape(name) + "</extra>"),
            row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%", title_text="collapse rate")
    fig.update_layout(title={"text": RATE_TITLE}, height=300 * rows + 120, **_LAYOUT)
    fig.update_layout(margin={"t": 120})
    return _noted(fig, r.note)


def trajectory_figure(t: Trajectories, max_iterations: int) -> go.Figure:
    fig = go.Figure()
    shown: set[str] = set()
    for line in t.lines:
        fig.add_trace(go.Scatter(
            x=line.steps, y=line.values, mode="lines", line={"color": COLOURS[line.group], "width": 1.5},
            opacity=0.8, name=line.group, legendgroup=line.group, showlegend=line.group not in shown,
            legendrank=GROUPS.index(line.group),
            hovertemplate=f"{line.trial_id} ({line.outcome})<br>report %{{x}}: %{{y:.4g}}<extra></extra>"))
        shown.add(line.group)
    stops = [ln for ln in t.lines if ln.stopped]
    if stops:
        fig.add_trace(go.Scatter(
            x=[ln.stopped[0] for ln in stops], y=[ln.stopped[1] for ln in stops], mode="markers",
            marker={"symbol": "x", "size": 10, "color": [COLOURS[ln.group] for ln in stops],
                    "line": {"width": 1, "color": "black"}},
            name="stopped here", text=[f"{ln.trial_id} ({ln.outcome})" for ln in stops],
            hovertemplate="%{text} stopped at report %{x}<extra></extra>"))
    for value, label in t.thresholds:
        fig.add_hline(y=value, line={"dash": "dash", "color": "black", "width": 1},
                      annotation_text=label, annotation_position="top left")
    fig.update_xaxes(title_text="report", range=[0.5, max(max_iterations, 1) + 0.5])
    fig.update_yaxes(title_text=t.metric)
    fig.update_layout(title={"text": TRAJECTORY_TITLE.format(metric=t.metric)}, height=420, **_LAYOUT)
    return _noted(fig, t.note)


def pareto_figure(p: Pareto) -> go.Figure:
    fig = go.Figure()
    for g in GROUPS:
        pts = [q for q in p.points if q.group == g]
        if pts:
            fig.add_trace(go.Scatter(
                x=[q.x for q in pts], y=[q.y for q in pts], mode="markers", name=g,
                marker={"color": COLOURS[g], "size": 10, "line": {"width": 1, "color": "white"}},
                text=[f"{q.trial_id} ({q.outcome})" for q in pts],
                hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"))
    if p.front:
        fig.add_trace(go.Scatter(
            x=[q.x for q in p.front], y=[q.y for q in p.front], mode="lines+markers", name="healthy Pareto front",
            line={"color": "black", "dash": "dot", "shape": "hv" if len(p.front) > 1 else "linear"},
            marker={"symbol": "circle-open", "size": 16, "color": "black"}, hoverinfo="skip"))
    fig.update_xaxes(title_text=f"{p.x_metric or 'no diversity metric'} (last report)")
    fig.update_yaxes(title_text=f"{p.y_metric} (last report)")
    fig.update_layout(title={"text": PARETO_TITLE}, height=440, **_LAYOUT)
    return _noted(fig, p.note)


def importance_figure(imp: Importance) -> go.Figure:
    fig = go.Figure()
    for values, name, colour, note in ((imp.collapse, "for collapse", COLOURS[COLLAPSED], imp.collapse_note),
                                       (imp.objective, "for the objective", "#1f77b4", imp.objective_note)):
        if values is not None:
            fig.add_trace(go.Bar(y=imp.knobs, x=values, orientation="h", name=f"{name} ({note})",
                                 marker_color=colour, hovertemplate="%{y}: %{x:.0%}<extra>" + name + "</extra>"))
    fig.update_layout(barmode="group", title={"text": IMPORTANCE_TITLE}, height=max(300, 70 * len(imp.knobs) + 160),
                      legend={"orientation": "h", "y": -0.25}, **_LAYOUT)
    fig.update_xaxes(title_text="share of permutation importance", tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(autorange="reversed")  # knobs top to bottom in search-space order
    notes = [f"collapse: {imp.collapse_note}" if imp.collapse is None else "",
             f"objective: {imp.objective_note}" if imp.objective is None else ""]
    return _noted(fig, "; ".join(n for n in notes if n))


def _noted(fig: go.Figure, note: str) -> go.Figure:
    """The note as the figure's subtitle (what the panel could not show, or how many it counts)."""
    if note:
        fig.update_layout(title={"subtitle": {"text": html.escape(note), "font": {"size": 11, "color": "#555"}}})
    return fig


def page(title: str, header_html: str, sections: Sequence[tuple[str, str, go.Figure]], footer_html: str = "") -> str:
    """One self-contained HTML page: header, then per panel its heading, caption and figure."""
    parts = []
    for i, (heading, caption, fig) in enumerate(sections):
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"panel-{i}",
                          config={"displaylogo": False, "responsive": True})
        parts.append(f'<section><h2>{html.escape(heading)}</h2><p class="caption">{html.escape(caption)}</p>'
                     f"{div}</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>{header_html}{''.join(parts)}{footer_html}</body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;"
    "color:#222;padding:0 16px}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}"
    ".caption{color:#555;margin:.2em 0 .6em}table{border-collapse:collapse;font-size:.85em}"
    "td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
    ".healthy{color:#2ca02c}.collapsed,.collapsing{color:#d62728}.diverged{color:#9467bd}"
    "code{background:#f4f4f4;padding:0 3px}"
)
