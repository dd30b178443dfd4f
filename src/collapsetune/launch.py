"""From a `SweepSpec` to a running Tuner: Ray start-up, search, scheduling, stopping,
checkpointing, MLflow, and resuming a sweep from its results folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ray
import yaml
from ray import tune
from ray.tune import ExperimentAnalysis
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher

from collapsetune import preflight
from collapsetune._ray import fixes as _ray_fixes
from collapsetune.collapse import CollapseStopper
from collapsetune.credentials import client_uri, live_uri
from collapsetune.errors import RestoreFailed, SpecError
from collapsetune.names import LAUNCH_FILE, OBJECTIVE_KEY, SWEEP_FILE
from collapsetune.registry import has_state, resolve_trainable, wrapper_modules
from collapsetune.records import TrialRecords
from collapsetune.spec import MlflowSpec, SweepSpec, dump_spec, load_sweep, param_space
from collapsetune.storage import (driver_lock, experiment_states, lacks_space, location, new_folder, read_text,
                                  remove_if_unstarted, rename, write_text)
from collapsetune.trainable import WORST_OBJECTIVE, TrialPlan, make_trainable, objective_key

UNREADABLE_SUFFIX = ".unreadable"  # a damaged experiment snapshot, set aside by `resume --older-snapshot`


@dataclass(frozen=True)
class Outcome:
    """How a launch or resume ended, for the CLI's exit code."""

    path: str  # the results folder
    trials: int
    errored: int  # trials that ended in ERROR
    unfinished: int  # trials neither finished nor errored: the driver was interrupted
    full: bool = False  # the results folder's filesystem filled up: the sweep stopped there

    @property
    def interrupted(self) -> bool:
        return self.unfinished > 0


@contextmanager
def ray_session(spec: SweepSpec) -> Iterator[None]:
    """Connects to `spec.address`, or starts a private local Ray when it is None.

    `address="local"` makes Ray start a fresh instance even when `ray start` left an
    address file behind: a bare `ray.init()` would silently join (or try to reconnect to)
    that other cluster. Only a Ray this function started is shut down by it.
    """
    _ray_fixes.apply()
    if ray.is_initialized():
        yield  # the caller (a test, a notebook) owns this Ray
        return
    # A user's wrapper module and the Python code beside it reach every worker, on any node.
    modules = wrapper_modules(spec.trainable, spec.search_dirs)
    runtime_env = {"py_modules": [str(m) for m in modules]} if modules else None
    if modules:
        print(f"collapsetune: sending to every Ray worker: {', '.join(m.name for m in modules)} "
              "(the wrapper's module and the local modules it imports)")
    if spec.address is None:
        # A private local Ray keeps token authentication on (Ray 2.60's default); the warning
        # that Ray enabled it by default means nothing to a user who started no cluster.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    else:
        _ray_fixes.use_cluster_token(spec.address)  # RAY_AUTH_MODE as the cluster needs (token or not)
    ray.init(
        address=spec.address or "local",
        runtime_env=runtime_env,
        include_dashboard=False,
        log_to_driver=True,  # what a wrapper prints, and trials' tracebacks
        logging_level=logging.WARNING,
    )
    try:
        with _quiet_tune():
            yield
    finally:
        ray.shutdown()


@contextmanager
def _quiet_tune() -> Iterator[None]:
    """Ray Tune's own terminal output off while collapsetune prints its progress: its
    tables, its TensorBoard hint, and its TensorBoard logger (`build_tuner` names the JSON
    and CSV loggers that `report` and Ray's analysis read)."""
    quiet = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
    before = {k: os.environ.get(k) for k in quiet}
    os.environ.update(quiet)
    result_loggers = logging.getLogger("ray.tune.logger.logger")
    result_loggers.addFilter(_not_yet_synced)
    try:
        yield
    finally:
        result_loggers.removeFilter(_not_yet_synced)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _not_yet_synced(record: logging.LogRecord) -> bool:
    """Drops Ray's "Remote file not found: .../result.json" warnings. Its JSON and CSV loggers
    look for a trial's result file in the results folder whenever the trial resumes, before
    Ray has synced it there the first time; PBT pauses and resumes trials in turns, and each
    sweep printed a screenful. (Once a sync has happened that same restore drops the reports
    made since it, which is why `report` reads `TrialRecords`' file, not result.json.)"""
    return not record.getMessage().startswith("Remote file not found")


