"""A sweep's results folder, read as data: the resolved sweep, every trial's config, reports,
verdict and fate.

Only JSON, CSV and YAML are read (never a pickle: Ray keeps pickles beside its JSON, and a
tampered results folder must not run code when someone looks at it), and neither Ray nor
torch nor MLflow is imported, so `collapsetune report` is quick. The folder may be a local
path or a URI Ray writes to (file://, s3://, gs://), read through pyarrow's filesystems.

What is read, and where it comes from:

- `sweep.yaml` (the resolved sweep `run` wrote): objective, search space, fixed config,
  collapse rules, max_iterations, MLflow store;
- `collapsetune.json`: where the sweep was launched from;
- `experiment_state-*.json` (Ray's newest readable snapshot): which trials the sweep has,
  their status and trial folder; its pickled fields are left alone;
- `sweep_stopped.json`, when the `stop_sweep_when:` breaker ended the sweep: why, and which
  trials it stopped (`collapsetune.records.SweepStopRecord`);
- each trial folder's `params.json`, `collapsetune_reports.jsonl` (every report in the order
  the driver received it, `collapsetune.records`; Ray's own `result.json`, which loses
  reports when PBT pauses and resumes a trial, is read only when it is missing: sweeps run
  before it existed) and `error.txt`.

Example:
    >>> sweep = read_results("results/bitnet-collapse-20261122-150000")  # doctest: +SKIP
    >>> [(t.trial_id, t.outcome) for t in sweep.trials]  # doctest: +SKIP
    [('9d46c_00000', 'collapsed'), ('9d46c_00001', 'healthy')]
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs
import yaml

from collapsetune._numbers import is_number as _is_number
from collapsetune.collapse import (COLLAPSED, COLLAPSING, DIVERGED, ERROR, HEALTHY, INCONCLUSIVE, ITERATION_KEY,
                                   OUTCOMES, REASON_KEY, RUNNING, STATUS_KEY, UNJUDGED, CollapseRule, Rule)
from collapsetune.collapse._breaker import STOPPED_WITH_SWEEP
from collapsetune.errors import SpecError
from collapsetune.names import (ATLAS_DIR, DONOR_KEY, DONOR_REPORT_KEY, LAUNCH_FILE, REPORTS_FILE, SWEEP_FILE,
                                SWEEP_STOP_FILE)
from collapsetune.spec._base import thaw
from collapsetune.spec._distribution import ALIASES, Distribution
from collapsetune.storage import location

__all__ = [
    "ATLAS_DIR",
    "COLLAPSING",
    "INCONCLUSIVE",
    "OUTCOMES",
    "UNJUDGED",
    "Dimension",
    "ResultsError",
    "SweepInfo",
    "SweepResults",
    "TrialResult",
    "copy_label",
    "copy_of",
    "early_end",
    "list_launches",
    "read_reports",
    "read_results",
    "read_sweep_stop",
]

_HIDDEN = {"max_iterations"}  # handed to every wrapper by Tune; not a setting anyone chose
_PICKLED = "<pickled by Ray; not read>"


class ResultsError(SpecError):
    """A results folder that is missing or cannot be read; says which and where."""


@dataclass(frozen=True)
class Dimension:
    """One search dimension: `kind` as in the sweep file (uniform, loguniform, randint,
    choice, grid, or one this module does not know), `args` its bounds or values."""

    name: str
    kind: str
    args: tuple

    @property
    def log(self) -> bool:
        return self.kind == "loguniform"

    @property
    def categorical(self) -> bool:
        """Values to tell apart rather than to order (choice/grid of anything but numbers)."""
        return self.kind not in ("uniform", "loguniform", "randint") and not all(
            _is_number(v) for v in self.args
        )

    def describe(self) -> str:
        return f"{self.kind} {list(self.args)}"


@dataclass(frozen=True)
class SweepInfo:
    """What the resolved sweep.yaml says that reading results needs."""

    name: str
    objective: str  # the objective metric, e.g. val/loss
    mode: str  # min | max
    max_iterations: int
    search_space: dict[str, Dimension]
    config: dict[str, Any]  # fixed values
    rules: tuple[Rule, ...]  # collapsetune.collapse's, read with `Rule.read` (a newer kind is `Unknown`)
    tracking_uri: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)  # the whole file
    objectives: tuple[tuple[str, str], ...] = ()  # (metric, mode) of each objective, the first one first

    @property
    def scheduler(self) -> str:
        """The scheduler's type (fifo, asha, pbt, ...); asha, the spec's default, when the file
        has no scheduler section."""
        section = self.raw.get("scheduler", {"type": "asha"})
        return str(section.get("type", "")) if isinstance(section, dict) else ""

    @property
    def cuts_trials(self) -> bool:
        """Whether the sweep's scheduler ends trials early (ASHA); True for one this version
        does not know, so an older reader's guess stays what it was."""
        from collapsetune.spec import SCHEDULERS

        known = SCHEDULERS.get(self.scheduler)
        return known.cuts_trials if known is not None else True

    @property
    def horizon(self) -> int:
        """Reports every rule needs before it can fire (0 without rules)."""
        return max((r.earliest_report for r in self.rules), default=0)

    @property
    def collapse_metrics(self) -> list[str]:
        """Metrics the rules watch, first rule's first: the sweep's main diversity metric."""
        seen: dict[str, None] = {}
        for rule in self.rules:
            for c in rule.conditions:
                if c.metric:
                    seen.setdefault(c.metric, None)
        return list(seen)

    def better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b


