"""Optuna search that learns where collapse lives, and keeps its study in the results folder.

`CollapseOptunaSearch` is Ray Tune's OptunaSearch with three additions:

- **Collapse as a constraint.** When a trial ends, its last `collapse/margin` (how far past
  the nearest collapse rule's bound; > 0 while a rule's conditions hold) becomes the Optuna
  trial's constraint `collapse` (Optuna 5's `Trial.set_constraint`): TPE, NSGA-II and GP then
  model where collapse happens separately from the objective, instead of learning it only as
  the penalised objective (1e9) that ASHA also sees. A trial the forecast stopped
  (`collapse_forecast:`) is infeasible as well when its forecast P(collapse) is above 1/2.
- **The real scale in the study.** Given the objective metrics themselves (`raw_metrics`,
  e.g. `val/loss`), the study records each trial's real value, not the 1e9 penalty Tune's
  scheduler sees, so optuna-dashboard's charts are on the real scale; collapse then reaches
  the sampler only as the constraint, which every trial then carries: its margin with
  `constraints: true`, else 1 for a collapsed or diverged trial and 0 for any other. Optuna's
  samplers (TPE, NSGA-II, GP) rank every infeasible trial below every feasible one, which is
  the order the penalty gave, so they still learn to avoid collapse. A trial with no finite
  value (diverged on its first report) keeps the penalty. Each Optuna trial has the Ray
  trial's id as user attribute `ray_trial_id` (`link_study` adds its MLflow run).

- **Several objectives.** With a list of metrics and modes (the trainable reports the first
  as `objective`, the others as `objective/2`, ...), Tune's single scheduler metric does not
  overwrite them.
- **A study that survives a crash.** With RDB storage (SQLite in the results folder) a
  resumed sweep continues the same study; trials Optuna was asked for but never told about
  (their trial was lost in a driver crash and runs again under a new id) are marked FAIL, so
  the study holds each configuration once.

This subclasses a Ray class and reads its state (the study, its trials, the objectives)
through `collapsetune._ray`, whose import checks that the installed Ray still has each
attribute; tests/test_searchers.py drives the real objects.

Example:
    >>> searcher = CollapseOptunaSearch(metric=["objective", "objective/2"], mode=["min", "max"],
    ...                                 sampler=make_sampler("nsga2", seed=0), constraints=True)
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import flatten_dict

from collapsetune import _ray
from collapsetune.collapse import MARGIN_KEY, STATUS_KEY, STOPPING
from collapsetune.errors import SpecError
from collapsetune.escape import terminal
from collapsetune.forecast import FORECAST_KEY


CONSTRAINT = "collapse"  # the Optuna constraint: the trial's last collapse margin
_LOST_ATTR = "collapsetune.lost"
_BOUND = 1e9  # Optuna needs finite constraint values; a diverged trial's +inf becomes this
RAY_TRIAL_ATTR = "ray_trial_id"  # Optuna user attributes: the Ray trial ...
MLFLOW_RUN_ATTR = "mlflow_run_id"  # ... its MLflow run ...
MLFLOW_LINK_ATTR = "mlflow_run"  # ... and that run's address in MLflow's UI, where known


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's sampler by the sweep file's name: tpe, nsga2 or gp. Each reads the trials'
    constraints when there are any (infeasible trials rank below feasible ones)."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return _NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"sampler must be tpe, nsga2 or gp, got {name!r}")


class _NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable: Tune pickles the searcher, sampler included, into every
    experiment snapshot, and Optuna's holds a thread lock (made anew on load)."""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_thread_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


STUDY_FILE = "optuna.db"  # in a results folder: the sweep's Optuna study
_restoring_from: str | None = None  # the results folder Tune is restoring a sweep from, if any


@contextlib.contextmanager
def restoring_from(results_dir: str) -> Iterator[None]:
    """While Tune restores a sweep from `results_dir`, a restored searcher finds its study there."""
    global _restoring_from
    before, _restoring_from = _restoring_from, results_dir
    try:
        yield
    finally:
        _restoring_from = before


