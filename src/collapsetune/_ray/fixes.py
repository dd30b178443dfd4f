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
   (`RestoreFailed`), so `resume` stops with the results folder as it was (and ends the
   sweep's open MLflow runs KILLED, saying why: it cannot be finished).
3. A moved results folder sends new trials to the old one. Tune restores its searcher with
   the experiment it pickled, storage path included, so trials the searcher proposes after a
   resume write to (and fail on) the folder the sweep was launched in. After a restore, the
   searcher's experiment gets the restored run's storage (and, during it, an Optuna study
   kept in the results folder is looked for where the folder is now).
4. A snapshot that names a deleted checkpoint fails its trial. Ray snapshots the sweep every
   few seconds, but deletes a trial's oldest checkpoint (`checkpoint_num_to_keep`) the moment
   a newer one is saved: after a driver crash the last snapshot may name a checkpoint that is
   gone, and Ray fails the trial ("Could not recover from checkpoint as it does not exist on
   storage anymore") and prints a `FileNotFoundError` traceback for each other one it later
   tries to delete. After a restore, such a trial resumes from the newest checkpoint still in
   its folder (the trainable takes its report number from it), or, when none is left, starts
   again from report 1 (MLflow keeps the reports it already has once); one line says which.
   Checkpoints that are gone leave Ray's bookkeeping, and new ones take names after those
   on storage.
5. A driver given a cluster's address does not send the cluster's token. `ray start --head`
   turns token authentication on when a token exists (`~/.ray/auth_token`, RAY_AUTH_TOKEN,
   RAY_AUTH_TOKEN_PATH), but `ray.init(address="host:port")` never does, so the driver sends
   no token and the cluster refuses it (`InvalidAuthToken ... RAY_AUTH_MODE is currently
   'disabled'`). Sending a token to a cluster without authentication is no fix either: the
   driver's actors are cancelled before they start. `use_cluster_token` asks the cluster
   which it takes and sets the driver's RAY_AUTH_MODE to match; preflight names the fix in
   one line when the cluster takes neither.
6. A full disk leaves a sweep that cannot be resumed. Ray writes its experiment snapshot
   (and each trial's error file) over the copy in the results folder in place: when the
   folder's filesystem fills up mid-write, the only snapshot is left truncated, and so is a
   trial's error.pkl, which ends the driver with `EOFError: Ran out of input`. Into a local
   results folder each file is now written beside its old copy and renamed over it, so a
   failed write leaves the last whole one.

These reach private methods and attributes, each listed in `_check.RELIED_ON` (importing
`collapsetune._ray` names any an upgrade removed); Ray is pinned to 2.60.x, and
tests/e2e/test_faults.py (a worker killed through the memory monitor),
tests/e2e/test_resume.py (a moved folder), tests/e2e/test_resume_damage.py (deleted
checkpoints) and tests/e2e/test_cluster_token.py (a `ray start` cluster with a token) show
that they still do what they are for.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import shutil
import uuid
from pathlib import Path

import pyarrow.fs
import ray.train._internal.storage as ray_storage
from ray.air.execution._internal.actor_manager import RayActorManager
from ray.exceptions import RayActorError, RayError, RayTaskError
from ray.tune.execution.tune_controller import TuneController
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.search_generator import SearchGenerator

from collapsetune.errors import RestoreFailed
from collapsetune.trainable import CHECKPOINT_FILE

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
        for trial in self._trials:
            _checkpoints_on_storage(trial)

    copy_files = ray_storage._pyarrow_fs_copy_files

    def _copy_files(source, destination, source_filesystem=None, destination_filesystem=None, **kwargs):
        if source_filesystem is None and isinstance(destination_filesystem, pyarrow.fs.LocalFileSystem):
            return _copy_whole_files(Path(source), Path(destination))
        return copy_files(source, destination, source_filesystem=source_filesystem,
                          destination_filesystem=destination_filesystem, **kwargs)

    for fn in (_actor_task_failed, _resume, _copy_files):
        setattr(fn, _MARK, True)
    RayActorManager._actor_task_failed = _actor_task_failed
    TuneController.resume = _resume
    ray_storage._pyarrow_fs_copy_files = _copy_files


def _copy_whole_files(source: Path, destination: Path) -> None:
    """Copies a local file or folder into a local folder file by file, each written beside
    its old copy and renamed over it: a full disk fails the copy, never truncates a file (fix 6)."""
    if source.is_file():
        pairs = [(source, destination)]
    else:
        destination.mkdir(parents=True, exist_ok=True)
        pairs = []
        for item in sorted(source.rglob("*")):
            target = destination / item.relative_to(source)
            if item.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                pairs.append((item, target))
    for item, target in pairs:
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            shutil.copyfile(item, partial)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def use_cluster_token(address: str | None, timeout: float = 5.0) -> bool | None:
    """Fix 4: this driver's RAY_AUTH_MODE set to what the cluster at `address` (host:port)
    takes, when the user left it unset: "token" when the cluster refuses a driver without
    one and takes the token Ray finds here, else "disabled" (a token-mode driver's actors
    never start on a cluster without authentication, and Ray turns token mode on for
    "auto" whenever a token exists). A RAY_AUTH_MODE the user set is kept.

    Returns:
        True when the cluster takes this driver, False when it refuses it, None when this
        cannot be told (no answer within `timeout` s, "auto", a ray:// address): then
        `ray.init` decides as it always has. Asked once per address per process.
    """
    if address is None or address in ("local", "auto") or address.startswith("ray://"):
        return None
    if address not in _TAKEN:
        _TAKEN[address] = _decide(address, timeout)
    return _TAKEN[address]


_TAKEN: dict[str, bool | None] = {}


def _decide(address: str, timeout: float) -> bool | None:
    from ray._private.authentication.authentication_token_setup import AUTH_MODE_ENV_VAR
    from ray._raylet import AuthenticationTokenLoader, Config

    if os.environ.get(AUTH_MODE_ENV_VAR) is not None:
        return _takes(address, timeout, None)
    taken = _takes(address, timeout, "disabled")
    if taken is False:
        if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
            return False
        taken = _takes(address, timeout, "token")
        mode = "token"
    else:
        mode = "disabled"
    if taken:
        os.environ[AUTH_MODE_ENV_VAR] = mode
        Config.initialize("")  # Ray caches RAY_AUTH_MODE when first imported: read it again
    return taken


def _takes(address: str, timeout: float, mode: str | None) -> bool | None:
    """Whether the cluster takes a driver with RAY_AUTH_MODE=`mode` (None: as set here),
    asked the way `ray.init` asks first, in a child process: Ray's C++ client prints its own
    warning on a refusal, and a hung one is killed."""
    env = {**os.environ, "RAY_AUTH_MODE": mode} if mode else None
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE, address], env=env, capture_output=True,
                               timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return {0: True, _REFUSED: False}.get(probe.returncode)


_REFUSED = 3
_PROBE = f"""
import sys
from ray._raylet import GcsClient
from ray.exceptions import AuthenticationError
try:
    GcsClient(address=sys.argv[1])
except AuthenticationError:
    sys.exit({_REFUSED})
"""


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


def _checkpoints_on_storage(trial) -> None:
    """A restored trial's checkpoints as they are on storage, not as the snapshot saw them (fix 4)."""
    manager = trial.run_metadata.checkpoint_manager
    storage = trial.storage
    fs = storage.storage_filesystem
    found = fs.get_file_info(pyarrow.fs.FileSelector(storage.trial_fs_path, allow_not_found=True))
    names = {info.base_name for info in found
             if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_")}
    whole = sorted((n for n in names
                    if fs.get_file_info(f"{storage.trial_fs_path}/{n}/{CHECKPOINT_FILE}").type
                    == pyarrow.fs.FileType.File), reverse=True)

    def there(result) -> bool:
        folder, name = result.checkpoint.path.rstrip("/").rsplit("/", 1)
        if folder == storage.trial_fs_path.rstrip("/"):
            return name in names
        # A PBT copy's checkpoint lies in its donor's folder (whose rotation may have deleted
        # it): the trial's own checkpoint of the same name is another one.
        other = result.checkpoint.filesystem or fs
        return other.get_file_info(result.checkpoint.path).type == pyarrow.fs.FileType.Directory

    manager._checkpoint_results = [r for r in manager._checkpoint_results if there(r)]
    latest = manager._latest_checkpoint_result
    if names:
        # New checkpoints are named after every one on storage, never over one.
        index = max(int(n.rsplit("_", 1)[-1]) for n in names if n.rsplit("_", 1)[-1].isdigit())
        storage.current_checkpoint_index = max(storage.current_checkpoint_index, index)
    if latest is None or there(latest) or trial.status == "TERMINATED":
        return
    gone = latest.checkpoint.path.rstrip("/").rsplit("/", 1)[-1]
    if whole:
        path = f"{storage.trial_fs_path}/{whole[0]}"
        manager._latest_checkpoint_result = type(latest)(
            checkpoint=type(latest.checkpoint)(path=path, filesystem=fs), metrics=dict(latest.metrics))
        print(f"collapsetune: trial {trial.trial_id}: its checkpoint {gone} is gone from storage; "
              f"resuming from {whole[0]}, the newest one left")
    else:
        manager._latest_checkpoint_result = None
        manager._checkpoint_results = []
        print(f"collapsetune: trial {trial.trial_id}: none of its checkpoints is left on storage; it starts "
              "again from report 1 (MLflow keeps the reports it already has, once each)")
    trial.invalidate_json_state()
    trial.run_metadata.invalidate_cache()
