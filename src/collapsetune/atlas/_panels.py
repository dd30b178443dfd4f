"""The numbers behind each atlas panel, computed once and drawn twice (plotly and matplotlib).

Pure functions of `SweepResults`; every one copes with one trial, no collapse, no search
space, categorical and log-scaled knobs, and says so in its `note` when it has little to show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collapsetune.collapse import COLLAPSED, COLLAPSING, DIVERGED, HEALTHY, RUNNING
from collapsetune.pareto import front as pareto_front
from collapsetune.results import SweepResults

# Panel titles: stable strings (tests and the browser check look for them).
PARALLEL_TITLE = "Knobs of every trial, coloured by outcome"
RATE_TITLE = "Collapse rate across each knob's range"
TRAJECTORY_TITLE = "Trajectories of {metric} with the collapse threshold"
PARETO_TITLE = "Objective against diversity, with the healthy Pareto front"
IMPORTANCE_TITLE = "Knob importance for collapse and for the objective"

# Colour groups: the four a reader tells apart at a glance; hover text and tables keep the
# exact outcome (error, unjudged, running, collapsing).
OTHER = "other"
GROUPS = (HEALTHY, COLLAPSED, DIVERGED, OTHER)
COLOURS = {HEALTHY: "#2ca02c", COLLAPSED: "#d62728", DIVERGED: "#9467bd", OTHER: "#9a9a9a"}
COLLAPSE_LIKE = (COLLAPSED, COLLAPSING)  # what a collapse rate counts
JUDGED = (HEALTHY, COLLAPSED, COLLAPSING, DIVERGED)  # trials whose rules had their say


def group(outcome: str) -> str:
    if outcome in COLLAPSE_LIKE:
        return COLLAPSED
    if outcome in (HEALTHY, DIVERGED):
        return outcome
    return OTHER


@dataclass
class Knob:
    """One swept setting across trials: raw values and a numeric encoding to draw and fit."""

    name: str
    values: list[Any]  # per trial; None where a trial lacks it
    scale: str  # linear | log | categorical
    categories: list[Any] = field(default_factory=list)  # categorical: in first-seen order

    def encoded(self) -> np.ndarray:
        """log10 for log knobs, category index for categorical ones, nan where missing."""
        out = np.full(len(self.values), np.nan)
        for i, v in enumerate(self.values):
            if v is None:
                continue
            if self.scale == "categorical":
                out[i] = self.categories.index(_key(v))
            elif self.scale == "log":
                out[i] = math.log10(float(v)) if float(v) > 0 else np.nan
            else:
                out[i] = float(v)
        return out

    def label(self, encoded: float) -> str:
        if not math.isfinite(encoded):
            return "n/a"
        if self.scale == "categorical":
            return str(self.categories[int(round(encoded))])
        return f"{10 ** encoded:.3g}" if self.scale == "log" else f"{encoded:.3g}"

    @property
    def varies(self) -> bool:
        return len({_key(v) for v in self.values if v is not None}) > 1


def knobs(results: SweepResults) -> list[Knob]:
    """The search space's knobs; without one, the config keys whose values differ across trials."""
    names = list(results.sweep.search_space)
    if not names:
        keys = sorted({k for t in results.trials for k in t.config})
        names = [k for k in keys if len({_key(t.config.get(k)) for t in results.trials}) > 1]
    out = []
    for name in names:
        values = [t.config.get(name) for t in results.trials]
        dim = results.sweep.search_space.get(name)
        present = [v for v in values if v is not None]
        numeric = bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
        if not numeric or (dim is not None and dim.categorical):
            cats: list[Any] = []
            for v in [*(dim.args if dim is not None and dim.kind in ("choice", "grid") else ()), *present]:
                if _key(v) not in cats:
                    cats.append(_key(v))
            out.append(Knob(name, [_key(v) if v is not None else None for v in values], "categorical", cats))
            continue
        log = dim.log if dim is not None else (min(present) > 0 and max(present) / min(present) >= 100)
        out.append(Knob(name, values, "log" if log and min(present) > 0 else "linear"))
    return out