def check_resources(spec: SweepSpec) -> int:
    """Fails fast on a request no node can meet; returns how many trials fit at once."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}
    for key, amount in need.items():
        most = max((n.get(key, 0.0) for n in nodes), default=0.0)
        if amount > most:
            raise SpecError(
                f"each trial asks for {amount} {key}, but the largest node has {most}; "
                f"lower it or add such a node",
                file=str(spec.source) if spec.source else None,
                key=f"resources.{key.lower()}",
            )
    slots = sum(
        min(math.floor(n.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0) for n in nodes
    )
    return max(1, min(slots, spec.max_concurrent or slots))


def make_searcher(spec: SweepSpec, concurrency: int, experiment_path: str | None = None) -> Searcher:
    """The sweep's searcher. Optuna's study is kept in `<results>/optuna.db` when the results
    folder is local (so `resume` continues it and optuna-dashboard opens it), else in memory,
    saved with Tune's experiment snapshots."""
    points = [dict(p) for p in spec.search.points_to_evaluate]
    if spec.search.algorithm == "optuna":
        from collapsetune import warm_start
        from collapsetune.searchers import STUDY_FILE, CollapseOptunaSearch, make_sampler, study_storage

        objectives = spec.objective.all
        metrics = [objective_key(i) for i in range(1, len(objectives) + 1)]
        several = len(objectives) > 1
        local = experiment_path is not None and "://" not in experiment_path
        searcher = CollapseOptunaSearch(
            metric=metrics if several else None,  # one objective: Tune tells it `objective`
            mode=[o.mode for o in objectives] if several else None,
            sampler=make_sampler(spec.search.sampler, spec.search.seed),
            constraints=spec.search.constraints or several,  # several objectives: collapse as a constraint
            raw_metrics=[o.metric for o in objectives],  # the study holds real values; collapse: its constraint
            seed=spec.search.seed,
            points_to_evaluate=points or None,
            storage=study_storage(f"{experiment_path}/{STUDY_FILE}") if local else None,
            study_name=experiment_path.rstrip("/").rsplit("/", 1)[-1] if local else None,
            warm_start=warm_start.folders(spec),  # earlier sweeps' ended trials, added before the first proposal
        )
        # Without a limit Optuna would propose every trial before seeing any result.
        return ConcurrencyLimiter(searcher, max_concurrent=concurrency)
    # PBT needs its whole population at once (it runs them in turns when slots are fewer):
    # a limit would hand it only as many trials as run at a time.
    return BasicVariantGenerator(
        points_to_evaluate=points or None, random_state=spec.search.seed,
        max_concurrent=0 if spec.scheduler.makes_configs else concurrency,
    )


def build_tuner(spec: SweepSpec, experiment_path: str, concurrency: int, launch_id: str = "",
                progress: bool = False) -> tune.Tuner:
    """The Tuner for a fresh launch (see `_restore` for a restored one). `progress`: print a
    few lines per trial (`collapsetune.progress`) instead of Ray Tune's tables."""
    storage, experiment_name = experiment_path.rsplit("/", 1)
    checkpoints = has_state(wrapper_class(spec))
    # The result files `report`, `resume` and Ray's analysis read (Tune adds them itself
    # unless _quiet_tune turned its default loggers off; it then adds no TensorBoard logger).
    # TrialRecords: every report in order, which result.json is not under PBT (records.py).
    callbacks: list = [CSVLoggerCallback(), JsonLoggerCallback(), TrialRecords()]
    if spec.stop_sweep_when is not None:  # before MLflow's: its end reads the file this one writes
        from collapsetune.records import SweepStopRecord

        callbacks.append(SweepStopRecord(experiment_path))
    if progress:
        from collapsetune.progress import Progress

        callbacks.append(Progress(spec.objective.metric, [m for rule in spec.collapse for m in rule.metrics],
                                  list(spec.search_space), spec.max_iterations, cuts=spec.scheduler.cuts_trials,
                                  scheduler=spec.scheduler.type))
    if spec.mlflow.tracking_uri:
        from collapsetune.tracking import MlflowTracking

        callbacks.append(MlflowTracking(spec.mlflow.tracking_uri, spec.name, experiment_path, dump_spec(spec),
                                        launch_id=launch_id))
    return tune.Tuner(
        _trainable(spec),
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE_KEY,
            mode=spec.objective.mode,
            num_samples=spec.num_samples,
            search_alg=make_searcher(spec, concurrency, experiment_path),
            scheduler=spec.scheduler.build(spec),
            reuse_actors=True,  # CollapseTrainable.reset_config rebuilds the wrapper in place
        ),
        run_config=tune.RunConfig(
            name=experiment_name,
            storage_path=storage,
            # A scheduler that rescues collapsed trials (PBT) is consulted first: the stopper
            # leaves them to it.
            stop=make_stopper(spec),
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                # By count when the sweep asks for it; otherwise the trainable asks for one
                # every checkpoint_interval_s (CollapseTrainable), and Tune makes one at the end.
                checkpoint_frequency=(spec.checkpoint_frequency or 0) if checkpoints else 0,
                checkpoint_at_end=checkpoints,
                num_to_keep=spec.checkpoint_num_to_keep and max(spec.checkpoint_num_to_keep,
                                                                spec.scheduler.checkpoints_kept),
            ),
            # Files a wrapper writes (figures) reach the results folder, and from there MLflow.
            sync_config=tune.SyncConfig(sync_artifacts=True),
            verbose=0 if progress else 1,
        ),
    )


