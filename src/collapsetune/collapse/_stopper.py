"""The stopper that ends a trial on the report where its verdict turned."""

from __future__ import annotations

from ray.tune import Stopper

from collapsetune.collapse import REASON_KEY, STATUS_KEY
from collapsetune.collapse._breaker import SweepBreaker
from collapsetune.decisions import stop_verdict
from collapsetune.names import SWEEP_STOP_KEY


class CollapseStopper(Stopper):
    """Stops collapsed and diverged trials, and any trial at `max_iterations`; stops the whole
    sweep only when its `breaker` (`stop_sweep_when:`, `SweepBreaker`) has tripped.

    The verdict is computed in the trainable (see `CollapseTrainable`) and travels in the
    result, so this stopper only reads it (`collapsetune.decisions.stop_verdict` decides). It
    remembers which trials it stopped and why, keyed by trial id, and survives pickling (Tune saves it with the experiment). The result
    that trips the breaker gets `SWEEP_STOP_KEY` (why), so callbacks learn of it; Tune then
    stops every other trial without their `on_trial_complete` (`records.SweepStopRecord`).
    `max_iterations` is checked on `training_iteration` itself: Ray's
    MaximumIterationStopper counts reports received, so a trial restored from a checkpoint
    (which re-reports the iterations after it) was stopped short.

    Example:
        >>> stopper = CollapseStopper(max_iterations=20)
        >>> stopper("t1", {"collapse.status": "collapsed", "collapse.reason": "x"})
        True
    """

    breaker: SweepBreaker | None = None  # class default: a stopper pickled before it existed loads

    def __init__(self, max_iterations: int | None = None, stop_collapsed: bool = True,
                 breaker: SweepBreaker | None = None) -> None:
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        self.max_iterations = max_iterations
        # False when the scheduler rescues collapsed trials: Tune asks the stopper before the
        # scheduler, so a stopped trial could never be rescued. The scheduler stops the ones
        # it cannot rescue itself.
        self.stop_collapsed = stop_collapsed
        self.stopped: dict[str, str] = {}  # trial id -> reason
        if breaker is not None:
            self.breaker = breaker

    def __call__(self, trial_id: str, result: dict) -> bool:
        self._count(trial_id, result)
        stop = stop_verdict(result, max_iterations=self.max_iterations, stop_collapsed=self.stop_collapsed)
        if stop is not None and stop.by_collapse:
            self.stopped[trial_id] = stop.reason
        return stop is not None

    def _count(self, trial_id: str, result: dict) -> None:
        """The breaker sees the result's final verdict (once marked: see ForecastStopper)."""
        if self.breaker is not None and (reason := self.breaker.observe(trial_id, result)):
            result[SWEEP_STOP_KEY] = reason

    def stop_all(self) -> bool:
        return self.breaker is not None and self.breaker.reason is not None


class ForecastStopper(CollapseStopper):
    """`CollapseStopper` that also stops a trial when the sweep's forecast
    (`collapsetune.forecast.CollapseForecaster`) is confident it will end collapsed.

    Every result goes to the forecaster first (so it learns the rules' verdicts); while it
    has no calibrated model the rules alone decide. On the reports it forecasts, the result
    gets `collapse.forecast` (P(ends collapsed)), which callbacks (MLflow) log; a trial it
    stops is marked in its result as the rules mark a collapsed one (`collapse.status`
    collapsed, `collapse.reason` starting "forecast:", `collapse.iteration`, and the penalty
    in `penalties`' keys), so ASHA, the searcher and MLflow treat it alike. Pickles with its
    fitted models (Tune saves the stopper with the experiment).

    Example:
        >>> from collapsetune.forecast import CollapseForecaster
        >>> stopper = ForecastStopper(CollapseForecaster(judged_at=6), max_iterations=12,
        ...                           penalties={"objective": -1e9})
    """

    def __init__(self, forecaster, max_iterations: int | None = None,
                 penalties: dict[str, float] | None = None, breaker: SweepBreaker | None = None) -> None:
        super().__init__(max_iterations=max_iterations, breaker=breaker)
        self.forecaster = forecaster
        self.penalties = dict(penalties or {})

    def __call__(self, trial_id: str, result: dict) -> bool:
        from collapsetune.collapse import COLLAPSED, ITERATION_KEY
        from collapsetune.forecast import FORECAST_KEY

        forecast = self.forecaster.observe(trial_id, result)
        if forecast is not None:
            result[FORECAST_KEY] = forecast.p
        if super().__call__(trial_id, result):
            return True
        if forecast is None or not forecast.stop:
            return False
        result.update(self.penalties)
        result[STATUS_KEY], result[REASON_KEY] = COLLAPSED, forecast.reason
        result[ITERATION_KEY] = forecast.report
        self.stopped[trial_id] = f"{COLLAPSED}: {forecast.reason}"
        self._count(trial_id, result)  # now marked collapsed: the breaker counts it
        return True