@dataclass
class TrialResult:
    """One trial: its config, every report, the verdict its results carry and its fate.

    `state` is Ray's view (finished | error | running | pending); `verdict` is the trainable's
    (collapse.status of the last report: healthy | collapsed | diverged | ..., "" before any
    report); `outcome` (see `judge`) is what `report`, the atlas and MLflow's notes call it.
    """

    trial_id: str
    path: str  # the trial's folder
    config: dict[str, Any]
    reports: list[dict[str, Any]]  # one per training_iteration, in order
    state: str
    verdict: str = ""
    reason: str = ""
    collapse_iteration: int = 0  # report on which the verdict turned; 0 while healthy
    error: str = ""  # last line of error.txt
    num_failures: int = 0
    outcome: str = ""
    note: str = ""  # why the outcome, when it is not the trainable's verdict
    # What PBT copied into this trial, in order: "took trial X's report R", after "rescued
    # when collapsed (or diverged) at report N: " when the copy was a rescue.
    copies: list[str] = field(default_factory=list)
    stopped_with_sweep: bool = False  # the `stop_sweep_when:` breaker ended the sweep while it ran

    @property
    def iterations(self) -> int:
        return int(self.reports[-1].get("training_iteration", len(self.reports))) if self.reports else 0

    @property
    def last(self) -> dict[str, Any]:
        return self.reports[-1] if self.reports else {}

    def value(self, metric: str) -> float:
        """The metric on the trial's last report (nan when never reported)."""
        return _nan(self.last.get(metric))

    def series(self, metric: str) -> tuple[list[int], list[float]]:
        """(reports, values) of one metric over the trial's course."""
        steps, values = [], []
        for r in self.reports:
            v = _float(r.get(metric))
            if v is not None:
                steps.append(int(r.get("training_iteration", len(steps) + 1)))
                values.append(v)
        return steps, values


@dataclass
class SweepResults:
    """A results folder: the sweep and its trials (in trial-id order)."""

    path: str
    sweep: SweepInfo
    trials: list[TrialResult]
    launch: dict[str, Any]  # collapsetune.json: source, base_dir, cwd ({} when unreadable)
    notes: list[str] = field(default_factory=list)  # what could not be read, for the reader
    stopped: str = ""  # why the `stop_sweep_when:` breaker ended the sweep; "" when it did not

    def best(self) -> TrialResult | None:
        """The best trial whose outcome is healthy, by the objective metric."""
        best = None
        for t in self.trials:
            v = t.value(self.sweep.objective)
            if t.outcome == HEALTHY and math.isfinite(v):
                if best is None or self.sweep.better(v, best.value(self.sweep.objective)):
                    best = t
        return best

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.trials:
            counts[t.outcome] = counts.get(t.outcome, 0) + 1
        return counts


# -- reading ---------------------------------------------------------------------------