def make_stopper(spec: SweepSpec) -> CollapseStopper:
    """The sweep's stopper: `CollapseStopper`, or `ForecastStopper` with `collapse_forecast:`.
    A scheduler that rescues collapsed trials (PBT) is consulted first: the stopper leaves
    them to it (the spec refuses a forecast beside such a scheduler)."""
    forecast = spec.collapse_forecast
    breaker = _breaker(spec)
    if forecast is None:
        return CollapseStopper(max_iterations=spec.max_iterations, stop_collapsed=not spec.scheduler.rescues_collapsed,
                               breaker=breaker)
    from collapsetune.collapse import ForecastStopper
    from collapsetune.forecast import CollapseForecaster

    forecaster = CollapseForecaster(judged_at=max(rule.earliest_report for rule in spec.collapse),
                                    min_trials=forecast.min_trials, max_false_stop=forecast.max_false_stop,
                                    first_report=forecast.first_report)
    penalties = {objective_key(i): WORST_OBJECTIVE if o.mode == "min" else -WORST_OBJECTIVE
                 for i, o in enumerate(spec.objective.all, start=1)}
    return ForecastStopper(forecaster, max_iterations=spec.max_iterations, penalties=penalties, breaker=breaker)


def _breaker(spec: SweepSpec):
    """The `stop_sweep_when:` breaker the stopper consults, or None."""
    stop = spec.stop_sweep_when
    if stop is None:
        return None
    from collapsetune.collapse._breaker import SweepBreaker

    # A healthy trial counts once every rule has had its chance to fire, as a collapsed one does then.
    judged_at = min(max(rule.earliest_report for rule in spec.collapse), spec.max_iterations)
    return SweepBreaker(stop.collapsed_share_above, stop.after_trials, max_iterations=spec.max_iterations,
                        judged_at=judged_at)


def wrapper_class(spec: SweepSpec) -> type:
    """The sweep's wrapper class: the one `load_sweep` imported when it checked the sweep, or,
    for a spec built by hand, imported now."""
    return spec.wrapper or resolve_trainable(spec.trainable, spec.search_dirs)


def _trainable(spec: SweepSpec) -> type:
    """The sweep's CollapseTrainable subclass with its per-trial resources."""
    stateful = has_state(wrapper_class(spec))
    plan = TrialPlan(
        wrapper=spec.trainable,  # a worker imports it by name (the driver shipped its module)
        search_dirs=tuple(str(d) for d in spec.search_dirs),
        rules=spec.collapse,
        metric=spec.objective.metric,
        mode=spec.objective.mode,
        more=tuple((o.metric, o.mode) for o in spec.objective.also),
        checkpoint_interval_s=spec.checkpoint_interval_s if stateful and spec.checkpoint_frequency is None else None,
        report_timeout_s=spec.report_timeout_s,
        trial_timeout_s=spec.trial_timeout_s,
        mutable=spec.scheduler.mutable,
        grace_after_copy=spec.scheduler.grace_after_copy,
        # A trial the forecast stops reads as collapsed, but its trainable cannot tell that end
        # from an ASHA cut: it draws as it ends, so every collapsed trial has its pictures.
        draw_at_end=spec.draw_cut_trials or spec.collapse_forecast is not None,
    )
    trainable = make_trainable(plan, spec.trainable.rsplit(":", 1)[-1].rsplit(".", 1)[-1])
    return tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def _restore(spec: SweepSpec, experiment_path: str) -> tune.Tuner:
    """The Tuner of a stored sweep: finished trials kept, unfinished and errored ones resumed."""
    return tune.Tuner.restore(
        experiment_path, trainable=_trainable(spec), resume_unfinished=True, resume_errored=True
    )


