"""Every use of Ray's internals (private modules and attributes), in one place.

Importing this package first checks that the installed Ray still has each name collapsetune
relies on (`RELIED_ON`), and raises one `RayInternalsMoved` naming all that are gone and the
Ray version. The schedulers read Ray's bookkeeping through the small functions here; the
driver's fixes to Ray are in `collapsetune._ray.fixes` (`fixes.apply()`).
"""

from __future__ import annotations

from collapsetune._ray._check import RELIED_ON, REQUIRES, Internal, RayInternalsMoved, check, missing
from collapsetune._ray._internals import (
    OPTUNA_STORAGE,
    OPTUNA_STUDY,
    OPTUNA_TRIALS,
    PbtSettings,
    asha_bracket,
    asha_score,
    bracket_reduction_factor,
    bracket_rungs,
    optuna_objectives,
    optuna_points,
    optuna_space,
    optuna_storage,
    optuna_study,
    optuna_study_source,
    optuna_told,
    optuna_trials,
    pbt_settings,
    pbt_states,
    ray_address,
    resolved,
    save_pbt_state,
    schedule_save,
    set_bracket_rungs,
    set_optuna_points,
    set_optuna_storage,
    set_optuna_study,
    set_optuna_trials,
    several_objectives,
)

__all__ = ["OPTUNA_STORAGE", "OPTUNA_STUDY", "OPTUNA_TRIALS", "RELIED_ON", "REQUIRES", "Internal",
           "PbtSettings", "RayInternalsMoved", "asha_bracket", "asha_score", "bracket_reduction_factor",
           "bracket_rungs", "check",
           "missing", "optuna_objectives", "optuna_points", "optuna_space", "optuna_storage",
           "optuna_study", "optuna_study_source", "optuna_told", "optuna_trials", "pbt_settings",
           "pbt_states", "ray_address", "resolved", "save_pbt_state", "schedule_save", "set_bracket_rungs",
           "set_optuna_points", "set_optuna_storage", "set_optuna_study", "set_optuna_trials",
           "several_objectives"]