def read_results(results_dir: str) -> SweepResults:
    """Reads a results folder made by `collapsetune run` (local path or URI).

    Raises:
        ResultsError: the folder does not exist, or holds no sweep.yaml (a storage root
            holding launches says which).
    """
    folder = location(results_dir)
    fs, root = _filesystem(folder)
    text = _read(fs, f"{root}/{SWEEP_FILE}")
    if text is None:
        raise ResultsError(_not_a_launch(fs, root, folder), file=folder)
    sweep = parse_sweep(text, f"{folder}/{SWEEP_FILE}")
    notes: list[str] = []
    launch = _json_or_none(_read(fs, f"{root}/{LAUNCH_FILE}")) or {}
    listed, why = _ray_trials(fs, root)
    if why:
        notes.append(why)
    folders = _trial_folders(fs, root)
    if listed is None:  # no readable snapshot: every folder that looks like a trial's
        listed = [{"relative_logdir": name} for name in sorted(folders)]
    stopped, by_sweep = _sweep_stop(fs, root)
    trials = [_read_trial(fs, root, folder, entry, sweep, notes, by_sweep) for entry in listed]
    trials.sort(key=lambda t: t.trial_id)
    return SweepResults(folder, sweep, trials, launch if isinstance(launch, dict) else {}, notes, stopped=stopped)


def read_sweep_stop(results_dir: str) -> tuple[str, set[str]]:
    """Why the `stop_sweep_when:` breaker ended the sweep and the trials it stopped; ("", set())
    when it did not (or the file cannot be read)."""
    return _sweep_stop(*_filesystem(location(results_dir)))


def list_launches(storage: str) -> list[str]:
    """The results folders (launches) directly inside a storage folder, oldest name first."""
    folder = location(storage)
    fs, root = _filesystem(folder)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError:
        return []
    found = []
    for info in infos:
        if info.type == pyarrow.fs.FileType.Directory:
            marker = fs.get_file_info(f"{info.path}/{SWEEP_FILE}")
            if marker.type == pyarrow.fs.FileType.File:
                found.append(f"{folder}/{info.base_name}")
    return sorted(found)


