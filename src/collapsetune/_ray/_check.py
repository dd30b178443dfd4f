"""What collapsetune reaches inside Ray, checked when `collapsetune._ray` is imported.

Ray keeps its schedulers' bookkeeping, its controller and its storage helpers private, and
renames them between releases. Each name collapsetune reads, writes, patches or overrides is
one `Internal` below; on import every module is imported and every name looked up (a class
attribute with `getattr`, an instance attribute as an assignment `self.<name> =` in its
class's module), and one error lists all that are gone, with the Ray version installed, so
an upgrade says what broke instead of failing mid-sweep (or, for an override, never being
called at all). `collapsetune._ray` imports this module before `fixes` and `_internals`, so
the check runs before any private Ray module is imported.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass

from collapsetune.errors import RayInternalsMoved


@dataclass(frozen=True)
class Internal:
    """One name inside Ray: `module` and `name` ("Class.attr", "function" or "Class"),
    `instance` when the attribute is set on instances (in `__init__`), and what uses it."""

    module: str
    name: str
    why: str
    instance: bool = False

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"


_ASHA = "ray.tune.schedulers.async_hyperband"
_PBT = "ray.tune.schedulers.pbt"
_OPTUNA = "ray.tune.search.optuna.optuna_search"
_CONTROLLER = "ray.tune.execution.tune_controller"
_CHECKPOINTS = "ray.train._internal.checkpoint_manager"

RELIED_ON: tuple[Internal, ...] = (
    # CollapseASHA (schedulers/_asha.py): a collapsed trial leaves every rung
    Internal(_ASHA, "AsyncHyperBandScheduler._trial_info", "CollapseASHA: a trial's bracket", instance=True),
    Internal(_ASHA, "_Bracket._rungs", "CollapseASHA: a bracket's rung records", instance=True),
    Internal(_ASHA, "_Bracket.rf", "CollapseASHA (cut_ties): a bracket's reduction factor", instance=True),
    Internal(_ASHA, "AsyncHyperBandScheduler._metric", "the benchmark's penalised rungs: ASHA's metric",
             instance=True),
    Internal(_ASHA, "AsyncHyperBandScheduler._metric_op", "the benchmark's penalised rungs: its sign",
             instance=True),
    # CollapsePBT (schedulers/_pbt.py): healthy donors, rescues
    Internal(_PBT, "PopulationBasedTraining._trial_state", "CollapsePBT: each trial's PBT state", instance=True),
    Internal(_PBT, "PopulationBasedTraining._time_attr", "CollapsePBT: the report counter", instance=True),
    Internal(_PBT, "PopulationBasedTraining._metric", "CollapsePBT: the ranked metric", instance=True),
    Internal(_PBT, "PopulationBasedTraining._quantile_fraction", "CollapsePBT: the donors' share", instance=True),
    Internal(_PBT, "PopulationBasedTraining._save_trial_state", "CollapsePBT: scoring a collapsed report"),
    Internal(_PBT, "PopulationBasedTraining._exploit", "CollapsePBT overrides it: no copy of a collapsed donor"),
    Internal(_PBT, "PopulationBasedTraining._quantiles", "CollapsePBT overrides it: healthy trials on top"),
    Internal(_PBT, "PopulationBasedTraining._get_new_config", "CollapsePBT overrides it: knobs clipped to bounds"),
    Internal(_PBT, "_FutureTrainingResult", "CollapsePBT: a donor's checkpoint still being saved"),
    Internal(_PBT, "_PBTTrialState.last_checkpoint", "CollapsePBT: a donor's checkpoint", instance=True),
    Internal(_PBT, "_PBTTrialState.last_result", "CollapsePBT: the report a donor's checkpoint holds", instance=True),
    Internal(_PBT, "_PBTTrialState.last_score", "CollapsePBT: a donor's rank", instance=True),
    Internal(_PBT, "_PBTTrialState.last_train_time", "CollapsePBT: a donor's last scored report", instance=True),
    Internal(_CONTROLLER, "TuneController._schedule_trial_save", "CollapsePBT: saving a running donor now"),
    # CollapseOptunaSearch (searchers.py) subclasses OptunaSearch and reads its state
    Internal(_OPTUNA, "OptunaSearch._setup_study", "CollapseOptunaSearch overrides it: partial points queued"),
    Internal(_OPTUNA, "OptunaSearch._ot_study", "CollapseOptunaSearch: the study", instance=True),
    Internal(_OPTUNA, "OptunaSearch._ot_trials", "CollapseOptunaSearch: Tune trial id -> Optuna trial", instance=True),
    Internal(_OPTUNA, "OptunaSearch._points_to_evaluate", "CollapseOptunaSearch: queued points", instance=True),
    Internal(_OPTUNA, "OptunaSearch._space", "CollapseOptunaSearch: a rebuilt study's distributions", instance=True),
    Internal(_OPTUNA, "OptunaSearch._storage", "CollapseOptunaSearch: the study kept in the results folder",
             instance=True),
    Internal(_OPTUNA, "OptunaSearch._study_name", "CollapseOptunaSearch: reloading the study", instance=True),
    Internal(_OPTUNA, "OptunaSearch._sampler", "CollapseOptunaSearch: reloading the study", instance=True),
    Internal(_OPTUNA, "OptunaSearch._completed_trials", "CollapseOptunaSearch: trials told they ended",
             instance=True),
    Internal(_OPTUNA, "OptunaSearch._metric", "CollapseOptunaSearch: its objective metrics", instance=True),
    Internal(_OPTUNA, "OptunaSearch._mode", "CollapseOptunaSearch: its objective modes", instance=True),
    # _fixes.py
    Internal("ray.air.execution._internal.actor_manager", "RayActorManager._actor_task_failed",
             "fix 1: a lost worker fails its trial, not the sweep"),
    Internal(_CONTROLLER, "TuneController.resume", "fixes 2-4: a failed restore raises; searcher and checkpoints"),
    Internal(_CONTROLLER, "TuneController._storage", "fixes 2-3: the restored sweep's storage", instance=True),
    Internal(_CONTROLLER, "TuneController._search_alg", "fix 3: the restored searcher", instance=True),
    Internal(_CONTROLLER, "TuneController._trials", "fix 4: the restored trials", instance=True),
    Internal("ray.tune.search.search_generator", "SearchGenerator._experiment", "fix 3: the searcher's storage",
             instance=True),
    Internal("ray.tune.search.basic_variant", "BasicVariantGenerator._iterators", "fix 3: random search's storage",
             instance=True),
    Internal(_CHECKPOINTS, "_CheckpointManager._checkpoint_results", "fix 4: checkpoints on storage", instance=True),
    Internal(_CHECKPOINTS, "_CheckpointManager._latest_checkpoint_result", "fix 4: the checkpoint to resume from",
             instance=True),
    Internal("ray.train._internal.storage", "_pyarrow_fs_copy_files", "fix 6: whole files into a local folder"),
    Internal("ray._private.authentication.authentication_token_setup", "AUTH_MODE_ENV_VAR",
             "fix 5: the driver's RAY_AUTH_MODE"),
    Internal("ray._raylet", "AuthenticationTokenLoader", "fix 5: whether a token is found here"),
    Internal("ray._raylet", "Config", "fix 5: RAY_AUTH_MODE read again"),
    Internal("ray._raylet", "GcsClient", "fix 5: asking a cluster whether it takes this driver"),
    # preflight.py
    Internal("ray._private.services", "canonicalize_bootstrap_address", "preflight: the cluster `auto` finds"),
)

REQUIRES = "ray[tune]>=2.60,<2.61"  # as pyproject.toml pins it


def missing(relied_on: tuple[Internal, ...] = RELIED_ON) -> list[Internal]:
    """The names in `relied_on` the installed Ray does not have."""
    return [internal for internal in relied_on if not _present(internal)]


def check(relied_on: tuple[Internal, ...] = RELIED_ON) -> None:
    """Raises `RayInternalsMoved` naming every name in `relied_on` that is gone, and the Ray version."""
    gone = missing(relied_on)
    if not gone:
        return
    import ray

    listed = "; ".join(f"{internal} ({internal.why})" for internal in gone)
    raise RayInternalsMoved(f"collapsetune relies on Ray internals that Ray {ray.__version__} does not have: "
                            f"{listed}. Install the Ray it was written for: pip install '{REQUIRES}'")


def _present(internal: Internal) -> bool:
    try:
        found = importlib.import_module(internal.module)
    except ImportError:
        return False
    *owners, attr = internal.name.split(".")
    for owner in owners:
        found = getattr(found, owner, None)
        if found is None:
            return False
    if not internal.instance:
        return hasattr(found, attr)
    assigned = re.compile(rf"\bself\.{re.escape(attr)}\s*(:|=(?!=))")
    sources = [_source(cls) for cls in inspect.getmro(found) if cls is not object]
    if not any(sources):  # a Ray installed without its .py files: an instance attribute cannot be seen
        return True
    return any(assigned.search(text) for text in sources)


_SOURCES: dict[str, str] = {}


def _source(cls: type) -> str:
    """The text of the module that defines `cls` (read once; "" where there is none)."""
    name = cls.__module__
    if name not in _SOURCES:
        try:
            _SOURCES[name] = inspect.getsource(importlib.import_module(name))
        except (OSError, TypeError):
            _SOURCES[name] = ""
    return _SOURCES[name]


check()
