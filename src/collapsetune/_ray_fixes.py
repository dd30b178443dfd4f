"""Fixes to Ray 2.60 that a sweep cannot live without, applied on the driver only.

1. A lost worker ends the sweep. When Ray's memory monitor kills a trial's worker (or the
   worker crashes, or its node dies while a task is in flight) the task fails with
   `OutOfMemoryError`, `WorkerCrashedError` or `NodeDiedError`. Tune's actor manager only
   expects `RayActorError` or `RayTaskError` there and raises `RuntimeError("Caught
   unexpected exception ...")` for anything else, which ends the whole sweep, whatever
   `max_failures` says. Such an error is passed on as the `RayActorError` it amounts to
   (the trial's worker is gone), so Tune handles it per trial: retried from its last
   checkpoint while `max_failures` allows, else marked ERROR; the other trials go on.
2. A failed restore starts the sweep over. When `Tuner.restore` cannot read a sweep's
   state, Tune logs "Failed to restore the run state" and starts a fresh experiment in the
   same folder: every trial again, under new ids. The error is raised instead
   (`RestoreFailed`), so `resume` stops with nothing changed.
3. A moved results folder sends new trials to the old one. Tune restores its searcher with
   the experiment it pickled, storage path included, so trials the searcher proposes after a
   resume write to (and fail on) the folder the sweep was launched in. After a restore, the
   searcher's experiment gets the restored run's storage (and, during it, an Optuna study
   kept in the results folder is looked for where the folder is now).

These reach private methods: Ray is pinned to 2.60.x, and tests/e2e/test_faults.py (a
worker killed through the memory monitor) and tests/e2e/test_resume.py (a moved folder)
fail loudly if an upgrade moves them.
"""

from __future__ import annotations

import copy

from ray.air.execution._internal.actor_manager import RayActorManager
from ray.exceptions import RayActorError, RayError, RayTaskError
from ray.tune.execution.tune_controller import TuneController
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.search_generator import SearchGenerator

from collapsetune.errors import RestoreFailed

_MARK = "_collapsetune_fixed"


def apply() -> None:
    """Idempotent."""
    if getattr(RayActorManager._actor_task_failed, _MARK, False):
        return
    task_failed = RayActorManager._actor_task_failed
    resume = TuneController.resume

    def _actor_task_failed(self, tracked_actor_task, exception):
        if isinstance(exception, RayError) and not isinstance(exception, (RayActorError, RayTaskError)):
            exception = RayActorError(error_msg=f"the trial's worker was lost: {type(exception).__name__}: "
                                                f"{exception}")
        return task_failed(self, tracked_actor_task, exception)

    def _resume(self, resume_config):
        from collapsetune.searchers import restoring_from

        try:
            with restoring_from(self._storage.experiment_fs_path):
                resume(self, resume_config)
        except Exception as exc:  # noqa: BLE001 - re-raised past Tune's fresh start
            raise RestoreFailed(f"Ray could not restore the sweep from {self._storage.experiment_fs_path}: "
                                f"{type(exc).__name__}: {exc}") from exc
        _point_searcher_at(self._search_alg, self._storage)

    for fn in (_actor_task_failed, _resume):
        setattr(fn, _MARK, True)
    RayActorManager._actor_task_failed = _actor_task_failed
    TuneController.resume = _resume


def _point_searcher_at(search_alg, storage) -> None:
    """New trials go where the restored ones are (fix 3)."""
    if isinstance(search_alg, SearchGenerator) and search_alg._experiment is not None:
        experiment = search_alg._experiment
        experiment.storage = experiment.spec["storage"] = _moved(experiment.storage, storage)
    elif isinstance(search_alg, BasicVariantGenerator):
        for iterator in search_alg._iterators:
            spec = iterator.unresolved_spec
            if spec.get("storage") is not None:
                spec["storage"] = _moved(spec["storage"], storage)


def _moved(old, storage):
    new = copy.copy(old)
    new.storage_filesystem = storage.storage_filesystem
    new.storage_fs_path = storage.storage_fs_path
    new.experiment_dir_name = storage.experiment_dir_name
    return new