def parse_sweep(text: str, source: str = SWEEP_FILE) -> SweepInfo:
    """The parts of a resolved sweep.yaml that reading results needs. Lenient about what it
    does not need (a newer rule kind is read as unknown, an extra section is left alone);
    strict about objective and name."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ResultsError(f"invalid YAML: {str(exc).splitlines()[0]}", file=source) from None
    if not isinstance(raw, dict):
        raise ResultsError(f"expected a mapping of sweep keys, got {type(raw).__name__}", file=source)
    listed = raw.get("objective")
    listed = listed if isinstance(listed, list) else [listed]  # a list: several objectives
    if not all(isinstance(o, dict) and isinstance(o.get("metric"), str) for o in listed):
        raise ResultsError("expected objective: {metric: NAME, mode: min|max} or a list of them",
                           file=source, key="objective")
    objective = listed[0]
    mode = objective.get("mode", "min")
    space = raw.get("search_space") or {}
    dims = {
        str(k): _dimension(str(k), v)
        for k, v in (space.items() if isinstance(space, dict) else [])
        if k != "include"
    }
    constants = {k: d.args[0] for k, d in dims.items() if d.kind == "const"}
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    mlflow = raw.get("mlflow") if isinstance(raw.get("mlflow"), dict) else {}
    max_it = raw.get("max_iterations")
    return SweepInfo(
        name=str(raw.get("name", "")),
        objective=objective["metric"],
        mode="max" if mode == "max" else "min",
        objectives=tuple((o["metric"], "max" if o.get("mode") == "max" else "min") for o in listed),
        max_iterations=int(max_it) if _is_number(max_it) else 0,
        search_space={k: d for k, d in dims.items() if d.kind != "const"},
        config={**config, **constants},
        rules=tuple(Rule.read(r) for r in (raw.get("collapse") if isinstance(raw.get("collapse"), list) else [])),
        tracking_uri=mlflow.get("tracking_uri") if isinstance(mlflow.get("tracking_uri"), str) else None,
        raw=raw,
    )


def judge(trial: TrialResult, sweep: SweepInfo) -> tuple[str, str]:
    """The trial's outcome and, when it is not the trainable's own verdict, why.

    A trial whose verdict is still "healthy" (results written before the trainable said
    inconclusive) is healthy only if its reports, replayed through the sweep's rules, let
    every rule fire, and, when the scheduler cut it, none of their conditions held on its
    last report. A trial that ended early under a scheduler that cuts none (FIFO, PBT) was
    not cut: it failed or was interrupted, and is inconclusive.
    """
    if trial.state == "error":
        return ERROR, ""
    if trial.verdict and trial.verdict not in (HEALTHY, INCONCLUSIVE):
        return trial.verdict, ""  # collapsed, diverged, or a verdict added later: as reported
    if trial.state in ("running", "pending"):
        return RUNNING, ""
    n = trial.iterations
    checks = replay(trial.reports, sweep.rules)
    holding = [c.pending() for c in checks if c.holding]
    waiting = [c.pending() for c in checks if not c.holding and not c.judged]
    early = bool(sweep.max_iterations) and n < sweep.max_iterations
    cut = early and (sweep.cuts_trials or trial.stopped_with_sweep)  # ended from outside, as ASHA cuts
    ended = _ended_early(trial, sweep) if early else f"ended at report {n}"
    if trial.verdict == INCONCLUSIVE:  # the trainable said so itself: it ended before a verdict
        why = f" while {holding[0]}" if holding else ", before the rules could judge it"
        return INCONCLUSIVE, f"{ended}{why}"
    if not trial.reports:
        return UNJUDGED, _ended_early(trial, sweep) if trial.stopped_with_sweep else "no report"
    if early and not cut:  # failed or interrupted under a scheduler that cuts none
        return INCONCLUSIVE, f"{ended} while {holding[0]}" if holding else ended
    if holding and cut:
        return COLLAPSING, f"{ended} while {holding[0]}"
    if waiting:
        return (UNJUDGED if cut else INCONCLUSIVE), f"{ended}, before the rules could fire ({waiting[0]})"
    return HEALTHY, ended if cut else ""  # ran every report: the verdict stands


def replay(reports: list[dict[str, Any]], rules: tuple[Rule, ...]) -> list[CollapseRule]:
    """Each rule this version reads, fed a trial's reports in order (a metric a report lacks
    is NaN: no evidence of collapse), as the trainable's own check saw them. Reports before
    the first one given (a caller that has only the last) count as seen, with no values."""
    checks = [rule.build() for rule in rules if rule.known]
    before = _int(reports[0].get("training_iteration"), 1) - 1 if reports else 0
    for check in checks:
        check.load_state_dict({"seen": before, "streak": 0})
    for report in reports:
        for check in checks:
            check.update({m: _nan(report.get(m)) for m in check.metrics})
    return checks


# -- internals -------------------------------------------------------------------------


def _ended_early(trial: TrialResult, sweep: SweepInfo) -> str:
    """How a trial that stopped before max_iterations without a verdict ended: stopped with
    the sweep, cut by a scheduler that cuts trials, else failed or interrupted (`early_end`)."""
    n = trial.iterations
    if trial.stopped_with_sweep:
        return f"{STOPPED_WITH_SWEEP} at report {n}" if n else f"{STOPPED_WITH_SWEEP} before its first report"
    how = f"failed ({trial.num_failures} time(s)) and stopped" if trial.num_failures else "interrupted"
    return early_end(n, sweep.max_iterations, cuts=sweep.cuts_trials, scheduler=sweep.scheduler, how=how)


def _sweep_stop(fs: pyarrow.fs.FileSystem, root: str) -> tuple[str, set[str]]:
    stop = _json_or_none(_read(fs, f"{root}/{SWEEP_STOP_FILE}"))
    if not (isinstance(stop, dict) and isinstance(stop.get("reason"), str)):
        return "", set()
    trials = stop.get("trials") if isinstance(stop.get("trials"), list) else []
    return stop["reason"], {t for t in trials if isinstance(t, str)}


def _filesystem(folder: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if "://" in folder:
        try:
            return pyarrow.fs.FileSystem.from_uri(folder)
        except (pyarrow.ArrowInvalid, OSError) as exc:
            raise ResultsError(f"cannot open this storage URI: {exc}", file=folder) from None
    return pyarrow.fs.LocalFileSystem(), str(Path(folder).resolve())


def _read(fs: pyarrow.fs.FileSystem, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, OSError, pyarrow.ArrowException):
        return None


def _not_a_launch(fs: pyarrow.fs.FileSystem, root: str, folder: str) -> str:
    info = fs.get_file_info(root)
    if info.type == pyarrow.fs.FileType.NotFound:
        return "no such results folder"
    if info.type != pyarrow.fs.FileType.Directory:
        return "not a folder; expected a results folder made by `collapsetune run`"
    launches = list_launches(folder)
    if launches:
        shown = "\n".join(f"  {p}" for p in launches[-20:])
        more = f" (the last 20 of {len(launches)})" if len(launches) > 20 else ""
        return f"a storage folder holding {len(launches)} launches{more}; report one of them:\n{shown}"
    return f"no {SWEEP_FILE} here: not a results folder made by `collapsetune run`, and no launches in it"


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _ray_trials(fs: pyarrow.fs.FileSystem, root: str) -> tuple[list[dict] | None, str]:
    """The trials of Ray's newest readable experiment snapshot, as plain JSON (their
    cloudpickled fields stay undecoded); None when there is no readable snapshot."""
    try:
        names = [i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(root))]
    except OSError:
        return None, ""
    snapshots = sorted(fnmatch.filter(names, "experiment_state-*.json"), reverse=True)
    for i, name in enumerate(snapshots):
        state = _json_or_none(_read(fs, f"{root}/{name}"))
        trials = _snapshot_trials(state)
        if trials is not None:
            why = f"Ray's newest experiment state was unreadable; read the older {name}" if i else ""
            return trials, why
    if snapshots:
        return None, "Ray's experiment state is unreadable (truncated?); trials were read from their folders"
    return None, ""


def _snapshot_trials(state: Any) -> list[dict] | None:
    if not isinstance(state, dict) or not isinstance(state.get("trial_data"), list):
        return None
    trials = []
    for item in state["trial_data"]:
        if not (isinstance(item, list) and item):
            continue
        trial = _json_or_none(item[0]) if isinstance(item[0], str) else None
        meta = _json_or_none(item[1]) if len(item) > 1 and isinstance(item[1], str) else None
        if isinstance(trial, dict):
            trials.append({**trial, "_meta": meta if isinstance(meta, dict) else {}})
    return trials


def _trial_folders(fs: pyarrow.fs.FileSystem, root: str) -> set[str]:
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root))
    except OSError:
        return set()
    folders = set()
    for info in infos:
        if info.type == pyarrow.fs.FileType.Directory:
            inside = fs.get_file_info([f"{info.path}/{name}" for name in ("params.json", REPORTS_FILE, "result.json")])
            if any(i.type == pyarrow.fs.FileType.File for i in inside):
                folders.add(info.base_name)
    return folders


_STATES = {"TERMINATED": "finished", "ERROR": "error", "RUNNING": "running", "PAUSED": "pending",
           "PENDING": "pending"}


def _read_trial(fs: pyarrow.fs.FileSystem, root: str, folder: str, entry: dict, sweep: SweepInfo,
                notes: list[str], by_sweep: set[str] = frozenset()) -> TrialResult:
    logdir = str(entry.get("relative_logdir") or "")
    base = f"{root}/{logdir}" if logdir else root
    name, text = REPORTS_FILE, _read(fs, f"{base}/{REPORTS_FILE}") if logdir else None
    if text is None and logdir:
        name, text = "result.json", _read(fs, f"{base}/result.json")
    reports, copies, truncated = _reports(text or "")
    if truncated:
        notes.append(f"{logdir}/{name}: skipped a line that is not whole JSON (a report being written?)")
    params = _json_or_none(_read(fs, f"{base}/params.json")) if logdir else None
    config = _config(entry.get("config"), params if isinstance(params, dict) else {})
    meta = entry.get("_meta") or {}
    last_known = meta.get("last_result") if isinstance(meta.get("last_result"), dict) else {}
    if not reports and last_known.get("training_iteration"):
        reports = [_plain(last_known)]  # result.json lost; Ray's snapshot kept the last report
    trial_id = str(entry.get("trial_id") or (reports[-1].get("trial_id") if reports else "") or logdir)
    ray_status = entry.get("status")
    if isinstance(ray_status, str):
        state = _STATES.get(ray_status, ray_status.lower())
    else:  # not in a snapshot: Ray's own files say whether it failed or ended
        state = "error" if _read(fs, f"{base}/error.txt") is not None else (
            "finished" if reports and reports[-1].get("done") else "running")
    last = reports[-1] if reports else {}
    trial = TrialResult(
        trial_id=trial_id,
        path=f"{folder}/{logdir}" if logdir else folder,
        config=config,
        reports=reports,
        state=state,
        verdict=str(last.get(STATUS_KEY, "")),
        reason=str(last.get(REASON_KEY, "") or ""),
        collapse_iteration=int(_float(last.get(ITERATION_KEY)) or 0),
        num_failures=int(_float(meta.get("num_failures")) or 0),
        copies=copies,
        stopped_with_sweep=trial_id in by_sweep,
    )
    if state == "error":
        trial.error = _last_line(_read(fs, f"{base}/error.txt")) or "error (no error.txt)"
    trial.outcome, trial.note = judge(trial, sweep)
    return trial


def early_end(n: int, max_iterations: int, *, cuts: bool, scheduler: str, how: str = "ended") -> str:
    """How a trial that ended at report `n` of `max_iterations`, early and without a verdict,
    is told everywhere (`report`, `run`'s progress lines): cut by a scheduler that `cuts`
    trials (ASHA); else `how` it ended, and that its `scheduler` cuts none (FIFO, PBT).

    Example:
        >>> early_end(3, 12, cuts=False, scheduler="fifo")
        'ended at report 3 of 12 (not cut: the fifo scheduler cuts no trial)'
    """
    if cuts:
        return f"cut by the scheduler at report {n}"
    which = f"the {scheduler} scheduler" if scheduler else "its scheduler"
    return f"{how} at report {n} of {max_iterations} (not cut: {which} cuts no trial)"


def copy_label(donor: str, donor_report: int, before: Mapping[str, Any]) -> str:
    """How a PBT copy into a trial is told everywhere (`run`'s progress lines, `report`):
    "took trial X's report R", after "rescued when collapsed at report N: " when the trial's
    report `before` the copy had collapsed or diverged."""
    status = before.get(STATUS_KEY)
    rescue = (f"rescued when {status} at report {before.get('training_iteration')}: "
              if status in (COLLAPSED, DIVERGED) else "")
    return f"{rescue}took trial {donor}'s report {donor_report}"


def copy_of(report: Mapping[str, Any]) -> tuple[str, int] | None:
    """The PBT copy `report` is the first report after: (donor trial id, the donor's report
    whose checkpoint was copied); None for any other report. The same copy on two reports
    is one copy made once and restored again (a resumed driver: a replay)."""
    donor = report.get(DONOR_KEY)
    if donor is None:
        return None
    return str(donor), _int(report.get(DONOR_REPORT_KEY), 0)


def read_reports(text: str) -> tuple[list[dict[str, Any]], bool]:
    """The reader of a trial's record (`REPORTS_FILE`, written by `collapsetune.records`; Ray's
    result.json is read the same way): every report, in the order the driver received them,
    replays and the course after a PBT copy included, and whether a line was skipped for not
    being whole JSON (a report cut off mid-write: a killed driver, a full disk)."""
    rows: list[dict[str, Any]] = []
    skipped = False
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            skipped = True
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, skipped


def _reports(text: str) -> tuple[list[dict[str, Any]], list[str], bool]:
    """One dict per training_iteration (a restored trial re-reports some: the later wins; so
    does the course a trial took after PBT copied another into it), the copies PBT made into
    the trial (`TrialResult.copies`), read from every report in order, before any is
    overwritten, and whether a line was not whole JSON."""
    rows, skipped = read_reports(text)
    by_step: dict[int, dict[str, Any]] = {}
    copies: list[str] = []
    before, last_copy = {}, None
    for result in rows:
        copy = copy_of(result)
        if copy is not None:
            if copy != last_copy:  # the same copy again: a resumed driver restored it (a replay)
                copies.append(copy_label(*copy, before))
            last_copy = copy
        step = _float(result.get("training_iteration"))
        by_step[int(step) if step is not None else len(by_step) + 1] = before = _plain(result)
    return [by_step[k] for k in sorted(by_step)], copies, skipped


def _plain(result: dict) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "config"}


def _config(state_config: Any, params: dict) -> dict[str, Any]:
    config = dict(params)
    if isinstance(state_config, dict):
        for k, v in state_config.items():
            if isinstance(v, dict) and v.get("_type") == "CLOUDPICKLE_FALLBACK":
                config.setdefault(k, _PICKLED)
            else:
                config[k] = v
    return {k: v for k, v in config.items() if k not in _HIDDEN}


def _dimension(name: str, raw: Any) -> Dimension:
    try:
        dist = Distribution.from_yaml(raw)
    except SpecError:  # a kind a newer version wrote, or bounds this one refuses: kept as written
        if not (isinstance(raw, Mapping) and len(raw) == 1):
            return Dimension(name, "const", (raw,))
        (kind, args), = raw.items()
        return Dimension(name, ALIASES.get(str(kind), str(kind)), tuple(args) if isinstance(args, list) else (args,))
    return Dimension(name, dist.kind, tuple(thaw(dist.args)))


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def _float(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    return None


def _nan(value: Any) -> float:
    v = _float(value)
    return math.nan if v is None else v


def _int(value: Any, default: int) -> int:
    v = _float(value)
    return int(v) if v is not None else default
