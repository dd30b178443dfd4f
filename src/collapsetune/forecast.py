"""Forecast stopping: learn from the sweep's own judged trials which young trials will end
collapsed, and stop them before the rules can (issue 24, item 1).

The rules must wait (`grace`, `patience`) because many models start out looking collapsed
(every MoP-CLIP trial does). But a sweep judges dozens of trials; their first reports say
how a trial that starts so tends to end. `CollapseForecaster` keeps, per trial, its
`collapse/*` metrics on each report and its numeric knobs (`config`), and the verdict the
rules gave it (collapsed or diverged: 1; healthy: 0; the latest one counts, so a trial that
was healthy and then collapsed is a 1). For each report k before the rules can judge, it
fits a logistic regression on the judged trials' first k reports (each metric's value, its
change since report k-1 and since report 1, the knobs) and predicts P(the rules will call
this trial collapsed).

Calibration (split-conformal, on out-of-fold predictions): each judged trial that the rules
called healthy gets its highest forecast over the reports the forecast acts on, each from a
model fitted without it; one threshold for every report is the ceil((n+1)(1-max_false_stop))-th
smallest of these, so a new recovering trial exchangeable with them is stopped, on any
report, with probability at most `max_false_stop`. With too few healthy trials for that quantile
(n < 1/max_false_stop - 1) there is no threshold and nothing is stopped: the sweep's rules
alone decide, as they do until `min_trials` trials have been judged. A trial the forecast
stopped is never judged, so it never trains the model (its ending is unknown); the healthy
trials it stopped are then missing from the calibration set, which can only lower the
threshold: the replayed benchmark (docs/benchmarks.md) measures how far.

This module knows no Ray; `collapsetune.collapse.ForecastStopper` is its adapter.

Example:
    >>> f = CollapseForecaster(judged_at=6, min_trials=20, max_false_stop=0.05)
    >>> f.observe("t1", {"training_iteration": 1, "collapse/cos": 0.99, "collapse.status": "inconclusive"}) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collapsetune.collapse import HEALTHY, STATUS_KEY, STOPPING
from collapsetune.names import FORECAST_KEY, FORECAST_REASON  # noqa: F401 - FORECAST_KEY: re-exported

_NOT_FEATURES = {"collapse/detected"}  # the verdict itself, 0 before the rules can fire
_REFIT_GROWTH = 1.15  # refit once the judged trials grew by 15%: cost O(log n) fits per sweep


@dataclass(frozen=True)
class Forecast:
    """One report's forecast: `p` = P(ends collapsed), `threshold` the calibrated bound it
    stops above (inf: none yet), `fitted_on` judged trials, `stop` whether to stop now."""

    p: float
    threshold: float
    fitted_on: int
    report: int
    stop: bool

    @property
    def reason(self) -> str:
        return (f"{FORECAST_REASON} P(collapse)={self.p:.3f} > {self.threshold:.3f} at report {self.report} "
                f"(fitted on {self.fitted_on} judged trials)")


class CollapseForecaster:
    """Per-sweep forecast of which running trials will end collapsed (see the module docstring).

    Args:
        judged_at: the report on which the rules first judge a trial (max `Rule.earliest_report`);
            the forecast acts on reports `first_report` .. `judged_at - 1`.
        min_trials: judged trials needed before it stops any trial.
        max_false_stop: share of recovering (rules: healthy) trials it may stop.
        first_report: earliest report it may stop a trial on.
    """

    def __init__(self, judged_at: int, min_trials: int = 20, max_false_stop: float = 0.05,
                 first_report: int = 1) -> None:
        if judged_at < 2:
            raise ValueError(f"judged_at must be >= 2 (a report before the rules judge), got {judged_at}")
        if min_trials < 4:
            raise ValueError(f"min_trials must be >= 4, got {min_trials}")
        if not 0 < max_false_stop <= 0.5:
            raise ValueError(f"max_false_stop must be in (0, 0.5], got {max_false_stop}")
        if not 1 <= first_report < judged_at:
            raise ValueError(f"first_report must be in [1, {judged_at - 1}], got {first_report}")
        self.judged_at, self.min_trials = judged_at, min_trials
        self.max_false_stop, self.first_report = max_false_stop, first_report
        self.metrics: tuple[str, ...] | None = None  # fixed by the first report seen
        self.knobs: tuple[str, ...] | None = None
        self.reports: dict[str, list[list[float]]] = {}  # trial id -> metric values per report (first judged_at - 1)
        self.configs: dict[str, list[float]] = {}  # trial id -> knob features
        self.labels: dict[str, int] = {}  # trial id -> 1 collapsed/diverged, 0 healthy (latest verdict)
        self.stopped: set[str] = set()  # stopped by the forecast: never judged, never a label
        self.models: dict[int, tuple[Any, float]] = {}  # report -> (fitted model, threshold)
        self._fitted_on = 0

    # -- the stream of results ---------------------------------------------------------

    def observe(self, trial_id: str, result: Mapping[str, Any]) -> Forecast | None:
        """Takes one result of a trial; returns the forecast on it when the report is one the
        forecast acts on and a model exists, else None (the rules decide)."""
        report = int(result.get("training_iteration", 0))
        status = result.get(STATUS_KEY)
        if status in STOPPING:
            self.labels[trial_id] = 1
        elif status == HEALTHY:
            self.labels.setdefault(trial_id, 0)  # a collapse after a healthy verdict stays a 1
        if self.metrics is None:
            self.metrics = tuple(sorted(k for k, v in result.items() if k.startswith("collapse/")
                                        and k not in _NOT_FEATURES and _is_number(v)))
            self.knobs = tuple(sorted(k for k, v in dict(result.get("config") or {}).items() if _is_number(v)))
        if report < 1 or report >= self.judged_at or trial_id in self.stopped:
            return None
        seen = self.reports.setdefault(trial_id, [])
        if len(seen) != report - 1:  # a restored trial re-reports: keep the reports in order
            del seen[report - 1:]
            if len(seen) != report - 1:
                return None
        seen.append([_float(result.get(m)) for m in self.metrics])
        if trial_id not in self.configs:
            config = dict(result.get("config") or {})
            self.configs[trial_id] = [x for k in self.knobs for x in _knob(config.get(k))]
        if status in STOPPING or report < self.first_report:
            return None
        self._maybe_refit()
        if report not in self.models:
            return None
        model, threshold = self.models[report]
        p = float(model.predict_proba([self._features(trial_id, report)])[0, 1])
        stop = p > max(threshold, 0.5)
        if stop:
            self.stopped.add(trial_id)
        return Forecast(p, threshold, self._fitted_on, report, stop)

    def forget(self, trial_id: str) -> None:
        """A trial that will not report again unjudged (failed): nothing to learn from it."""
        self.reports.pop(trial_id, None)

    # -- fitting ------------------------------------------------------------------------

    def _judged(self) -> list[str]:
        return [t for t in self.labels if t not in self.stopped and t in self.reports]

    def _maybe_refit(self) -> None:
        """One model per report, and one threshold for all of them: the conformal quantile of
        each healthy trial's highest out-of-fold forecast over those reports, so that the
        stated rate holds per trial, not per report (a trial is forecast on several)."""
        import numpy as np

        judged = self._judged()
        if len(judged) < self.min_trials or len(judged) < _REFIT_GROWTH * self._fitted_on:
            return
        self._fitted_on = len(judged)
        self.models = {}
        healthy = [t for t in judged if self.labels[t] == 0]  # judged healthy: seen every report here
        rank = math.ceil((len(healthy) + 1) * (1 - self.max_false_stop))
        if rank > len(healthy):
            return  # too few healthy trials for the quantile: the rules alone decide
        highest = dict.fromkeys(healthy, 0.0)
        models = {}
        for report in range(self.first_report, self.judged_at):
            trials = [t for t in judged if len(self.reports[t]) >= report]
            fitted = self._fit(trials, report)
            if fitted is None:
                return
            models[report], held_out = fitted
            for t, p in zip(trials, held_out):
                if t in highest:
                    highest[t] = max(highest[t], p)
        threshold = float(np.sort(list(highest.values()))[rank - 1])
        self.models = {report: (model, threshold) for report, model in models.items()}

    def _fit(self, trials: list[str], report: int) -> tuple[Any, list[float]] | None:
        """A model of report `report`, and each trial's forecast from a model fitted without it."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = np.array([self.labels[t] for t in trials])
        smaller = int(min((y == 0).sum(), (y == 1).sum()))
        if smaller < 2:
            return None  # one verdict only: nothing to tell apart
        x = np.array([self._features(t, report) for t in trials])

        def model():
            return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))

        folds = StratifiedKFold(n_splits=min(5, smaller), shuffle=True, random_state=0)
        held_out = cross_val_predict(model(), x, y, cv=folds, method="predict_proba")[:, 1]
        return model().fit(x, y), [float(p) for p in held_out]

    def _features(self, trial_id: str, report: int) -> list[float]:
        seen = self.reports[trial_id][:report]
        now, before, first = seen[-1], seen[-2] if report > 1 else seen[-1], seen[0]
        out = []
        for a, b, c in zip(now, before, first):
            out += [a, a - b, a - c]
        out += self.configs.get(trial_id, [])
        return [0.0 if not math.isfinite(v) else max(-1e6, min(1e6, v)) for v in out]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _knob(value: Any) -> list[float]:
    """A numeric knob as its value and its signed log10 (learning rates span decades)."""
    if not _is_number(value) or not math.isfinite(value):
        return [0.0, 0.0]
    return [float(value), math.copysign(math.log10(abs(value) + 1e-4), value)]


__all__ = ["FORECAST_KEY", "CollapseForecaster", "Forecast"]