def pinned(spec: SweepSpec, cwd: Path | None = None) -> SweepSpec:
    """The spec with a relative SQLite tracking store made absolute: it meant the launch
    directory, and the results folder must say so for `resume` and `report` run elsewhere."""
    uri = spec.mlflow.tracking_uri
    prefix = "sqlite:///"
    if uri and uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = (cwd or Path.cwd()) / uri[len(prefix):]
        return dataclasses.replace(spec, mlflow=MlflowSpec(prefix + str(path.resolve())))
    return spec


def run_sweep(spec: SweepSpec) -> Outcome:
    """Launches a sweep into a new results folder and runs it to the end."""
    spec = pinned(spec)
    experiment_path = new_folder(location(spec.storage), f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    launch_id = uuid.uuid4().hex
    try:
        with driver_lock(experiment_path):
            _write_launch_files(spec, experiment_path, launch_id)
            with ray_session(spec):
                concurrency = check_resources(spec)
                tuner = build_tuner(spec, experiment_path, concurrency, launch_id, progress=True)
                print(f"collapsetune: {spec.num_samples} trials, up to {concurrency} at a time -> {experiment_path}")
                if full := _fit(tuner, spec, experiment_path):
                    return full
                if _outcome(experiment_path, spec).interrupted:
                    return _outcome(experiment_path)
                _retry_stranded(spec, experiment_path)
    except BaseException:
        # Failed before its first trial: a folder that `resume` cannot continue and `report`
        # would call "0 trials" only misleads.
        with contextlib.suppress(Exception):
            if remove_if_unstarted(experiment_path):
                print(f"collapsetune: no trial started; removed the results folder {experiment_path}",
                      file=sys.stderr)
        raise
    return _outcome(experiment_path, spec)


def _fit(tuner: tune.Tuner, spec: SweepSpec, path: str) -> Outcome | None:
    """Runs the sweep; an Outcome when it stopped because its results folder filled up.

    Trials then fail writing their checkpoints and Ray its snapshots (fix 6 in `_ray_fixes`
    keeps the last whole one), or the driver itself fails on a half-written file. The open
    MLflow runs are left KILLED saying why, and `resume` continues every trial from its last
    checkpoint once there is space again.
    """
    try:
        tuner.fit()
    except Exception:
        if not lacks_space(path):
            raise
    else:
        outcome = _outcome(path)
        if not (outcome.errored or outcome.interrupted) or not lacks_space(path):
            return None
    try:
        trials = ExperimentAnalysis(path).trials
    except Exception:  # noqa: BLE001 - the disk filled before Ray's first snapshot
        trials = []
    if spec.mlflow.tracking_uri:
        from collapsetune.tracking import mark_interrupted

        mark_interrupted(client_uri(live_uri(spec.mlflow.tracking_uri)), spec.name, path, None,
                         reason=f"no space left on device in the results folder {path}; "
                                f"free space there, then `collapsetune resume {path}`")
    return Outcome(path, len(trials), sum(t.status == "ERROR" for t in trials),
                   sum(t.status not in ("TERMINATED", "ERROR") for t in trials), full=True)


def _retry_stranded(spec: SweepSpec, experiment_path: str) -> None:
    """Resumes trials that failed with retries left, as many rounds as `max_failures`.

    Tune retries a failed trial only while it is RUNNING: one whose actor was still
    starting (or being reused) on a node that died is marked ERROR at once, its retries
    unused (seen in tests/e2e/test_cluster.py when a worker node is killed).
    """
    for _ in range(max(0, spec.max_failures)):
        analysis = ExperimentAnalysis(experiment_path)
        stranded = [
            t for t in analysis.trials
            if t.status == "ERROR" and t.run_metadata.num_failures <= spec.max_failures
        ]
        if not stranded:
            return
        print(f"collapsetune: {len(stranded)} trial(s) failed before Tune could retry them; resuming")
        _restore(spec, experiment_path).fit()


def resume_sweep(results_dir: str, older_snapshot: bool = False) -> Outcome:
    """Finishes an interrupted sweep from its results folder; finished trials are kept.

    Checks first that Ray's experiment snapshot can be read (a full disk leaves it
    truncated): an unreadable one stops the resume with nothing changed, and names an older
    intact snapshot if there is one (`older_snapshot=True` resumes from it, keeping the
    damaged file beside it with the suffix `.unreadable`). When nothing can be resumed (no
    intact snapshot, or Ray cannot restore one), the sweep's open MLflow runs are ended
    KILLED with the reason: the sweep can never finish.
    """
    path = location(results_dir)
    resolved, launch = _launch_record(path)
    with driver_lock(path):
        _check_snapshot(path, older_snapshot, resolved, launch)
        from collapsetune.searchers import check_writable  # here: optuna loads only for a resume

        check_writable(path)  # Optuna's study: a damaged one is rebuilt on restore, a read-only one refused
        # A wrapper module named relative to the launch directory is found from there.
        cwd = Path(launch["cwd"])
        if cwd.is_dir():
            os.chdir(cwd)
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / SWEEP_FILE).write_text(resolved)
            spec = load_sweep(Path(scratch) / SWEEP_FILE, base_dir=Path(launch["base_dir"]))
        spec = dataclasses.replace(spec, source=Path(launch["source"]))
        preflight.check(spec)  # storage, MLflow store and Ray address answer, before Ray starts
        with ray_session(spec):
            try:
                full = _fit(_restore(spec, path), spec, path)
            except RestoreFailed as exc:
                raise RestoreFailed(f"{exc}; {_give_up(resolved, launch, path, str(exc))}") from exc
            if full:
                return full
            if _outcome(path, spec).interrupted:
                return _outcome(path)
            _retry_stranded(spec, path)
    return _outcome(path, spec)


