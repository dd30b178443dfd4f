"""PNG copies of the atlas panels, drawn with matplotlib (Agg): readable where scripts are
not (a README, an image preview, a sandboxed viewer). Same numbers and titles as the page."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

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
from collapsetune.plots import plt, save_figure


def _title(fig, ax, title: str, note: str) -> None:
    fig.suptitle(title, fontsize=12, x=0.01, ha="left")
    if note:
        ax.set_title(textwrap.fill(note, 100), fontsize=8, color="#555", loc="left")


def parallel_png(p: Parallel, path: Path) -> Path:
    n = len(p.axes)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * n + 1.5), 4.6))
    fig.subplots_adjust(left=0.06, right=0.86, top=0.82, bottom=0.16)
    spans = []
    for a in p.axes:
        lo = min(min(t for t, _ in a.ticks), float(a.values.min()))
        hi = max(max(t for t, _ in a.ticks), float(a.values.max()))
        spans.append((lo, hi if hi > lo else lo + 1.0))
    scaled = np.array([[(a.values[i] - lo) / (hi - lo) for a, (lo, hi) in zip(p.axes, spans)]
                       for i in range(len(p.groups))]).reshape(len(p.groups), n)
    order = sorted(range(len(p.groups)), key=lambda i: GROUPS.index(p.groups[i]), reverse=True)
    for i in order:  # healthy drawn last, on top
        ax.plot(range(n), scaled[i], color=COLOURS[p.groups[i]], alpha=0.75, lw=1.4)
    for j, (a, (lo, hi)) in enumerate(zip(p.axes, spans)):
        ax.axvline(j, color="#444", lw=0.8)
        for t, label in a.ticks:
            ax.text(j + 0.03, (t - lo) / (hi - lo), label, fontsize=7, va="center")
    ax.set_xticks(range(n), [a.label for a in p.axes], fontsize=8, rotation=10)
    ax.set_yticks([])
    ax.set_xlim(-0.1, n - 0.6 if n > 1 else 0.6)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [plt.Line2D([], [], color=COLOURS[g], lw=2, label=g) for g in GROUPS if g in p.groups]
    fig.legend(handles=handles, loc="center right", fontsize=8, title="outcome", title_fontsize=8)
    _title(fig, ax, PARALLEL_TITLE, p.note)
    return save_figure(fig, path)


def rate_png(r: Rates, path: Path) -> Path:
    names = list(r.per_knob)
    cols = min(2, max(1, len(names)))  # 840 px: fits the parent run's description beside MLflow's assistant
    rows = max(1, math.ceil(len(names) / cols))
    height = 2.9 * rows + 1.0  # inches: rows of bars, plus a fixed band for the title and note
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, height), squeeze=False)
    fig.subplots_adjust(top=1 - 0.85 / height, bottom=0.65 / height, hspace=0.6)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, names):
        bars = r.per_knob[name]
        x = np.arange(len(bars))
        ax.bar(x, [b.rate for b in bars], color=COLOURS[COLLAPSED])
        for xi, b in zip(x, bars):
            ax.text(xi, b.rate + 0.03, f"{b.collapsed}/{b.judged}", ha="center", fontsize=7)
        ax.set_xticks(x, [b.label for b in bars], fontsize=7, rotation=20)
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("collapse rate", fontsize=8)
        ax.set_title(name, fontsize=9)
    _title(fig, axes.flat[0], RATE_TITLE, "")
    if r.note:
        fig.text(0.01, 1 - 0.5 / height, r.note, fontsize=8, color="#555", va="top")
    if not names:
        axes.flat[0].set_axis_off()
    return save_figure(fig, path)


def trajectory_png(t: Trajectories, max_iterations: int, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    fig.subplots_adjust(top=0.84, right=0.8)
    seen: set[str] = set()
    for line in sorted(t.lines, key=lambda ln: GROUPS.index(ln.group)):  # legend in GROUPS order
        ax.plot(line.steps, line.values, color=COLOURS[line.group], lw=1.3, alpha=0.8,
                zorder=3 + len(GROUPS) - GROUPS.index(line.group),  # healthy on top
                label=line.group if line.group not in seen else None)
        seen.add(line.group)
        if line.stopped:
            ax.plot(*line.stopped, marker="x", ms=8, mew=2, color=COLOURS[line.group])
    for value, label in t.thresholds:
        ax.axhline(value, ls="--", color="black", lw=1)
        ax.annotate(label, (0.6, value), fontsize=7, va="bottom")
    if any(ln.stopped for ln in t.lines):
        ax.plot([], [], "x", color="black", label="stopped here")
    ax.set_xlim(0.5, max(max_iterations, 1) + 0.5)
    ax.set_xlabel("report")
    ax.set_ylabel(t.metric)
    if t.lines:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _title(fig, ax, TRAJECTORY_TITLE.format(metric=t.metric), t.note)
    return save_figure(fig, path)


def pareto_png(p: Pareto, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    fig.subplots_adjust(top=0.84, right=0.76)
    for g in GROUPS:
        pts = [q for q in p.points if q.group == g]
        if pts:
            ax.scatter([q.x for q in pts], [q.y for q in pts], color=COLOURS[g], s=40, label=g, edgecolor="white")
    if p.front:
        ax.step([q.x for q in p.front], [q.y for q in p.front], where="post", color="black", ls=":", lw=1.2)
        ax.scatter([q.x for q in p.front], [q.y for q in p.front], s=140, facecolor="none", edgecolor="black",
                   label="healthy Pareto front")
    ax.set_xlabel(f"{p.x_metric or 'no diversity metric'} (last report)")
    ax.set_ylabel(f"{p.y_metric} (last report)")
    if p.points:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _title(fig, ax, PARETO_TITLE, p.note)
    return save_figure(fig, path)


def importance_png(imp: Importance, path: Path) -> Path:
    n = max(1, len(imp.knobs))
    height = 0.45 * n + 2.4  # inches: bars, plus a fixed band for the title and the legend
    fig, ax = plt.subplots(figsize=(7.5, height))
    fig.subplots_adjust(top=1 - 0.75 / height, left=0.22, bottom=1.3 / height)
    y = np.arange(len(imp.knobs))
    drawn = False
    for offset, values, label, colour in ((-0.2, imp.collapse, f"for collapse ({imp.collapse_note})", COLOURS[COLLAPSED]),
                                          (0.2, imp.objective, f"for the objective ({imp.objective_note})", "#1f77b4")):
        if values is not None:
            ax.barh(y + offset, values, height=0.38, color=colour, label=label)
            drawn = True
    ax.set_yticks(y, imp.knobs, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of permutation importance", fontsize=8)
    ax.set_xlim(0, 1)
    if drawn:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.7 / (height - 2.05)), ncol=1)
    notes = [f"collapse: {imp.collapse_note}" if imp.collapse is None else "",
             f"objective: {imp.objective_note}" if imp.objective is None else ""]
    _title(fig, ax, IMPORTANCE_TITLE, "; ".join(x for x in notes if x))
    return save_figure(fig, path)
