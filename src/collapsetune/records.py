"""`TrialRecords`: every report of every trial, appended to the trial's results folder as the
driver receives it. It is the record `report`, the atlas and the parent run's description read
(`collapsetune.results`), in `names.REPORTS_FILE`.

Ray's result.json is not complete under PBT. Ray's JSON logger writes it in the trial's
folder on the driver (a staging copy that Ray syncs to the results folder every ten seconds
or so), and each time a trial starts it first replaces that copy by the one in the results
folder, so it can resume after a driver restart. PBT pauses and starts trials in turns, and
every start threw away the reports made since the last sync (issue 22: a trial's result.json
had reports 1-6, 9, 11 and 12, MLflow all twelve).

This record is only appended to. With a local results folder (the default, a shared NFS
folder included) it is written there directly and flushed after each report, so a killed
driver loses nothing. With a storage URI (s3://, gs://) it is written in the trial's staging
folder, which Ray syncs; the copy in the results folder is fetched there once, the first time
the driver meets the trial (after a resume), and never over reports already written.

`recorded` reads a trial's record back, every line in order, for a resumed driver's MLflow
catch-up (`collapsetune.catchup`); `collapsetune.results` reads it for `report`.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

import pyarrow.fs
from ray import tune
from ray.tune.utils.util import SafeFallbackEncoder

from collapsetune.names import REPORTS_FILE

__all__ = ["TrialRecords", "recorded"]


class TrialRecords(tune.Callback):
    """Appends each result (less its config) as one JSON line to `REPORTS_FILE` in the trial's
    folder, in the order the driver receives them: replays after a restore and the reports
    after a PBT copy included (the reader sorts them out).

    Example:
        >>> config = tune.RunConfig(callbacks=[TrialRecords()])
    """

    def __init__(self) -> None:
        self._files: dict[str, IO[str]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {}  # open files do not pickle (Tune saves its callbacks); they reopen on use

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._files = {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        file = self._files.get(trial.trial_id) or self._open(trial)
        line = json.dumps({k: v for k, v in result.items() if k != "config"}, cls=SafeFallbackEncoder) + "\n"
        whole = os.fstat(file.fileno()).st_size  # every report before this one is flushed
        try:
            file.write(line)
            file.flush()
        except OSError:
            # A full disk: the report is taken back whole (no half line for the next driver to
            # append to), and the error ends the sweep; `resume` makes the report again.
            self._files.pop(trial.trial_id, None)
            try:
                file.close()  # closes the file even when its flush fails again
            except OSError:
                pass
            os.truncate(file.name, whole)
            raise

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial_id in list(self._files):
            self._close(trial_id)

    def _open(self, trial: Any) -> IO[str]:
        storage = trial.storage
        folder = _folder(trial)
        if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
            staged = os.path.join(folder, REPORTS_FILE)
            if not os.path.exists(staged):
                os.makedirs(folder, exist_ok=True)
                try:  # what an earlier driver recorded (a resume)
                    pyarrow.fs.copy_files(f"{storage.trial_fs_path}/{REPORTS_FILE}", staged,
                                          source_filesystem=storage.storage_filesystem)
                except (FileNotFoundError, OSError, pyarrow.ArrowException):
                    pass  # none yet: a new trial
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, REPORTS_FILE)
        file = self._files[trial.trial_id] = open(path, "a", encoding="utf-8")
        if file.tell() and not _ends_a_line(path):
            file.write("\n")  # a report cut off by a killed driver stays one bad line, not two
        return file

    def _close(self, trial_id: str) -> None:
        file = self._files.pop(trial_id, None)
        if file is not None:
            file.close()


def recorded(trial: Any) -> list[dict[str, Any]]:
    """Every report recorded for `trial` (less its config), in the order the driver received
    them; a line cut off by a killed driver is skipped. None recorded, or no folder (a stub
    trial): an empty list."""
    try:
        path = os.path.join(_folder(trial), REPORTS_FILE)
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (AttributeError, OSError):
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "training_iteration" in row:
            rows.append(row)
    return rows


def _folder(trial: Any) -> str:
    """Where the trial's record is written: the results folder itself when it is local (a
    shared NFS folder included), else Ray's staging copy, synced to the storage URI."""
    storage = trial.storage
    if isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return storage.trial_fs_path
    return trial.local_path


def _ends_a_line(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