def _check_snapshot(path: str, older_snapshot: bool, resolved: str, launch: dict) -> None:
    """Stops a resume whose experiment snapshot cannot be read, before the results folder
    changes; when no snapshot can be used, the sweep's open MLflow runs end KILLED."""
    states = experiment_states(path)  # (name, text) oldest first
    if not states:
        why = "Ray saved no experiment snapshot here (the driver died before its first one); nothing can be resumed"
        raise SpecError(f"{why}; {_give_up(resolved, launch, path, why)}; launch the sweep again with "
                        "`collapsetune run`", file=path)
    unreadable = [name for name, text in states if not _readable_state(text)]
    if not unreadable or states[-1][0] not in unreadable:
        return
    intact = [name for name, text in states if name not in unreadable]
    if older_snapshot and intact:
        for name in unreadable:
            if name > intact[-1]:
                rename(path, name, name + UNREADABLE_SUFFIX)
        print(f"collapsetune: resuming from the older snapshot {intact[-1]}; the damaged "
              f"{', '.join(n for n in unreadable if n > intact[-1])} is kept as *{UNREADABLE_SUFFIX}")
        return
    damaged = f"Ray's experiment snapshot {states[-1][0]} is unreadable (truncated: a full disk?)"
    if intact:
        raise SpecError(f"{damaged}; nothing was changed; an older intact snapshot exists ({intact[-1]}): "
                        f"`collapsetune resume {path} --older-snapshot` resumes from it (trials since then run "
                        "again from their checkpoints)", file=path)
    why = f"{damaged} and no older intact snapshot exists: the sweep cannot be resumed"
    raise SpecError(f"{why}; {_give_up(resolved, launch, path, why)}; launch the sweep again with "
                    "`collapsetune run`", file=path)


def _give_up(resolved: str, launch: dict, path: str, why: str) -> str:
    """Ends the open MLflow runs of a sweep that can never be resumed (parent and trials still
    RUNNING) as KILLED, `why` in their `collapsetune.stopped` tag; says what it did, for the
    error line. The results folder is left as it is."""
    from collapsetune.results import parse_sweep

    try:
        sweep = parse_sweep(resolved)
        if not sweep.tracking_uri:
            return "the results folder was left as it was"
        from collapsetune.tracking import STOPPED_TAG, mark_interrupted

        mark_interrupted(client_uri(live_uri(sweep.tracking_uri)), sweep.name, path, None,
                         reason=f"resume could not restore the sweep: {why}", only_open=True,
                         launch_id=str(launch.get("launch_id") or ""))
    except Exception as exc:  # noqa: BLE001 - the reason the resume failed comes first
        return (f"the results folder was left as it was; its MLflow runs could not be ended "
                f"({type(exc).__name__}: {exc})")
    return (f"the results folder was left as it was; the sweep's open MLflow runs were ended KILLED "
            f"(their {STOPPED_TAG} tag says why)")


