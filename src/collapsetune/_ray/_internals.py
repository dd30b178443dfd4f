"""Small named reads and writes of Ray's private state, for the Ray side of the schedulers.

Each says on its first line which Ray attribute it relies on; `_check.RELIED_ON` lists them
all, and importing `collapsetune._ray` checks the installed Ray still has them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ray.tune.schedulers.pbt import _FutureTrainingResult


# -- ASHA ---------------------------------------------------------------------------------


def asha_bracket(scheduler: Any, trial_id: str) -> Any | None:
    """`AsyncHyperBandScheduler._trial_info`: the bracket a trial is in (None once Ray dropped it)."""
    return scheduler._trial_info.get(trial_id)


def bracket_rungs(bracket: Any) -> list[tuple[float, dict[str, float]]]:
    """`_Bracket._rungs`: (milestone, {trial id: recorded value}) per rung, top rung first."""
    return bracket._rungs


def bracket_reduction_factor(bracket: Any) -> float:
    """`_Bracket.rf`: the bracket's reduction factor (it keeps 1/rf of the trials at each rung)."""
    return bracket.rf


def asha_score(scheduler: Any, result: dict) -> float:
    """`AsyncHyperBandScheduler._metric`, `._metric_op`: the value ASHA records for `result`
    (its metric, signed so that higher is better)."""
    return scheduler._metric_op * result[scheduler._metric]


def set_bracket_rungs(bracket: Any, rungs: list[tuple[float, dict[str, float]]]) -> None:
    """`_Bracket._rungs`, replaced."""
    bracket._rungs = rungs


# -- PBT ----------------------------------------------------------------------------------


class PbtSettings(NamedTuple):
    time_attr: str  # the report counter (`training_iteration`)
    metric: str  # the metric PBT ranks trials on
    quantile_fraction: float  # the share of trials copied from (and into)


def pbt_settings(scheduler: Any) -> PbtSettings:
    """`PopulationBasedTraining._time_attr`, `._metric`, `._quantile_fraction`."""
    return PbtSettings(scheduler._time_attr, scheduler._metric, scheduler._quantile_fraction)


def pbt_states(scheduler: Any) -> dict[Any, Any]:
    """`PopulationBasedTraining._trial_state`: Trial -> its `_PBTTrialState` (last_score,
    last_train_time, last_checkpoint, last_result), in the order trials were added."""
    return scheduler._trial_state


def save_pbt_state(scheduler: Any, trial: Any, result: dict) -> None:
    """`PopulationBasedTraining._save_trial_state`: `result` scored as the trial's latest report."""
    settings = pbt_settings(scheduler)
    scheduler._save_trial_state(scheduler._trial_state[trial], result[settings.time_attr], result, trial)


def schedule_save(tune_controller: Any, trial: Any, result: dict | None) -> Any:
    """`TuneController._schedule_trial_save`: a save of a running trial, as a future result."""
    return tune_controller._schedule_trial_save(trial, result=result)


def resolved(checkpoint: Any) -> tuple[Any, dict | None] | None:
    """`ray.tune.schedulers.pbt._FutureTrainingResult`: a save still under way resolved to
    (checkpoint, its report's metrics), or (None, None) when it failed; None when
    `checkpoint` is not such a future."""
    if not isinstance(checkpoint, _FutureTrainingResult):
        return None
    saved = checkpoint.resolve()
    return (saved.checkpoint, saved.metrics) if saved else (None, None)


# -- the driver ---------------------------------------------------------------------------


def ray_address(address: str) -> str | None:
    """`ray._private.services.canonicalize_bootstrap_address`: the cluster `address` ("auto")
    names, as `ray.init` resolves it; raises ConnectionError or ValueError when none is found."""
    from ray._private.services import canonicalize_bootstrap_address

    return canonicalize_bootstrap_address(address)


# -- OptunaSearch (CollapseOptunaSearch subclasses it and keeps its study in the results folder) --

OPTUNA_STUDY = "_ot_study"  # `OptunaSearch._ot_study`: the Optuna study
OPTUNA_TRIALS = "_ot_trials"  # `OptunaSearch._ot_trials`: Tune trial id -> optuna.Trial
OPTUNA_STORAGE = "_storage"  # `OptunaSearch._storage`: the study's storage, as given


def optuna_objectives(searcher: Any) -> list[tuple[str, str]]:
    """`OptunaSearch._metric`, `._mode`: (metric, mode) per objective, one or several."""
    metrics = searcher._metric if isinstance(searcher._metric, list) else [searcher._metric]
    modes = searcher._mode if isinstance(searcher._mode, list) else [searcher._mode] * len(metrics)
    return list(zip(metrics, modes))


def several_objectives(searcher: Any) -> bool:
    """`OptunaSearch._metric`: a list when the study has several objectives."""
    return isinstance(searcher._metric, list)


def optuna_told(searcher: Any) -> set[str]:
    """`OptunaSearch._completed_trials`: the Tune trial ids the searcher was told ended."""
    return getattr(searcher, "_completed_trials", set())


def optuna_space(searcher: Any) -> dict[str, Any]:
    """`OptunaSearch._space`: the search space as Optuna distributions, by name."""
    return searcher._space


def optuna_study_source(searcher: Any) -> tuple[str, Any]:
    """`OptunaSearch._study_name`, `._sampler`: what a study is loaded or made again with."""
    return searcher._study_name, searcher._sampler


def optuna_points(searcher: Any) -> list[dict]:
    """`OptunaSearch._points_to_evaluate`: the configurations to try first."""
    return searcher._points_to_evaluate or []


def set_optuna_points(searcher: Any, points: list[dict]) -> None:
    """`OptunaSearch._points_to_evaluate`, replaced."""
    searcher._points_to_evaluate = points


def optuna_study(searcher: Any) -> Any:
    """`OptunaSearch._ot_study`: the Optuna study (None in a pickled searcher whose study is in SQLite)."""
    return getattr(searcher, OPTUNA_STUDY, None)


def optuna_trials(searcher: Any) -> dict[str, Any]:
    """`OptunaSearch._ot_trials`: Tune trial id -> its optuna.Trial (or trial id, pickled)."""
    return getattr(searcher, OPTUNA_TRIALS)


def optuna_storage(searcher: Any) -> Any:
    """`OptunaSearch._storage`: the study's storage as given (an RDBStorage for SQLite)."""
    return getattr(searcher, OPTUNA_STORAGE)


def set_optuna_storage(searcher: Any, storage: Any) -> None:
    """`OptunaSearch._storage`, replaced (the study's file where the results folder is now)."""
    setattr(searcher, OPTUNA_STORAGE, storage)


def set_optuna_study(searcher: Any, study: Any) -> None:
    """`OptunaSearch._ot_study`, replaced (a study reloaded or made again)."""
    setattr(searcher, OPTUNA_STUDY, study)


def set_optuna_trials(searcher: Any, trials: dict[str, Any]) -> None:
    """`OptunaSearch._ot_trials`, replaced."""
    setattr(searcher, OPTUNA_TRIALS, trials)
