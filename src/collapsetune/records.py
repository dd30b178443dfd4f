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

The record has one reader, `collapsetune.results.read_reports` (Ray-free, for `report`):
`recorded` reads a trial's record back through it, every report in order, for a resumed
driver's MLflow catch-up (`collapsetune.tracking._catchup`).
"""

from __future__ import annotations

import json
import math
import os
from typing import IO, Any

import pyarrow.fs
from ray import tune
from ray.tune.utils.util import SafeFallbackEncoder

from collapsetune.names import DONOR_REPORT_KEY, REPORTS_FILE, SWEEP_STOP_FILE, SWEEP_STOP_KEY
from collapsetune.results import read_reports

__all__ = ["SweepStopRecord", "TrialRecords", "recorded"]


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
    them, read by the one reader of the record (`results.read_reports`); a line cut off by a
    killed driver is skipped, and so is one whose report number (or PBT donor's report) is
    not a whole number. None recorded, or no folder (a stub trial): an empty list."""
    try:
        with open(os.path.join(_folder(trial), REPORTS_FILE), encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (AttributeError, OSError):
        return []
    rows, _ = read_reports(text)
    return [row for row in rows if _is_count(row.get("training_iteration"), 1)
            and _is_count(row.get(DONOR_REPORT_KEY, 0), 0)]


def _is_count(value: Any, least: int) -> bool:
    """Whether `value` is a whole number >= `least`, as the driver writes a report number (a
    damaged or hand-edited line may hold NaN, Infinity, a string or 1.5 there)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value == int(value) and value >= least)


def _folder(trial: Any) -> str:
    """Where the trial's record is written: the results folder itself when it is local (a
    shared NFS folder included), else Ray's staging copy, synced to the storage URI."""
    storage = trial.storage
    if isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return storage.trial_fs_path
    return trial.local_path


class SweepStopRecord(tune.Callback):
    """Writes `SWEEP_STOP_FILE` into the results folder when the `stop_sweep_when:` breaker
    stopped the sweep: why, and which trials it stopped. Tune stops those (and starts none of
    the pending ones) itself, without their `on_trial_complete`, so they are the trials that
    ended TERMINATED without it; the ones that did end through it are kept with Tune's
    snapshots (`get_state`), so a resumed driver knows them too. `report` says "stopped with
    the sweep" for those trials, and MLflow's callback ends their runs (it comes after this
    one in the callback list).

    Example:
        >>> config = tune.RunConfig(callbacks=[SweepStopRecord("results/x")])
    """

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self._ended: set[str] = set()  # trials that ended through Tune's own hooks

    def get_state(self) -> dict:
        return {"ended": sorted(self._ended)}

    def set_state(self, state: dict) -> None:
        self._ended |= set(state.get("ended", []))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        reason = next((str(t.last_result[SWEEP_STOP_KEY]) for t in trials
                       if SWEEP_STOP_KEY in (t.last_result or {})), None)
        if reason is None:
            return
        stopped = sorted(t.trial_id for t in trials if t.status == "TERMINATED" and t.trial_id not in self._ended)
        from collapsetune.storage import write_text

        write_text(self.experiment_path, SWEEP_STOP_FILE, json.dumps({"reason": reason, "trials": stopped}, indent=2))


def _ends_a_line(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