def check_writable(results_dir: str) -> None:
    """Stops a resume, before Ray starts, when the results folder's study cannot be written
    (a read-only file or folder): Optuna would fail on its first write, mid-restore."""
    path = Path(results_dir, STUDY_FILE)
    if "://" in results_dir or not path.exists():
        return
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        where = "file" if not os.access(path, os.W_OK) else "folder it is in"
        raise SpecError(f"Optuna's study is read-only (the {where}); the resumed sweep must write to it: "
                        "make it writable (chmod u+w, or chattr -i) and resume again", file=str(path))


def study_storage(path: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB store in a SQLite file (the results folder's `optuna.db`), its folder
    created if need be (the searcher is built before Tune makes the results folder)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 30}})


class CollapseOptunaSearch(OptunaSearch):
    """OptunaSearch with collapse constraints, several objectives and a resumable study
    (see the module docstring). Arguments are OptunaSearch's, and `constraints`: whether a
    trial's collapse margin is its constraint."""

    def __init__(self, *args: Any, constraints: bool = False, raw_metrics: Sequence[str] = (),
                 warm_start: Sequence[str] = (), **kwargs: Any) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in RDB" line in `run`
        # Set before OptunaSearch's __init__: given a `space`, it sets up the study, warm start and all.
        self.constraints = constraints
        self.raw_metrics = list(raw_metrics)  # the objective metrics before the penalty, in objective order
        self.warm_start = [str(folder) for folder in warm_start]  # earlier sweeps' results folders
        super().__init__(*args, **kwargs)
        self._last_raw: dict[str, list[float]] = {}  # trial id -> its last finite raw values

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        if _ray.several_objectives(self):
            # Several objectives: Tune's one metric is the scheduler's (`objective`), not ours.
            metric, mode = None, None
        return super().set_search_properties(metric, mode, config, **spec)

    def _setup_study(self, mode: str | list) -> None:
        # Ray's OptunaSearch refuses a point that leaves out a dimension; the sweep format allows
        # it, and Optuna's enqueue_trial samples the dimensions a queued point leaves out.
        points = _ray.optuna_points(self)
        _ray.set_optuna_points(self, [])
        try:
            super()._setup_study(mode)
        finally:
            _ray.set_optuna_points(self, points)
        for point in points:
            _ray.optuna_study(self).enqueue_trial(point)
        for folder in getattr(self, "warm_start", []):  # not yet set while OptunaSearch's __init__ runs
            self.add_warm_start(folder)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        ot_trial = _ray.optuna_trials(self).get(trial_id)
        if ot_trial is not None and isinstance(ot_trial, optuna.Trial):
            with _if_still_open():
                ot_trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, self._raw(trial_id, result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = _ray.optuna_trials(self).get(trial_id)
        raw = getattr(self, "raw_metrics", [])  # a searcher pickled before it had them: none
        if ot_trial is not None and result and (self.constraints or raw):
            constraint = self._constraint(result)
            if constraint is not None:
                _if_still_open_call(ot_trial.set_constraint)(CONSTRAINT, constraint)
            result = self._raw(trial_id, result)
        if ot_trial is not None and isinstance(ot_trial, optuna.Trial):
            self._link(ot_trial, trial_id)

        super().on_trial_complete(trial_id, result, error)

    def _constraint(self, result: dict) -> float | None:
        """The trial's collapse constraint from its last result (> 0: infeasible), or None."""
        stopped = result.get(STATUS_KEY) in STOPPING
        if self.constraints and MARGIN_KEY in result:
            margin = float(result[MARGIN_KEY])
            margin = _BOUND if math.isnan(margin) else max(-_BOUND, min(_BOUND, margin))
            if FORECAST_KEY in result:  # stopped by the forecast: infeasible when P(collapse) > 1/2
                margin = max(margin, float(result[FORECAST_KEY]) - 0.5)
            # a collapsed or diverged trial is infeasible whatever its last margin says
            return max(margin, 1.0) if stopped and margin <= 0 else margin
        if getattr(self, "raw_metrics", []):  # the penalty leaves the value: the constraint carries the collapse
            return 1.0 if stopped else 0.0
        return None

    @staticmethod
    def _link(ot_trial: optuna.Trial, trial_id: str) -> None:
        """The trial's MLflow run as user attributes, while Optuna still lets them be set."""
        from collapsetune.tracking import run_of  # the driver's tracking callback made the run

        run = run_of(trial_id)
        if run is not None:
            with _if_still_open():
                ot_trial.set_user_attr(MLFLOW_RUN_ATTR, run[0])
                if run[1]:
                    ot_trial.set_user_attr(MLFLOW_LINK_ATTR, run[1])

    def _raw(self, trial_id: str, result: dict) -> dict:
        """The result with the objectives' real values in place of the penalised ones."""
        raw = getattr(self, "raw_metrics", [])
        if not raw:
            return result
        keys = [metric for metric, _mode in _ray.optuna_objectives(self)]
        last = getattr(self, "_last_raw", {}).setdefault(trial_id, [math.nan] * len(raw))
        out = dict(result)
        for i, (key, metric) in enumerate(zip(keys, raw)):
            value = result.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                last[i] = float(value)
            if key in out and math.isfinite(last[i]):
                out[key] = last[i]
        return out

    # -- pickling: Tune saves the searcher in tuner.pkl and in every experiment snapshot ----

    def __getstate__(self) -> dict:
        return self._portable()

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump(self._portable(), out)

    def _portable(self) -> dict:
        """The state, with a study kept in SQLite left as a reference: unpickling an RDB store
        would reopen the file where the results folder was at launch, creating it there if
        the folder has moved since."""
        state = dict(self.__dict__)
        if isinstance(state.get(_ray.OPTUNA_STORAGE), optuna.storages.RDBStorage):
            state[_ray.OPTUNA_STORAGE] = _IN_RESULTS
            state[_ray.OPTUNA_STUDY] = None
            state[_ray.OPTUNA_TRIALS] = {tid: t._trial_id for tid, t in _ray.optuna_trials(self).items()}
        return state

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        if _ray.optuna_storage(self) == _IN_RESULTS:
            if _restoring_from is None:
                raise RuntimeError("this searcher's Optuna study is in its results folder; restore it "
                                   "with `collapsetune resume RESULTS_DIR`")
            path = Path(_restoring_from, STUDY_FILE)
            try:
                if not path.exists():  # study_storage would make an empty one
                    raise FileNotFoundError(f"{path} is gone")
                _ray.set_optuna_storage(self, study_storage(str(path)))
                name, sampler = _ray.optuna_study_source(self)
                study = optuna.load_study(study_name=name, storage=_ray.optuna_storage(self), sampler=sampler,
                                          pruner=optuna.pruners.NopPruner())
                _ray.set_optuna_study(self, study)
                _ray.set_optuna_trials(self, {tid: optuna.Trial(study, ot_id)
                                              for tid, ot_id in _ray.optuna_trials(self).items()})
            except Exception as exc:  # noqa: BLE001 - truncated, not SQLite, deleted: rebuilt below
                self._rebuild(path, exc)
        study = _ray.optuna_study(self)
        if study is None:
            return
        known = {t.number for t in _ray.optuna_trials(self).values()}
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if trial.number not in known:  # asked after the snapshot we resume from: runs again
                study._storage.set_trial_user_attr(trial._trial_id, _LOST_ATTR, "lost in a driver crash; "
                                                   "the resumed sweep proposed it again")
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def _rebuild(self, path: Path, why: Exception) -> None:
        """A new study in `path` from what the results folder holds (`_add_trials`); a damaged
        file is kept beside it with the suffix `.unreadable`."""
        with contextlib.suppress(Exception):
            _ray.optuna_storage(self).engine.dispose()
        damaged = path.with_name(path.name + ".unreadable")
        if path.exists():
            path.replace(damaged)
        _ray.set_optuna_storage(self, study_storage(str(path)))
        name, sampler = _ray.optuna_study_source(self)
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the one line below says what was done
        try:
            _ray.set_optuna_study(self, optuna.create_study(
                study_name=name, storage=_ray.optuna_storage(self), sampler=sampler,
                pruner=optuna.pruners.NopPruner(),
                directions=["maximize" if m == "max" else "minimize" for _metric, m in _ray.optuna_objectives(self)]))
            counts = self._add_trials(path.parent)
        finally:
            optuna.logging.set_verbosity(verbosity)
        said = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items())) or "no trials"
        kept = f"; the damaged file is kept as {damaged.name}" if damaged.exists() else ""
        print(f"collapsetune: Optuna's study {terminal(path)} could not be read ({type(why).__name__}); rebuilt it from "
              f"the results folder ({said}){kept}")

    def _add_trials(self, results_dir: Path) -> dict[str, int]:
        """Each trial this searcher proposed, with its params: COMPLETE with its last
        objective value(s) and collapse constraint when the searcher had been told it ended
        (else FAIL or PRUNED, as it was told), RUNNING when it has yet to end (the resumed
        sweep tells it). The sweep's `points_to_evaluate` no trial has tried yet are queued
        again. Returns how many trials of each state were added."""
        told, study = _ray.optuna_told(self), _ray.optuna_study(self)
        counts: dict[str, int] = {}
        for tid, trial in self._stored_trials(results_dir, lambda t: t.trial_id in _ray.optuna_trials(self)):
            ot_trial = self._as_study_trial(trial, ended=tid in told, user_attrs={_TRIAL_ATTR: tid})
            if ot_trial is None:  # its own trials lie in its space; a hand-edited config may not
                continue
            study.add_trial(ot_trial)
            counts[ot_trial.state.name] = counts.get(ot_trial.state.name, 0) + 1
        for point in _ray.optuna_points(self):
            study.enqueue_trial(flatten_dict(dict(point), delimiter="/"), skip_if_exists=True)
        by_tid = {t.user_attrs[_TRIAL_ATTR]: t._trial_id for t in study.get_trials(deepcopy=False)
                  if _TRIAL_ATTR in t.user_attrs}
        _ray.set_optuna_trials(self, {tid: optuna.Trial(study, by_tid[tid]) for tid in _ray.optuna_trials(self)
                                      if tid in by_tid})
        for folder in getattr(self, "warm_start", []):  # the warm start's trials were in the lost study too
            self.add_warm_start(folder)
        return counts

    @staticmethod
    def _stored_trials(results_dir: Path | str, wanted: Any) -> Iterator[tuple[str, Any]]:
        """(trial id, Ray trial) for each trial in a results folder that `wanted(trial)` accepts."""
        from ray.tune import ExperimentAnalysis

        for trial in ExperimentAnalysis(str(results_dir)).trials:
            if wanted(trial):
                yield trial.trial_id, trial

    def _as_study_trial(self, trial: Any, ended: bool,
                        user_attrs: dict | None = None) -> optuna.trial.FrozenTrial | None:
        """A Tune trial of a results folder as this study holds it: its params, and once it
        `ended`, COMPLETE with its last objective value(s) (the real ones, with `raw_metrics`)
        and collapse constraint, as `on_trial_complete` records them (FAIL or PRUNED without
        a value); RUNNING while it has yet to end. None when a param lies outside this
        study's space (an earlier sweep's, for a warm start)."""
        flat = flatten_dict(trial.config, delimiter="/")
        params = {name: flat[name] for name in _ray.optuna_space(self) if name in flat}
        if not all(_inside(_ray.optuna_space(self)[name], value) for name, value in params.items()):
            return None
        last = trial.last_result or {}
        metrics = [metric for metric, _mode in _ray.optuna_objectives(self)]
        values = [last.get(m) for m in metrics]
        for i, metric in enumerate(getattr(self, "raw_metrics", [])[:len(values)]):
            raw = last.get(metric)
            if isinstance(raw, (int, float)) and math.isfinite(raw):
                values[i] = raw
        state, constraint = optuna.trial.TrialState.RUNNING, None
        if ended:
            whole = all(isinstance(v, (int, float)) and not math.isnan(v) for v in values)
            state = (optuna.trial.TrialState.COMPLETE if whole else optuna.trial.TrialState.FAIL
                     if trial.status == "ERROR" else optuna.trial.TrialState.PRUNED)
            constraint = self._constraint(last) if last else None
        complete = state == optuna.trial.TrialState.COMPLETE
        return optuna.trial.create_trial(
            state=state, values=[float(v) for v in values] if complete else None, params=params,
            distributions={name: _ray.optuna_space(self)[name] for name in params},
            constraints=None if constraint is None else {CONSTRAINT: constraint}, user_attrs=user_attrs)

    # -- warm start: an earlier sweep's ended trials in the study before the first proposal --

    def add_warm_start(self, results_dir: str) -> tuple[int, int, int]:
        """Adds each trial that ended in an earlier sweep's results folder (finished, or
        stopped: collapsed, diverged, forecast-stopped or cut) to the study as
        `_add_trials` would rebuild it: params, last real objective value(s) and the collapse
        constraint, so the sampler starts out knowing the collapse zones. A trial already added
        from that folder (a resumed sweep) is not added again; one whose params fall outside
        this sweep's space is skipped; a folder that cannot be read any more (deleted since the
        launch, and read again for a rebuilt study) adds nothing. Prints one line; returns
        (added, collapsed, skipped)."""
        done = {t.user_attrs.get(_WARM_ATTR, "") for t in _ray.optuna_study(self).get_trials(deepcopy=False)}
        if any(name.startswith(f"{results_dir}#") for name in done):
            return 0, 0, 0  # a resumed sweep (or a rebuilt study that kept them): its study holds them already
        try:
            trials = [(f"{results_dir}#{tid}", self._as_study_trial(trial, ended=True))
                      for tid, trial in self._stored_trials(results_dir, lambda t: t.status == "TERMINATED")]
        except Exception as exc:  # noqa: BLE001 - gone or damaged since `warm_start.check` read it at launch
            # (a study rebuilt on resume reads it again): the sweep goes on without those trials
            print(f"collapsetune: warm start: {terminal(results_dir)} could not be read ({type(exc).__name__}); "
                  "its trials are left out of the study")
            return 0, 0, 0
        added, collapsed, skipped = self.add_warm_trials([(name, t) for name, t in trials if t is not None])
        skipped += sum(t is None for _, t in trials)
        outside = f"; {skipped} outside this sweep's search space skipped" if skipped else ""
        print(f"collapsetune: warm start: {added} trials from {terminal(results_dir)} ({collapsed} collapsed){outside}")
        return added, collapsed, skipped

    def add_warm_trials(self, trials: Sequence[tuple[str, optuna.trial.FrozenTrial]]) -> tuple[int, int, int]:
        """Adds ended trials, each under a name (`folder#trial id`) that keeps it from being
        added twice; trials without a value, or with params outside this sweep's space, are
        skipped. Returns (added, collapsed, skipped). The replayed benchmark calls it with a
        replayed sweep's study trials, which are what a results folder gives."""
        have = {t.user_attrs.get(_WARM_ATTR) for t in _ray.optuna_study(self).get_trials(deepcopy=False)}
        added = collapsed = skipped = 0
        for name, trial in trials:
            if name in have or trial.state != optuna.trial.TrialState.COMPLETE:
                continue
            if set(trial.params) != set(_ray.optuna_space(self)) or not all(
                    _inside(_ray.optuna_space(self)[k], v) for k, v in trial.params.items()):
                skipped += 1
                continue
            constraint = trial.constraints.get(CONSTRAINT)
            _ray.optuna_study(self).add_trial(optuna.trial.create_trial(
                state=trial.state, values=trial.values, params=trial.params,
                distributions={k: _ray.optuna_space(self)[k] for k in trial.params},
                constraints=None if constraint is None else {CONSTRAINT: constraint},
                user_attrs={_WARM_ATTR: name}))
            added += 1
            collapsed += constraint is not None and constraint > 0
        return added, collapsed, skipped


@contextlib.contextmanager
def _if_still_open() -> Iterator[None]:
    """Skips a write to an Optuna trial that has already finished: after a resume, a trial the
    restored study closed (lost in the crash, marked FAIL) can still be reported on by Tune,
    and a link or a constraint on it must never end the sweep."""
    try:
        yield
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def _if_still_open_call(fn):
    def call(*args: Any) -> None:
        with _if_still_open():
            fn(*args)

    return call


_IN_RESULTS = "optuna.db in the results folder"  # a pickled searcher's reference to its study
_TRIAL_ATTR = "collapsetune.ray_trial_id"  # on a rebuilt study's trials: the Tune trial it was
_WARM_ATTR = "collapsetune.warm_start"  # on a warm start's trials: "<results folder>#<Tune trial id>"


def _inside(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether `value` lies in `dist` (a value of a choice it does not list is outside)."""
    try:
        return dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


__all__ = ["CONSTRAINT", "MLFLOW_LINK_ATTR", "MLFLOW_RUN_ATTR", "RAY_TRIAL_ATTR", "STUDY_FILE", "CollapseOptunaSearch",
           "check_writable", "make_sampler", "restoring_from", "study_storage"]