def _key(value: Any) -> Any:
    """A hashable stand-in for a config value (lists and dicts become their text)."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


# -- parallel coordinates --------------------------------------------------------------


@dataclass
class Axis:
    label: str
    values: np.ndarray  # per trial, drawable (no nan: missing values sit on a "n/a" tick)
    ticks: list[tuple[float, str]]


@dataclass
class Parallel:
    axes: list[Axis]
    groups: list[str]  # per trial
    trial_ids: list[str]
    note: str = ""


def parallel(results: SweepResults) -> Parallel:
    ks = knobs(results)
    axes = [_axis(k.name + (" (log)" if k.scale == "log" else ""), k.encoded(), k) for k in ks]
    metric = results.sweep.objective
    axes.append(_axis(f"{metric} (last report)", np.array([t.value(metric) for t in results.trials]), None))
    diversity = main_diversity(results)
    if diversity:
        axes.append(_axis(f"{diversity} (last report)", np.array([t.value(diversity) for t in results.trials]), None))
    note = "" if ks else "no search space and no setting that differs between trials: only the results are drawn"
    return Parallel(axes, [group(t.outcome) for t in results.trials], [t.trial_id for t in results.trials], note)


def _axis(label: str, encoded: np.ndarray, knob: Knob | None) -> Axis:
    finite = encoded[np.isfinite(encoded)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    if knob is not None and knob.scale == "categorical":
        ticks = [(float(i), str(c)) for i, c in enumerate(knob.categories)]
    else:
        ticks = [(x, knob.label(x) if knob else f"{x:.3g}") for x in np.linspace(lo, hi, 5)]
    values = encoded.astype(float).copy()
    if not np.isfinite(values).all():  # nan / missing: a tick of its own above the range
        na = hi + 0.15 * (hi - lo)
        values[~np.isfinite(values)] = na
        ticks.append((na, "nan/n.a."))
    return Axis(label, values, ticks)


# -- collapse rate per knob ------------------------------------------------------------


@dataclass
class RateBar:
    label: str  # a category, a value, or a bin "0.001-0.01"
    collapsed: int
    judged: int

    @property
    def rate(self) -> float:
        return self.collapsed / self.judged if self.judged else 0.0


@dataclass
class Rates:
    per_knob: dict[str, list[RateBar]]
    note: str = ""


def collapse_rates(results: SweepResults, max_bins: int = 5) -> Rates:
    """Per knob, the share of judged trials that collapsed, per category or range bin."""
    judged = [t.outcome in JUDGED for t in results.trials]
    hit = [t.outcome in COLLAPSE_LIKE for t in results.trials]
    per_knob: dict[str, list[RateBar]] = {}
    for k in knobs(results):
        x = k.encoded()
        bars: list[RateBar] = []
        distinct = sorted({v for v, j in zip(x, judged) if j and math.isfinite(v)})
        if k.scale == "categorical" or len(distinct) <= max_bins:
            levels = range(len(k.categories)) if k.scale == "categorical" else distinct
            for level in levels:
                members = [i for i, v in enumerate(x) if judged[i] and v == level]
                bars.append(RateBar(k.label(float(level)), sum(hit[i] for i in members), len(members)))
        else:
            edges = np.linspace(distinct[0], distinct[-1], min(max_bins, max(2, len(distinct) // 3)) + 1)
            for lo, hi in zip(edges[:-1], edges[1:]):
                last = hi == edges[-1]
                members = [i for i, v in enumerate(x) if judged[i] and lo <= v and (v < hi or (last and v <= hi))]
                bars.append(RateBar(f"{k.label(lo)}-{k.label(hi)}", sum(hit[i] for i in members), len(members)))
        per_knob[k.name] = bars
    n_hit, n_judged = sum(hit), sum(judged)
    if not per_knob:
        note = "no knobs to split trials by"
    elif not n_judged:
        note = "no trial has a verdict yet"
    elif not n_hit:
        note = f"no trial collapsed ({n_judged} judged)"
    else:
        note = f"{n_hit} of {n_judged} judged trials collapsed (bars: collapsed / judged in each range)"
    return Rates(per_knob, note)


# -- trajectories ----------------------------------------------------------------------


@dataclass
class Line:
    trial_id: str
    group: str
    outcome: str
    steps: list[int]
    values: list[float]
    stopped: tuple[int, float] | None  # the report where it was stopped early, and its value


@dataclass
class Trajectories:
    metric: str
    lines: list[Line]
    thresholds: list[tuple[float, str]]  # (value, "rule 1: < 15")
    note: str = ""


def trajectories(results: SweepResults) -> list[Trajectories]:
    """One chart per collapse metric (the rules' metrics; without rules, every reported collapse/*)."""
    metrics = results.sweep.collapse_metrics or sorted(
        {k for t in results.trials for r in t.reports for k in r
         if k.startswith("collapse/") and k not in ("collapse/detected", "collapse/margin")})
    charts = []
    for metric in metrics:
        lines = []
        for t in results.trials:
            steps, values = t.series(metric)
            if not steps:
                continue
            stopped = None
            ended_early = results.sweep.max_iterations and t.iterations < results.sweep.max_iterations
            if t.collapse_iteration and t.collapse_iteration in steps:
                stopped = (t.collapse_iteration, values[steps.index(t.collapse_iteration)])
            elif ended_early and t.outcome != RUNNING:
                stopped = (steps[-1], values[-1])
            lines.append(Line(t.trial_id, group(t.outcome), t.outcome, steps, values, stopped))
        thresholds = [
            (c.threshold, f"rule {i + 1}: {c.bound()}")
            for i, rule in enumerate(results.sweep.rules) for c in rule.conditions
            if c.metric == metric and c.threshold is not None
        ]
        note = "" if lines else "no trial reported it"
        charts.append(Trajectories(metric, lines, thresholds, note))
    return charts


# -- quality against diversity ---------------------------------------------------------


def main_diversity(results: SweepResults) -> str:
    """The first rule's first metric: the sweep's main diversity measure ("" without rules)."""
    metrics = results.sweep.collapse_metrics
    return metrics[0] if metrics else ""


def diversity_direction(results: SweepResults) -> str:
    """"max" when collapse means the metric falls (a `below` rule), else "min"."""
    for rule in results.sweep.rules:
        for c in rule.conditions:
            if c.metric == main_diversity(results):
                return "max" if c.falls else "min"
    return "max"


@dataclass
class Point:
    trial_id: str
    group: str
    outcome: str
    x: float  # diversity
    y: float  # objective metric


@dataclass
class Pareto:
    x_metric: str
    y_metric: str
    points: list[Point]
    front: list[Point]  # healthy, non-dominated, sorted by x
    note: str = ""


def pareto(results: SweepResults) -> Pareto:
    x_metric, y_metric = main_diversity(results), results.sweep.objective
    points, dropped = [], 0
    for t in results.trials:
        x, y = (t.value(x_metric) if x_metric else math.nan), t.value(y_metric)
        if math.isfinite(x) and math.isfinite(y):
            points.append(Point(t.trial_id, group(t.outcome), t.outcome, x, y))
        else:
            dropped += 1
    sx = 1.0 if diversity_direction(results) == "max" else -1.0
    sy = 1.0 if results.sweep.mode == "max" else -1.0
    healthy = [p for p in points if p.outcome == HEALTHY]
    modes = ["max" if sx > 0 else "min", "max" if sy > 0 else "min"]
    front = sorted((healthy[i] for i in pareto_front([(p.x, p.y) for p in healthy], modes)), key=lambda p: p.x)
    if not x_metric:
        note = "no collapse rule, so no diversity metric to draw against"
    elif not healthy:
        note = "no healthy trial with both values: no front"
    else:
        note = (f"front: {len(front)} healthy trial(s) no other healthy trial beats on both "
                f"({'higher' if sx > 0 else 'lower'} {x_metric}, {'higher' if sy > 0 else 'lower'} {y_metric})")
    if dropped:
        note += f"; {dropped} trial(s) without finite values left out"
    return Pareto(x_metric, y_metric, points, front, note)


# -- importance ------------------------------------------------------------------------


@dataclass
class Importance:
    knobs: list[str]
    collapse: list[float] | None  # per knob, shares summing to 1; None when it cannot be fitted
    objective: list[float] | None
    collapse_note: str = ""
    objective_note: str = ""


MIN_TRIALS = 4  # fewer than this and a forest's importances say nothing


def importance(results: SweepResults, seed: int = 0) -> Importance:
    """Which knobs drive collapse (a classifier on judged trials) and which drive the
    objective (a regressor on healthy ones): random forests, permutation importance on the
    trials themselves. A pointer for where to look, not a statistical test."""
    ks = [k for k in knobs(results) if k.varies]
    names = [k.name for k in ks]
    X = np.column_stack([_fillna(k.encoded()) for k in ks]) if ks else np.zeros((len(results.trials), 0))
    constant = "no knob takes more than one value"
    judged = np.array([t.outcome in JUDGED for t in results.trials], dtype=bool)
    y_collapse = np.array([t.outcome in COLLAPSE_LIKE for t in results.trials])[judged].astype(int)
    collapse, c_note = None, ""
    if judged.sum() < MIN_TRIALS:
        c_note = f"needs {MIN_TRIALS} judged trials, has {int(judged.sum())}"
    elif len(set(y_collapse)) < 2:
        c_note = "every judged trial " + ("collapsed" if y_collapse.all() else "stayed free of collapse")
    elif not ks:
        c_note = constant
    else:
        collapse = _permutation(X[judged], y_collapse, classify=True, seed=seed)
        c_note = f"{int(y_collapse.sum())} collapsed of {int(judged.sum())} judged trials"
    metric = results.sweep.objective
    healthy = np.array([t.outcome == HEALTHY and math.isfinite(t.value(metric)) for t in results.trials], dtype=bool)
    y_obj = np.array([t.value(metric) for t in results.trials])[healthy]
    objective, o_note = None, ""
    if healthy.sum() < MIN_TRIALS:
        o_note = f"needs {MIN_TRIALS} healthy trials, has {int(healthy.sum())}"
    elif np.ptp(y_obj) == 0:
        o_note = f"every healthy trial has the same {metric}"
    elif not ks:
        o_note = constant
    else:
        objective = _permutation(X[healthy], y_obj, classify=False, seed=seed)
        o_note = f"{metric} of {int(healthy.sum())} healthy trials"
    return Importance(names, collapse, objective, c_note, o_note)


def _fillna(x: np.ndarray) -> np.ndarray:
    finite = x[np.isfinite(x)]
    fill = float(finite.min()) - 1.0 if finite.size else 0.0
    return np.where(np.isfinite(x), x, fill)


def _permutation(X: np.ndarray, y: np.ndarray, classify: bool, seed: int) -> list[float]:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.inspection import permutation_importance

    forest = (RandomForestClassifier if classify else RandomForestRegressor)(
        n_estimators=64, random_state=seed, min_samples_leaf=1, n_jobs=1)
    forest.fit(X, y)
    result = permutation_importance(forest, X, y, n_repeats=5, random_state=seed, n_jobs=1)
    scores = np.clip(result.importances_mean, 0.0, None)
    total = scores.sum()
    return [float(s / total) if total > 0 else 0.0 for s in scores]