def _readable_state(text: str) -> bool:
    """Whether an experiment_state-*.json is whole: parsed as JSON only, never unpickled."""
    try:
        state = json.loads(text)
        trials = state["trial_data"]
        return isinstance(state.get("runner_data"), dict) and all(
            isinstance(json.loads(trial)["trial_id"], str) for trial, _meta in trials)
    except (ValueError, KeyError, TypeError):
        return False


def _outcome(path: str, spec: SweepSpec | None = None) -> Outcome:
    """How the sweep in `path` stands; with `spec`, an interrupted sweep's MLflow runs are
    marked KILLED (Tune ends them as if they had completed)."""
    trials = ExperimentAnalysis(path).trials
    unfinished = [t.trial_id for t in trials if t.status not in ("TERMINATED", "ERROR")]
    if unfinished and spec is not None and spec.mlflow.tracking_uri:
        from collapsetune.tracking import mark_interrupted

        mark_interrupted(client_uri(live_uri(spec.mlflow.tracking_uri)), spec.name, path, unfinished)
    errored = sum(1 for t in trials if t.status == "ERROR")
    return Outcome(path, len(trials), errored, len(unfinished))


def _write_launch_files(spec: SweepSpec, experiment_path: str, launch_id: str) -> None:
    resolved = dump_spec(spec)
    write_text(experiment_path, SWEEP_FILE, resolved)
    # `sweep`: what this launch ran, so `resume` can refuse a sweep.yaml edited since.
    launch = {"source": str(spec.source), "base_dir": str(spec.base_dir), "cwd": os.getcwd(),
              "launch_id": launch_id, "host": socket.gethostname(), "sweep": resolved}
    write_text(experiment_path, LAUNCH_FILE, json.dumps(launch, indent=2))


def _launch_record(path: str) -> tuple[str, dict]:
    """The resolved sweep and the launch facts of a results folder, checked before `resume`
    touches anything: both files readable (a URI's filesystem answering within seconds), the
    launch facts whole, and sweep.yaml still what the launch ran."""
    if "://" in path:
        try:
            preflight.check_storage(path)
        except SpecError as exc:
            raise SpecError(exc.message, file=path) from None
    try:
        resolved = read_text(path, SWEEP_FILE)
    except UnicodeDecodeError:
        raise SpecError("is not UTF-8 text; expected the resolved sweep `collapsetune run` wrote",
                        file=f"{path}/{SWEEP_FILE}") from None
    where = f"{path}/{LAUNCH_FILE}"
    try:
        launch = json.loads(read_text(path, LAUNCH_FILE))
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        raise SpecError("is not JSON; expected the launch facts `collapsetune run` wrote "
                        "(source, base_dir, cwd): this folder cannot be resumed", file=where) from None
    facts = launch if isinstance(launch, dict) else {}
    missing = [k for k in ("source", "base_dir", "cwd") if not isinstance(facts.get(k), str)]
    if missing:
        raise SpecError(f"lacks {', '.join(missing)} (expected strings, as `collapsetune run` writes them): "
                        "this folder cannot be resumed", file=where)
    if isinstance(launch.get("sweep"), str) and (changed := _changed_keys(launch["sweep"], resolved)):
        raise SpecError(f"was changed since the launch ({', '.join(changed)} differ); resume runs a sweep as it "
                        f"was launched: put the file back ({LAUNCH_FILE} keeps the launch's copy under \"sweep\") "
                        "or launch the changed sweep with `collapsetune run`", file=f"{path}/{SWEEP_FILE}")
    return resolved, launch


def _changed_keys(launched: str, now: str) -> list[str]:
    """The dotted keys whose values differ between two sweep YAML texts (values never shown)."""
    try:
        before, after = yaml.safe_load(launched), yaml.safe_load(now)
    except yaml.YAMLError:
        return ["the whole file (it is no longer YAML)"]

    def walk(a: object, b: object, key: str) -> Iterator[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in [*a, *(k for k in b if k not in a)]:
                yield from walk(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{key}.{k}" if key else str(k))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                yield from walk(x, y, f"{key}[{i}]")
        elif a != b:
            yield key or "the whole file"

    return list(walk(before, after, ""))


_ABSENT = object()  # a key one side of _changed_keys lacks
