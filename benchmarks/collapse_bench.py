"""The replayed collapse benchmark (issue 23): sweeps of 64-1,024 trials in simulated time,
through the real searcher, schedulers, stopper and collapse rules, over tabulated curves.

A table (benchmarks/curve_tables.py) holds every report of N configurations of a model, each
trained to the full horizon. A replay runs one sweep against it the way Ray Tune's
TuneController runs a real one, with W simulated workers and simulated time:

- the searcher is the sweep's own (`launch.make_searcher`: CollapseOptunaSearch behind Ray's
  ConcurrencyLimiter, TPE seeded with the replay's seed, the sweep's points_to_evaluate);
- the scheduler is the sweep's own (`Scheduler.build`: CollapseASHA, or Ray's FIFOScheduler),
  or Ray's ASHAScheduler for the plain baselines; real Ray `Trial` objects go through its hooks;
- each report's result is what `CollapseTrainable` would return: the tabulated metrics run
  through the sweep's rules by `TrialPlan.judge`, the function the trainable itself calls;
- results are processed in TuneController's order (`_process_trial_result`, `stop_trial`):
  the stopper first, then the scheduler; the searcher sees every result the trial is not
  stopped on; on a stop, the scheduler's and then the searcher's `on_trial_complete`;
- a report takes the CPU-seconds the table measured for it, on one worker; a freed worker
  asks the searcher for the next trial at once. Simulated wall time is the makespan.

The surrogate: a configuration the searcher proposes is served by the nearest tabulated
row in normalised knob space (log scale for loguniform, linear for uniform and randint, 0/1
per differing choice), its distance recorded. `--surrogate-check` prints its leave-one-out
error on the table (how far the final objective and the ending of a held-out row are from
its nearest neighbour's); docs/benchmarks.md gives it. `--weighted` weighs each knob in that
distance by a weight fitted to the table (`Table.fit_weights`: the knobs that move the
objective or the ending pick the row, e.g. the LM's learning rate); `--surrogate-check` then
also prints the held-out error on random halves for both distances. Its replays are keyed
apart and need their own `--out` (docs/benchmarks.md, section 20).

Methods (METHODS): `fifo`, `asha` (plain ASHA on the raw objective), `asha+function_stopper`
(plain ASHA plus a Ray FunctionStopper applying the shipped thresholds after the same grace
with the same patience: what a Ray Tune user writes instead), `optuna_pruner` (an Optuna study
with TPE, SuccessiveHalvingPruner on the raw objective and ThresholdPruner on each collapse
metric), `collapsetune` (the shipped sweep as written), its variants `eager` (patience 1),
`unless_improving` (the shipped thresholds waiting while the metric improves) and
`constraints` (search.constraints: true), `forecast` (collapse_forecast: the rules plus a
stop when a model fitted on the sweep's judged trials is confident; collapsetune.forecast), `warm_start`
(search.warm_start: the study starts with the ended trials of a 64-trial `collapsetune` replay
with seed + 1000, whose CPU is not counted), `ties_kept` (CollapseASHA with cut_ties off: Ray's
own rule, a trial tied with a rung's cutoff always goes on), and `oracle` (FIFO that stops every trial that ends
collapsed at the onset of that collapse, and nothing else).

Truth (the same for every method): a report is *healthy* when the shipped rules, run over
the row's reports up to it, say healthy; a trial *ends collapsed* when a shipped rule's
conditions hold on its last `patience` reports (compare.onset); a stop is a *false kill*
when a collapse mechanism (rules, stopper, threshold pruner) ended a trial whose full row
does not end collapsed.

Run:  python benchmarks/collapse_bench.py --quick                  (1 model, 64 trials, 3 seeds)
      python benchmarks/collapse_bench.py --models mop_clip --trials 64 256 1024 --workers 8 64 --seeds 20 --jobs 2
Writes benchmarks/results/collapse_bench.json (cells already there are kept: a long run
resumes) and docs/plots/collapse_bench_<model>.png. `--jobs N` replays in N processes (the
same figures: a replay depends on its method and seed alone); Optuna's study.ask (TPE) is most
of a replay's time (84-90% at 1,024 trials), so processes are what makes a run shorter.
"""

from __future__ import annotations

import argparse
import copy
import functools
import heapq
import json
import logging
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare import onset  # noqa: E402  (benchmarks/ is not a package)
from _sweep_key import sweep_key  # noqa: E402
from _threshold_stopper import crossed, threshold_stopper  # noqa: E402
from curve_tables import TABLES, TABLES_DIR, load_spec, read_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "collapse_bench.json"
# The shipped sweeps' points_to_evaluate hold the seeds' known fixes, which every method
# would then run first and reach FIFO's best with at once; a benchmark of how fast search and
# stopping find a good healthy model leaves them out (`--with-points` keeps them).
WITH_POINTS = False
PLOTTED = (256, 8)  # the cell whose anytime curves docs/plots/collapse_bench_<model>.png shows (issue 24's goals)
_SCALED = ("loguniform", "uniform", "randint")  # knobs compared by distance; the others by equality
# How close to FIFO's final best healthy objective counts as reaching it, per objective.
EPSILON = {"val/accuracy": 0.005, "val/loss": 0.02, "val/cider_d": 0.02}


# -- the table and its surrogate ---------------------------------------------------------


@dataclass
class Row:
    index: int
    config: dict[str, Any]
    reports: list[dict[str, Any]]  # metrics per report, numbers only
    cpu: list[float]  # CPU-seconds per report
    healthy: list[bool]  # the shipped rules say healthy on this report
    ends_collapsed: bool  # a shipped rule's conditions hold on its last `patience` reports
    onset: int | None  # 1-based report where that lasting collapse began


def sweep_sha(model: str) -> str:
    """The content key of a model's shipped sweep (file and included search space), which keys
    its cached replays."""
    return sweep_key(ROOT / TABLES[model].sweep)


class Table:
    """A model's tabulated curves, and the nearest-row surrogate for a proposed config."""

    def __init__(self, model: str, path: Path | None = None, weighted: bool = False) -> None:
        self.model = model
        self.weighted = weighted
        self.path = path or TABLES_DIR / f"{model}.jsonl"
        header, rows = read_table(self.path)
        if header.get("format") != 1:
            raise SystemExit(f"{self.path}: not a curve table of format 1; regenerate it with curve_tables.py")
        self.header = header
        self.spec = load_spec(model)
        # Cached replays are keyed by the shipped sweep file's content: a changed sweep (rules,
        # scheduler, searcher) makes every figure of that model new.
        self.sweep_sha = sweep_sha(model)
        # The truth is judged by the rules the table was made with (its header), so editing a
        # sweep file's rules changes the methods replayed, never what counts as collapsed.
        from collapsetune.collapse import Rule

        self.rules = tuple(Rule.from_yaml(r) for r in header["collapse"])
        self.metric, self.mode = self.spec.objective.metric, self.spec.objective.mode
        self.horizon = self.spec.max_iterations
        self.rows = [self._row(r) for r in sorted(rows, key=lambda r: r["i"])
                     if len(r["reports"]) == self.horizon]
        if not self.rows:
            raise SystemExit(f"{self.path}: no complete rows yet")
        self.dims = {k: d for k, d in self.spec.search_space.items() if d.kind != "const"}
        self._vectors = [self._vector(r.config) for r in self.rows]
        # The rows' vectors by dimension, for `nearest`: numbers in one array, choices as objects.
        self._position = {r.index: p for p, r in enumerate(self.rows)}
        kinds = [d.kind in _SCALED for d in self.dims.values()]
        self._numeric = np.array([[v if k else 0.0 for v, k in zip(vec, kinds)] for vec in self._vectors], dtype=float)
        self._choices = [None if k else [vec[i] for vec in self._vectors] for i, k in enumerate(kinds)]
        self._unequal: list[dict] = [{} for _ in kinds]  # per choice knob: value -> 1.0 where a row differs
        # Each knob's weight in the distance: all 1 (the nearest row by every knob alike), or
        # with `weighted` fitted to the table (`fit_weights`), so the knobs that move the
        # objective or the ending (the LM's learning rate) pick the row.
        self.weights = [1.0] * len(self.dims)
        if weighted:
            self.weights = self.fit_weights()

    def _row(self, raw: dict) -> Row:
        reports = [{k: float(v) for k, v in r.items() if k not in ("status", "time/cpu_s")} for r in raw["reports"]]
        began = onset(self.rules, reports)
        return Row(raw["i"], raw["config"], reports, [float(r["time/cpu_s"]) for r in raw["reports"]],
                   [r["status"] == "healthy" for r in raw["reports"]], began is not None, began)

    def _vector(self, config: dict) -> list[float]:
        out = []
        for key, dim in self.dims.items():
            value = config.get(key)
            lo_hi = dim.args
            if dim.kind == "loguniform":
                out.append((math.log(value) - math.log(lo_hi[0])) / (math.log(lo_hi[1]) - math.log(lo_hi[0])))
            elif dim.kind in ("uniform", "randint"):
                out.append((value - lo_hi[0]) / (lo_hi[1] - lo_hi[0]))
            else:
                out.append(value)  # compared by equality
        return out

    def nearest(self, config: dict, exclude: int | None = None) -> tuple[Row, float]:
        """The tabulated row closest to `config`, and its distance.

        numpy narrows the rows to those within a hair of the closest distance (its sums may
        differ from Python's in the last bit); `_closest`, the plain loop, then picks among
        them, so the row and distance are the loop's own over every row (a 1,024-trial
        replay asks 1,024 times)."""
        want = self._vector(config)
        d = np.zeros(len(self.rows))
        for i, (dim, a) in enumerate(zip(self.dims.values(), want)):
            if dim.kind in _SCALED:
                d += self.weights[i] * (self._numeric[:, i] - a) ** 2
            else:
                d += self.weights[i] * self._differs(i, a)
        if exclude is not None:
            d[self._position[exclude]] = np.inf
        low = d.min()
        return self._closest(want, np.flatnonzero(d <= low + 1e-9 * low + 1e-300), exclude)

    def _differs(self, i: int, value: Any) -> np.ndarray:
        """1.0 for each row whose choice knob `i` is not `value`, else 0.0 (a cache per value)."""
        try:
            return self._unequal[i][value]
        except KeyError:
            pass
        except TypeError:  # an unhashable choice (a list): compared afresh
            return np.array([b != value for b in self._choices[i]], dtype=float)
        out = self._unequal[i][value] = np.array([b != value for b in self._choices[i]], dtype=float)
        return out

    def _closest(self, want: list, positions, exclude: int | None = None) -> tuple[Row, float]:
        """The first row, among those at `positions` (in table order), nearest to the vector `want`."""
        best, best_d = None, math.inf
        for p in positions:
            row, vec = self.rows[p], self._vectors[p]
            if row.index == exclude:
                continue
            d = 0.0
            for dim, w, a, b in zip(self.dims.values(), self.weights, want, vec):
                d += w * ((a - b) ** 2 if dim.kind in _SCALED else float(a != b))
            if d < best_d:
                best, best_d = row, d
        return best, math.sqrt(best_d)

    def final(self, row: Row) -> float:
        return row.reports[-1][self.metric]

    @functools.cached_property
    def _components(self) -> list[np.ndarray]:
        """Per knob, every row's unweighted term to every row (squared difference, or 1 where a
        choice differs): built once, since fitting weights sums them ~100 times."""
        out = []
        for i, dim in enumerate(self.dims.values()):
            if dim.kind in _SCALED:
                x = self._numeric[:, i]
                out.append((x[:, None] - x[None, :]) ** 2)
            else:
                c = self._choices[i]
                out.append(np.array([[a != b for b in c] for a in c], dtype=float))
        return out

    @functools.cached_property
    def _endings(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row's final objective, and whether it ends collapsed."""
        return (np.array([self.final(r) for r in self.rows]), np.array([r.ends_collapsed for r in self.rows]))

    def _distances(self, weights: list[float]) -> np.ndarray:
        """Every row's weighted squared distance to every row (the diagonal: inf)."""
        d = np.zeros((len(self.rows), len(self.rows)))
        for w, term in zip(weights, self._components):
            d += w * term
        np.fill_diagonal(d, np.inf)
        return d

    def _miss(self, weights: list[float], train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
        """(median |final objective - its nearest train row's|, share with the same ending) over `test`."""
        d = self._distances(weights)[np.ix_(test, train)]
        near = train[d.argmin(axis=1)]
        final, ends = self._endings
        return float(np.median(np.abs(final[test] - final[near]))), float((ends[test] == ends[near]).mean())

    def fit_weights(self, rows: np.ndarray | None = None) -> list[float]:
        """Per-knob weights by coordinate search (two passes over 0, 0.1, 0.3, 1, 3, 10), each
        kept when it lowers leave-one-out error / spread + share of rows whose nearest other
        row ends otherwise. `rows`: fit on those positions only (for a held-out check)."""
        rows = np.arange(len(self.rows)) if rows is None else rows
        spread = statistics.pstdev(self.final(self.rows[p]) for p in rows) or 1.0

        def loss(w: list[float]) -> float:
            err, same = self._miss(w, rows, rows)
            return err / spread + (1.0 - same)

        weights = [1.0] * len(self.dims)
        best = loss(weights)
        for _ in range(2):
            for i in range(len(weights)):
                for value in (0.0, 0.1, 0.3, 1.0, 3.0, 10.0):
                    trial = [*weights[:i], value, *weights[i + 1:]]
                    if sum(trial) > 0 and (got := loss(trial)) < best - 1e-12:
                        weights, best = trial, got
        return weights

    def held_out_error(self, repeats: int = 5) -> dict:
        """Held-out check of the weighting: weights fitted on a random half of the rows, each
        row of the other half served its nearest row of the first; both ways, over `repeats`
        random halvings (seeded), means of the medians, for the unweighted and fitted distance.
        Random halves, not alternate rows: a Sobol table pairs rows (the LM's row i and i+124
        share every choice), and alternate rows split the pairs in a pattern."""
        rng = np.random.default_rng(0)
        splits = []
        for _ in range(repeats):
            order = rng.permutation(len(self.rows))
            half = len(order) // 2
            splits += [(order[:half], order[half:]), (order[half:], order[:half])]
        out = {}
        for name in ("unweighted", "weighted"):
            errs, sames = [], []
            for train, test in splits:
                w = self.fit_weights(train) if name == "weighted" else [1.0] * len(self.dims)
                err, same = self._miss(w, train, test)
                errs.append(err)
                sames.append(same)
            out[name] = {"median_abs_error": statistics.mean(errs), "same_ending_share": statistics.mean(sames)}
        return out

    def surrogate_error(self) -> dict:
        """Leave-one-out: each row's final objective and ending against its nearest other row's."""
        errors, same_end = [], 0
        for row in self.rows:  # (with `weighted`, its weights were fitted on every row: see held_out_error)
            other, _ = self.nearest(row.config, exclude=row.index)
            errors.append(abs(self.final(row) - self.final(other)))
            same_end += row.ends_collapsed == other.ends_collapsed
        spread = statistics.pstdev(self.final(r) for r in self.rows)
        return {"rows": len(self.rows), "median_abs_error": statistics.median(errors),
                "objective_std_across_rows": spread, "same_ending_share": same_end / len(self.rows),
                "weights": dict(zip(self.dims, self.weights))}


# -- methods -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    name: str
    overrides: tuple[str, ...] = ()  # `--set` strings on the shipped sweep
    # sweep: the sweep's own (CollapseASHA / FIFO); asha: Ray's plain ASHAScheduler;
    # penalised_rungs: CollapseASHA as it was before issue 29 (collapsed trials' rung records
    # rewritten to the penalty instead of removed)
    scheduler: str = "sweep"
    # collapse: CollapseStopper; forecast: the sweep's ForecastStopper (collapse_forecast:);
    # function: the five-line FunctionStopper; oracle
    stopper: str = "collapse"
    optuna_only: bool = False  # optuna_pruner: an Optuna study with its own pruners, no Ray
    judged: bool = True  # the pick is among trials the method's own rules call healthy
    warm_from: int = 0  # search.warm_start: the study starts with a `collapsetune` replay of this many trials


PLAIN = ("collapse=[]",)
WARM_SEED = 1000  # the warm start's earlier sweep: seed + this, so it never shares the replay's seed
METHODS = {m.name: m for m in [
    Method("fifo", PLAIN + ("scheduler={type: fifo}",), stopper="none", judged=False),
    Method("asha", PLAIN, scheduler="asha", stopper="none", judged=False),
    Method("asha+function_stopper", PLAIN, scheduler="asha", stopper="function", judged=False),
    Method("optuna_pruner", PLAIN, optuna_only=True, judged=False),
    Method("collapsetune"),
    Method("penalised_rungs", scheduler="penalised_rungs"),
    Method("eager", ("__eager__",)),
    Method("unless_improving", ("__unless_improving__",)),
    Method("constraints", ("search.constraints=true",)),
    Method("gp_constraints", ("search.sampler=gp", "search.constraints=true")),
    Method("forecast", ("collapse_forecast={min_trials: 20, max_false_stop: 0.05}",), stopper="forecast"),
    Method("warm_start", warm_from=64),
    Method("ties_kept", ("scheduler.cut_ties=false",)),
    Method("oracle", PLAIN + ("scheduler={type: fifo}",), stopper="oracle", judged=False),
]}
# How much a collapse metric must move back, over 3 reports, for `unless_improving` to wait.
IMPROVING_BY = {"collapse/unique_tokens": 3, "collapse/subprompt_cos_max": 0.01,
                "collapse/assign_max_share": 0.01, "collapse/unique_captions": 0.01}


def method_spec(table: Table, method: Method, trials: int, seed: int, extra: tuple[str, ...] = ()):
    """The sweep a method runs: the table's sweep with the method's changes (and `extra`)."""
    from collapsetune.spec import load_sweep

    sets = [*TABLES[table.model].overrides, f"num_samples={trials}", f"search.seed={seed}"]
    if not WITH_POINTS:
        sets.append("search.points_to_evaluate=[]")
    sets += extra
    for o in method.overrides:
        if o == "__eager__":
            sets += [f"collapse.{i}.patience=1" for i in range(len(table.rules))]
        elif o == "__unless_improving__":
            for i, rule in enumerate(table.rules):
                by = IMPROVING_BY[rule.conditions[0].metric]
                sets.append(f"collapse.{i}.unless_improving={{by: {by}, over: 3}}")
        else:
            sets.append(o)
    return load_sweep(ROOT / TABLES[table.model].sweep, sets)


def _function_stopper(table: Table):
    """The few lines a Ray Tune user writes instead: each shipped threshold, after its grace,
    held for its patience."""
    from ray.tune.stopper import FunctionStopper

    return FunctionStopper(threshold_stopper([
        (lambda result, c=c, grace=r.grace: result["training_iteration"] > grace and crossed(c, result), r.patience)
        for r in table.rules for c in r.conditions]))


# -- one replayed sweep ------------------------------------------------------------------


@dataclass
class TrialRun:
    trial_id: str
    row: Row
    distance: float
    reports: int = 0
    status: str = ""  # the method's own verdict on its last report ("" for plain methods)
    objective: float = math.nan  # raw objective on its last report
    stopped_by_collapse: bool = False


@dataclass
class Run:
    trials: list[TrialRun] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    study: Any = None  # the searcher's Optuna study, where it has one
    curve: list[tuple[float, float]] = field(default_factory=list)  # (CPU-s so far, best healthy objective)


def _better(mode: str, a: float, b: float) -> bool:
    return a > b if mode == "max" else a < b


class _Clock:
    """Workers and simulated time: a heap of (time a report ends, order, trial)."""

    def __init__(self) -> None:
        self.heap: list = []
        self.n = 0
        self.now = 0.0

    def start(self, t: TrialRun) -> None:
        self.n += 1
        heapq.heappush(self.heap, (self.now + t.row.cpu[t.reports], self.n, t))

    def next(self) -> TrialRun:
        self.now, _, t = heapq.heappop(self.heap)
        return t


def replay(table: Table, method: Method, trials: int, workers: int, seed: int, extra: tuple[str, ...] = ()) -> Run:
    """One sweep of `trials` trials on `workers` simulated workers; `extra`: more `--set`
    strings for the sweep (the faithfulness test fixes its configurations so)."""
    if method.optuna_only:
        return _replay_optuna(table, method, trials, workers, seed)
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler
    from ray.tune.stopper import FunctionStopper

    from collapsetune.collapse import CollapseStopper
    from collapsetune.launch import make_searcher, make_stopper
    from collapsetune.spec import param_space
    from collapsetune.trainable import TrialPlan

    _PenalisedRungsASHA = _penalised_rungs_asha()
    spec = method_spec(table, method, trials, seed, extra)
    searcher = make_searcher(spec, workers)
    searcher.set_search_properties("objective", spec.objective.mode, param_space(spec))
    if method.warm_from:
        # search.warm_start from an earlier sweep with another seed (its CPU is not counted: it
        # was spent before). The study gets that sweep's ended trials as a results folder gives
        # them (`add_warm_start`): params, real objective values, collapse constraint.
        prior = replay(table, METHODS["collapsetune"], method.warm_from, workers, seed + WARM_SEED)
        searcher.searcher.add_warm_trials([(f"replay-{seed + WARM_SEED}#{t.number}", t)
                                           for t in prior.study.get_trials(deepcopy=False)])
    if method.scheduler in ("asha", "penalised_rungs"):
        s = spec.scheduler
        kind = ASHAScheduler if method.scheduler == "asha" else _PenalisedRungsASHA
        scheduler = kind(time_attr="training_iteration", max_t=spec.max_iterations,
                         grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    else:
        scheduler = spec.scheduler.build(spec)
    scheduler.set_search_properties("objective", spec.objective.mode)
    if method.stopper == "collapse":
        stopper = CollapseStopper(max_iterations=spec.max_iterations)
    elif method.stopper == "forecast":
        stopper = make_stopper(spec)
    elif method.stopper == "function":
        stopper = _function_stopper(table)
    elif method.stopper == "oracle":
        stopper = FunctionStopper(lambda tid, r: bool(r.get("oracle/stop")))
    else:
        stopper = FunctionStopper(lambda tid, r: False)
    plan = TrialPlan(wrapper=spec.trainable, search_dirs=(), rules=spec.collapse, metric=spec.objective.metric,
                     mode=spec.objective.mode)
    run, clock = Run(), _Clock()
    state: dict[str, tuple[Any, Any]] = {}  # trial id -> (Ray Trial, the trial's rules)
    best, started = None, 0
    while True:
        while len(clock.heap) < workers and started < trials:
            trial_id = f"{seed:03d}_{started:05d}"
            config = searcher.suggest(trial_id)
            if config is None:
                break
            started += 1
            row, distance = table.nearest(config)
            t = TrialRun(trial_id, row, distance)
            trial = Trial("__fake", trial_id=trial_id, config=config, stub=True)
            trial.set_status(Trial.RUNNING)
            scheduler.on_trial_add(None, trial)
            state[trial_id] = (trial, plan.monitor())
            run.trials.append(t)
            clock.start(t)
        if not clock.heap:
            break
        t = clock.next()
        trial, monitor = state[t.trial_id]
        k = t.reports  # 0-based index of the report arriving now
        cost = t.row.cpu[k]
        run.cpu_s += cost
        t.reports = k + 1
        result = plan.judge(monitor, dict(t.row.reports[k]))
        # Tune's Trainable adds the trial's config to every result (the forecast reads knobs there).
        result.update(training_iteration=k + 1, trial_id=t.trial_id, time_this_iter_s=cost, done=False,
                      config=trial.config)
        if method.stopper == "oracle":
            stop_now = t.row.onset is not None and k + 1 >= t.row.onset
            result["oracle/stop"] = stop_now
            if stop_now:  # what the trainable reports when a rule fires: the searcher learns it too
                result.update({"objective": plan.worst(), "collapse.status": "collapsed", "collapse/margin": 1.0})
        t.objective = result[spec.objective.metric]
        t.status = result["collapse.status"] if spec.collapse else ""
        if t.row.healthy[k] and (best is None or _better(table.mode, t.objective, best)):
            best = t.objective
            run.curve.append((run.cpu_s, best))  # a step function: only where it improves
        # TuneController._process_trial_result: the stopper (and the trial's own stop
        # criterion, here `max_iterations`), else the scheduler.
        stopped_by_stopper = stopper(t.trial_id, result)
        if stopped_by_stopper or k + 1 >= spec.max_iterations:
            decision = TrialScheduler.STOP
        else:
            decision = scheduler.on_trial_result(None, trial, result)
        if decision == TrialScheduler.STOP:
            t.stopped_by_collapse = stopped_by_stopper and k + 1 < spec.max_iterations
            scheduler.on_trial_complete(None, trial, result)  # TuneController.stop_trial
            searcher.on_trial_complete(t.trial_id, result=result)
            trial.set_status(Trial.TERMINATED)
        elif decision == TrialScheduler.CONTINUE:
            searcher.on_trial_result(t.trial_id, result)
            clock.start(t)
        else:
            raise RuntimeError(f"the replay runs no scheduler that pauses trials, got {decision!r}")
    run.wall_s = clock.now
    from collapsetune import _ray

    run.study = _ray.optuna_study(searcher.searcher) if hasattr(searcher, "searcher") else None
    return run


def _penalised_rungs_asha():
    from collapsetune import _ray
    from collapsetune.decisions import stopping
    from collapsetune.schedulers import CollapseASHA

    class PenalisedRungsASHA(CollapseASHA):
        """CollapseASHA before issue 29: a collapsed trial's rung records become the penalty."""

        def _forget_if_stopping(self, bracket, trial_id, result):
            if bracket is None or not stopping(result):
                return
            for _milestone, recorded in _ray.bracket_rungs(bracket):
                if trial_id in recorded:
                    recorded[trial_id] = _ray.asha_score(self, result)

    return PenalisedRungsASHA


class _EitherPruner:
    """Optuna's SuccessiveHalvingPruner on the objective, or a ThresholdPruner per collapse
    metric on that metric's values (kept in the trial's user attributes)."""

    def __init__(self, halving, thresholds: list[tuple[str, Any]]) -> None:
        self.halving, self.thresholds = halving, thresholds

    def prune(self, study, trial) -> bool:
        for metric, pruner in self.thresholds:
            shadow = copy.copy(trial)
            shadow.intermediate_values = {int(k): v for k, v in trial.user_attrs.get(metric, {}).items()}
            if pruner.prune(study, shadow):
                _mark_threshold_prune(study, trial)
                return True
        return self.halving.prune(study, trial)


def _mark_threshold_prune(study, trial) -> None:
    """Says on the trial that a collapse threshold pruned it, not the halving."""
    study._storage.set_trial_user_attr(trial._trial_id, "pruned_by_threshold", True)


def _replay_optuna(table: Table, method: Method, trials: int, workers: int, seed: int) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = method_spec(table, method, trials, seed)
    dists = {}
    for key, dim in table.dims.items():
        lo, hi = dim.args[0], dim.args[-1]
        if dim.kind == "loguniform":
            dists[key] = optuna.distributions.FloatDistribution(lo, hi, log=True)
        elif dim.kind == "uniform":
            dists[key] = optuna.distributions.FloatDistribution(lo, hi)
        elif dim.kind == "randint":
            dists[key] = optuna.distributions.IntDistribution(lo, hi - 1)
        else:
            dists[key] = optuna.distributions.CategoricalDistribution(list(dim.args))
    thresholds = []
    for rule in table.rules:
        for c in rule.conditions:
            bound = {"lower": c.value} if c.KIND == "below" else {"upper": c.value}
            thresholds.append((c.metric, optuna.pruners.ThresholdPruner(**bound, n_warmup_steps=rule.grace + 1)))
    s = spec.scheduler
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=int(s.grace_period),
                                                      reduction_factor=int(s.reduction_factor))
    study = optuna.create_study(direction="maximize" if table.mode == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.pruner = _EitherPruner(pruner, thresholds)
    for point in spec.search.points_to_evaluate:  # none unless --with-points
        study.enqueue_trial(dict(point))
    run, clock = Run(), _Clock()
    open_trials: dict[str, Any] = {}
    best, started = None, 0
    while True:
        while len(clock.heap) < workers and started < trials:
            ot = study.ask(dists)
            started += 1
            row, distance = table.nearest(ot.params)
            t = TrialRun(str(ot.number), row, distance)
            open_trials[t.trial_id] = ot
            run.trials.append(t)
            clock.start(t)
        if not clock.heap:
            break
        t = clock.next()
        ot = open_trials[t.trial_id]
        k = t.reports
        run.cpu_s += t.row.cpu[k]
        t.reports = k + 1
        metrics = t.row.reports[k]
        t.objective = metrics[table.metric]
        if t.row.healthy[k] and (best is None or _better(table.mode, t.objective, best)):
            best = t.objective
            run.curve.append((run.cpu_s, best))  # a step function: only where it improves
        ot.report(t.objective, step=k + 1)
        for metric, _ in thresholds:
            seen = dict(ot.user_attrs.get(metric, {}))
            seen[str(k + 1)] = metrics[metric]
            ot.set_user_attr(metric, seen)
        if k + 1 >= spec.max_iterations:
            study.tell(ot, t.objective)
        elif ot.should_prune():
            t.stopped_by_collapse = bool(study._storage.get_trial(ot._trial_id).user_attrs.get("pruned_by_threshold"))
            study.tell(ot, state=optuna.trial.TrialState.PRUNED)
        else:
            clock.start(t)
    run.wall_s = clock.now
    return run


# -- what a run shows ---------------------------------------------------------------------


def pick(table: Table, method: Method, run: Run) -> TrialRun | None:
    """The trial the user would take: best healthy by the method's own rules (collapsetune),
    among trials run to the end (an Optuna study's best), or best last result (Ray's default)."""
    if method.judged:
        pool = [t for t in run.trials if t.status == "healthy"]
    elif method.optuna_only:
        pool = [t for t in run.trials if t.reports == table.horizon]
    elif method.stopper == "oracle":
        pool = [t for t in run.trials if not (t.row.ends_collapsed and t.reports >= (t.row.onset or 0))]
    else:
        pool = run.trials
    best = None
    for t in pool:
        if best is None or _better(table.mode, t.objective, best.objective):
            best = t
    return best


def measures(table: Table, method: Method, run: Run, target: float | None, fifo_cpu: float | None,
             oracle_cpu: float | None) -> dict:
    picked = pick(table, method, run)
    picked_collapsed = picked is not None and onset(table.rules, picked.row.reports[:picked.reports]) is not None
    eps = EPSILON.get(table.metric, 0.0)
    reached = None
    if target is not None:
        for cpu, best in run.curve:
            if (best >= target - eps) if table.mode == "max" else (best <= target + eps):
                reached = cpu
                break
    false_kills = sum(t.stopped_by_collapse and not t.row.ends_collapsed for t in run.trials)
    return {
        "cpu_s": run.cpu_s,
        "wall_s": run.wall_s,
        "reports": sum(t.reports for t in run.trials),
        "best_healthy": run.curve[-1][1] if run.curve else None,
        "picked_objective": picked.objective if picked else None,
        "picked_collapsed": picked_collapsed,
        "picked_none": picked is None,  # no trial the method would offer (e.g. rules that never judge)
        "false_kills": false_kills,
        "false_kill": false_kills > 0,
        "cpu_in_collapsed": sum(sum(t.row.cpu[:t.reports]) for t in run.trials if t.row.ends_collapsed),
        "collapsed_trials": sum(t.row.ends_collapsed for t in run.trials),  # proposals into a collapse zone
        "cpu_to_target_ratio": (reached / fifo_cpu) if reached is not None and fifo_cpu else None,
        "oracle_ratio": run.cpu_s / oracle_cpu if oracle_cpu else None,
        "fifo_ratio": run.cpu_s / fifo_cpu if fifo_cpu else None,
        "surrogate_distance_median": statistics.median(t.distance for t in run.trials),
    }


def _quantiles(values: list[float]) -> dict:
    xs = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not xs:
        return {"median": None, "p10": None, "p90": None, "n": 0}

    def q(p: float) -> float:
        i = p * (len(xs) - 1)
        lo, hi = math.floor(i), math.ceil(i)
        if lo == hi or xs[lo] == xs[hi] or math.isinf(xs[hi]):  # inf: a seed that never got there
            return xs[lo] if lo == hi or xs[lo] == xs[hi] else math.inf
        return xs[lo] + (xs[hi] - xs[lo]) * (i - lo)

    return {"median": q(0.5), "p10": q(0.1), "p90": q(0.9), "n": len(xs)}


def cell(table: Table, methods: list[str], trials: int, workers: int, seeds: list[int],
         cache: Path | None = None, log: Callable[[str], None] = print, jobs: int = 1,
         replays: _Replays | None = None) -> tuple[list[dict], dict]:
    """Every method on the same seeds; one summary row per method, and the anytime curves.
    With `cache` (a JSON-lines file), each seed's measures are kept there as they are made
    and reused, so a long run that is stopped resumes at the seed it was on. With `jobs` > 1
    (or `replays`, processes shared with other cells), the replays run in other processes
    (a replay is a function of its method and seed alone, so its trials come out the same),
    and seeds are still summed up in order."""
    per: dict[str, list[dict]] = {m: [] for m in methods}
    curves: dict[str, list[list[tuple[float, float]]]] = {m: [] for m in methods}
    stored = _cached(cache, table, trials, workers)
    pool = replays or (_Replays(table, jobs, tuple(METHODS[m] for m in methods)) if jobs > 1 else None)
    try:
        if pool is not None:
            pool.queue(methods, trials, workers, seeds, stored)
        began = time.monotonic()
        for seed in seeds:
            missing = [m for m in methods if (seed, m) not in stored]
            records = {m: stored[seed, m] for m in methods if (seed, m) in stored}
            if missing:  # only the methods this seed lacks (a scan that grows re-runs nothing)
                runs = None if pool is None else (lambda name, seed=seed: pool.result(name, trials, workers, seed))
                fresh = _seed(table, missing, trials, workers, seed, runs,
                              stored={m: rec for (s, m), rec in stored.items() if s == seed})
                records.update(fresh)
                if cache is not None:
                    with open(cache, "a", encoding="utf-8") as f:
                        for m, rec in fresh.items():
                            f.write(json.dumps({"cell": _cell_key(table, trials, workers), "seed": seed, "method": m,
                                                **rec}) + "\n")
                log(f"  {table.model} {trials} trials x {workers} workers, seed {seed}: "
                    f"{time.monotonic() - began:.1f} s")
                began = time.monotonic()
            for m in methods:
                per[m].append(records[m]["measures"])
                curves[m].append(records[m]["curve"])
    finally:
        if pool is not None and replays is None:
            pool.close()
    rows = []
    for name in methods:
        ms = per[name]
        reached = [m["cpu_to_target_ratio"] for m in ms]
        rows.append({
            "model": table.model, "method": name, "trials": trials, "workers": workers, "seeds": len(seeds),
            "cpu_s": _quantiles([m["cpu_s"] for m in ms])["median"],
            "cpu_s_range": _q_range([m["cpu_s"] for m in ms]),
            "wall_s": _quantiles([m["wall_s"] for m in ms])["median"],
            "fifo_ratio": _quantiles([m["fifo_ratio"] for m in ms])["median"],
            # A seed that never reached the target counts as infinitely expensive.
            "cpu_to_target_ratio": _quantiles([r if r is not None else math.inf for r in reached])["median"],
            "cpu_to_target_ratio_range": _q_range([r if r is not None else math.inf for r in reached]),
            "target_reached_share": sum(r is not None for r in reached) / len(ms),
            "picked_collapsed_share": sum(m["picked_collapsed"] for m in ms) / len(ms),
            "no_pick_share": sum(m.get("picked_none", False) for m in ms) / len(ms),
            "false_kill_seed_share": sum(m["false_kill"] for m in ms) / len(ms),
            "false_kills_median": _quantiles([m["false_kills"] for m in ms])["median"],
            "cpu_in_collapsed": _quantiles([m["cpu_in_collapsed"] for m in ms])["median"],
            "collapsed_trials": _quantiles([m.get("collapsed_trials") for m in ms])["median"],
            "oracle_ratio": _quantiles([m["oracle_ratio"] for m in ms])["median"],
            "oracle_ratio_range": _q_range([m["oracle_ratio"] for m in ms]),
            "best_healthy": _quantiles([m["best_healthy"] for m in ms])["median"],
            "best_healthy_range": _q_range([m["best_healthy"] for m in ms]),
            "picked_objective": _quantiles([m["picked_objective"] for m in ms])["median"],
            "surrogate_distance_median": _quantiles([m["surrogate_distance_median"] for m in ms])["median"],
        })
    ends = {m: _quantiles([x["fifo_ratio"] for x in per[m]])["median"] for m in methods}
    return rows, {m: _band(c, ends[m]) for m, c in curves.items()}


def _seed(table: Table, methods: list[str], trials: int, workers: int, seed: int,
          runs: Callable[[str], Run] | None = None, stored: dict[str, dict] | None = None) -> dict[str, dict]:
    """Each method's measures and anytime curve on one seed (and FIFO's and the oracle's
    where they were replayed for the measures); `runs(name)` gives a method's
    replay where it was made elsewhere (`_Replays`). `stored`: this seed's cached records;
    FIFO's and the oracle's there (with FIFO's target) spare replaying them for a new method."""
    runs = runs or (lambda name: replay(table, METHODS[name], trials, workers, seed))
    if _baselines_cached(stored or {}):
        fifo = oracle = None
        target, fifo_cpu, oracle_cpu = (stored["fifo"]["measures"]["target"], stored["fifo"]["measures"]["cpu_s"],
                                        stored["oracle"]["measures"]["cpu_s"])
    else:
        fifo, oracle = runs("fifo"), runs("oracle")
        healthy_ends = [t.objective for t in fifo.trials if t.row.healthy[t.reports - 1]]
        target = (max(healthy_ends) if table.mode == "max" else min(healthy_ends)) if healthy_ends else None
        fifo_cpu, oracle_cpu = fifo.cpu_s, oracle.cpu_s
    out = {}
    # FIFO's and the oracle's records too when they were replayed: the cache keeps them for later methods
    for name in dict.fromkeys([*methods, *(("fifo", "oracle") if fifo is not None else ())]):
        run = {"fifo": fifo, "oracle": oracle}.get(name) or runs(name)
        measured = measures(table, METHODS[name], run, target, fifo_cpu, oracle_cpu)
        out[name] = {"measures": {**measured, "target": target},
                     "curve": [(round(c / fifo_cpu, 5), b) for c, b in run.curve]}
    return out


def _baselines_cached(records: dict[str, dict]) -> bool:
    """Whether a seed's cached records hold what the measures need of FIFO and the oracle
    (records written before the target was kept lack it: then they are replayed)."""
    return "fifo" in records and "oracle" in records and "target" in records["fifo"]["measures"]


class _Replays:
    """Replays of a table run in `jobs` processes (`--jobs`). A process builds the table
    once, and sends back each run without its Optuna study; its trials are given the
    parent's rows again. `methods` are registered in each process, which otherwise knows
    only the METHODS this module defines (rule_scan's variants are made at run time)."""

    def __init__(self, table: Table, jobs: int, methods: tuple[Method, ...] = ()) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.table = table
        # spawn: a fresh interpreter, not a fork of one that has imported torch and Ray
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_replay_worker, initargs=(WITH_POINTS, methods))
        self.futures: dict[tuple[str, int, int, int], Any] = {}

    def queue(self, methods: list[str], trials: int, workers: int, seeds: list[int],
              stored: dict[tuple[int, str], dict]) -> None:
        """Every replay a cell lacks (those not in `stored`), seed by seed; FIFO's and the
        oracle's with any, since the measures need them, unless `stored` has theirs."""
        for seed in seeds:
            missing = [m for m in methods if (seed, m) not in stored]
            cached = _baselines_cached({m: rec for (s, m), rec in stored.items() if s == seed})
            for name in dict.fromkeys([*(() if cached else ("fifo", "oracle")), *missing]) if missing else ():
                if (name, trials, workers, seed) not in self.futures:
                    self.futures[name, trials, workers, seed] = self.pool.submit(
                        _replay_in_worker, self.table.model, str(self.table.path), name, trials, workers, seed,
                        self.table.weighted)

    def result(self, name: str, trials: int, workers: int, seed: int) -> Run:
        run = self.futures.pop((name, trials, workers, seed)).result()
        for t in run.trials:
            t.row = self.table.rows[self.table._position[t.row.index]]
        return run

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


_WORKER_TABLES: dict[tuple[str, bool], Table] = {}  # in a `_Replays` process: the tables it has read


def _replay_worker(with_points: bool, methods: tuple[Method, ...] = ()) -> None:
    global WITH_POINTS
    WITH_POINTS = with_points
    METHODS.update({m.name: m for m in methods})
    _quiet()


def _replay_in_worker(model: str, path: str, name: str, trials: int, workers: int, seed: int,
                      weighted: bool = False) -> Run:
    if (path, weighted) not in _WORKER_TABLES:
        _WORKER_TABLES[path, weighted] = Table(model, Path(path), weighted)
    run = replay(_WORKER_TABLES[path, weighted], METHODS[name], trials, workers, seed)
    run.study = None  # the parent needs the trials only
    return run


def _cell_key(table: Table, trials: int, workers: int) -> str:
    return (f"{table.model}/{trials}/{workers}/rows{len(table.rows)}/sweep{table.sweep_sha}"
            + ("/points" if WITH_POINTS else "") + ("/weighted" if table.weighted else ""))


def _cached(cache: Path | None, table: Table, trials: int, workers: int) -> dict[tuple[int, str], dict]:
    if cache is None or not cache.exists():
        return {}
    key = _cell_key(table, trials, workers)
    out = {}
    for line in cache.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill
        if rec.get("cell") == key:
            out[rec["seed"], rec["method"]] = rec
    return out


def _q_range(values: list) -> list:
    q = _quantiles(values)
    return [q["p10"], q["p90"]]


def _band(curves: list[list[tuple[float, float]]], end: float | None, points: int = 60) -> dict:
    """Median and 10-90% of best-healthy-so-far over seeds, on a log grid of CPU as a share
    of FIFO's total (same seed), up to the method's median total."""
    grid = [10 ** (-2 + 2.1 * i / (points - 1)) for i in range(points)]  # 0.01 .. ~1.26
    med, lo, hi = [], [], []
    for x in grid:
        ys = []
        for curve in curves:
            seen = [b for c, b in curve if c <= x]
            if seen:
                ys.append(seen[-1])
        past = end is not None and x > end * 1.02
        q = _quantiles(ys) if len(ys) == len(curves) and not past else {"median": None, "p10": None, "p90": None}
        med.append(q["median"])
        lo.append(q["p10"])
        hi.append(q["p90"])
    return {"x": grid, "median": med, "p10": lo, "p90": hi}


# The methods the anytime plot shows (all are in the JSON): the baselines a user would pick,
# the shipped default and the oracle; more lines hide each other.
PLOTTED_METHODS = ("fifo", "asha", "asha+function_stopper", "optuna_pruner", "collapsetune", "forecast", "oracle")


def plot(model: str, bands: dict, out: Path, title: str, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, band in bands.items():
        if name not in PLOTTED_METHODS:
            continue
        xs = [x for x, y in zip(band["x"], band["median"]) if y is not None]
        if not xs:
            continue
        keep = [i for i, y in enumerate(band["median"]) if y is not None]
        line, = ax.plot(xs, [band["median"][i] for i in keep], label=name, lw=1.6)
        ax.fill_between(xs, [band["p10"][i] for i in keep], [band["p90"][i] for i in keep],
                        color=line.get_color(), alpha=0.12)
    ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("CPU-seconds spent / FIFO's total (same seed; each line ends at its method's median total)")
    ax.set_ylabel(f"best healthy {metric} so far")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _quiet() -> None:
    """No line per replayed trial: Ray's OptunaSearch warns that a seeded sampler ignores its
    `seed` (the sampler is seeded), Optuna announces each in-memory study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray", "ray.tune", "ray.tune.search.optuna.optuna_search"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="ray")


def jobs_count(text: str) -> int:
    """`--jobs` (here and in rule_scan.py): argparse's type, so a bad value exits 2 with usage."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be a whole number >= 1, got {text}")
    return jobs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mop_clip", "bitnet_lm", "audio_caption"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--trials", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--workers", nargs="+", type=int, default=[8])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="mop_clip, 64 trials, 8 workers, 3 seeds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "plots")
    parser.add_argument("--surrogate-check", action="store_true")
    parser.add_argument("--weighted", action="store_true",
                        help="serve proposals the nearest row by a distance whose knob weights are fitted to the "
                             "table (Table.fit_weights), not every knob alike; needs its own --out")
    parser.add_argument("--jobs", type=jobs_count, default=1,
                        help="replay in this many processes (same figures; on a shared 2-core machine, 1 or 2)")
    parser.add_argument("--refresh", action="store_true",
                        help="summarise cells again from the per-seed cache (after a change to the summary)")
    parser.add_argument("--with-points", action="store_true",
                        help="keep the sweep's points_to_evaluate (its known fixes) as the first trials")
    parser.add_argument("--grid", action="store_true",
                        help="print every cell of --out measured with the sweep files as they are now; replay nothing")
    args = parser.parse_args(argv)
    if args.weighted and args.out.resolve() == RESULTS.resolve():
        parser.error(f"--weighted needs its own --out: {RESULTS} holds the unweighted replays")
    if args.grid:
        doc = json.loads(args.out.read_text())
        current = {m: sweep_sha(m) for m in TABLES}
        print(grid(doc["rows"], current))
        return doc
    global WITH_POINTS
    WITH_POINTS = args.with_points
    if args.quick:
        args.models, args.trials, args.workers, args.seeds = ["mop_clip"], [64], [8], 3
    _quiet()
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc.setdefault("rows", [])
    doc.setdefault("curves", {})
    doc.setdefault("tables", {})
    doc["command"] = "python benchmarks/collapse_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for model in args.models:
        path = TABLES_DIR / f"{model}.jsonl"
        if not path.exists():
            print(f"{model}: no table at {path}; skipped (python benchmarks/curve_tables.py {model})")
            continue
        table = Table(model, path, weighted=args.weighted)
        info = {"rows": len(table.rows), "commit": table.header.get("commit"),
                "ends_collapsed": sum(r.ends_collapsed for r in table.rows), "weighted": args.weighted}
        if args.surrogate_check:
            info["surrogate"] = table.surrogate_error()
            info["surrogate_held_out"] = table.held_out_error()
        doc["tables"][model] = {**doc["tables"].get(model, {}), **info}
        print(f"{model}: {info}")
        cache = args.out.with_name(args.out.stem + "_seeds.jsonl")
        seeds = list(range(args.seeds))
        todo = []
        for trials in args.trials:
            for workers in args.workers:
                key = f"{model}/{trials}/{workers}/{args.seeds}"
                done = {r["method"] for r in doc["rows"] if f"{r['model']}/{r['trials']}/{r['workers']}/{r['seeds']}" == key
                        and r.get("table_rows") == len(table.rows) and r.get("with_points") == WITH_POINTS
                        and r.get("sweep") == table.sweep_sha}  # figures of an edited sweep file are stale
                if set(args.methods) <= done and not args.refresh:
                    print(f"{key}: already measured, kept")
                    continue
                todo.append((trials, workers, key))
        # --jobs: every cell's replays queued at once, so processes never wait for a cell's last one
        replays = _Replays(table, args.jobs) if args.jobs > 1 and todo else None
        try:
            for trials, workers, _key in todo if replays is not None else ():
                replays.queue(args.methods, trials, workers, seeds, _cached(cache, table, trials, workers))
            for trials, workers, key in todo:
                began = time.monotonic()
                rows, bands = cell(table, args.methods, trials, workers, seeds, cache=cache, replays=replays)
                for r in rows:
                    r["table_rows"] = len(table.rows)
                    r["with_points"] = WITH_POINTS
                    r["sweep"] = table.sweep_sha
                doc["rows"] = [r for r in doc["rows"] if not (
                    f"{r['model']}/{r['trials']}/{r['workers']}/{r['seeds']}" == key and r["method"] in args.methods
                    and r.get("with_points", False) == WITH_POINTS)]
                doc["rows"] += rows
                doc["curves"][key] = bands
                print(f"{key}: {time.monotonic() - began:.0f} s")
                print(markdown([r for r in rows]))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                tmp = args.out.with_suffix(".tmp")
                tmp.write_text(json.dumps(doc, indent=1))
                os.replace(tmp, args.out)
                if not args.quick and (trials, workers) == PLOTTED:
                    plot(model, bands, args.plots / f"collapse_bench_{model}.png",
                         f"{model}: {trials} trials, {workers} workers, {args.seeds} seeds (median, 10-90%)",
                         table.metric)
        finally:
            if replays is not None:
                replays.close()
    return doc


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.{digits}f}"
    return str(v)


def markdown(rows: list[dict]) -> str:
    head = ("| model | method | trials | workers | CPU / FIFO | CPU to FIFO's best (x FIFO) | reached | "
            "picked collapsed | no pick | recovery killed | x oracle | best healthy |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['method']} | {r['trials']} | {r['workers']} | {_fmt(r['fifo_ratio'])} | "
                     f"{_fmt(r['cpu_to_target_ratio'])} | {_fmt(r['target_reached_share'])} | "
                     f"{_fmt(r['picked_collapsed_share'])} | {_fmt(r.get('no_pick_share'))} | "
                     f"{_fmt(r['false_kill_seed_share'])} | "
                     f"{_fmt(r['oracle_ratio'])} | {_fmt(r['best_healthy'], 4)} |")
    return "\n".join(lines)


GRID_METHODS = ("asha", "asha+function_stopper", "optuna_pruner", "collapsetune", "oracle")


def grid(rows: list[dict], current: dict[str, str]) -> str:
    """Every measured cell on one line: CPU / FIFO of the baselines, collapsetune and the
    oracle, and what the five-line stopper and collapsetune cost in recoveries and picks.
    Only rows replayed with the sweep file as it is now (`current`: model -> its sweep hash)."""
    cells: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if r.get("sweep") == current.get(r["model"]) and not r.get("with_points"):
            cells.setdefault((r["model"], r["trials"], r["workers"], r["seeds"]), {})[r["method"]] = r
    head = ("| model | trials x workers | seeds | " + " | ".join(f"{m} CPU / FIFO" for m in GRID_METHODS)
            + " | recovery killed: stopper / collapsetune | picked collapsed: stopper / collapsetune |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (model, trials, workers, seeds), by in sorted(cells.items()):
        stopper, ct = by.get("asha+function_stopper", {}), by.get("collapsetune", {})
        lines.append(f"| {model} | {trials} x {workers} | {seeds} | "
                     + " | ".join(_fmt(by[m]["fifo_ratio"]) if m in by else "-" for m in GRID_METHODS)
                     + f" | {_fmt(stopper.get('false_kill_seed_share'))} / {_fmt(ct.get('false_kill_seed_share'))}"
                     + f" | {_fmt(stopper.get('picked_collapsed_share'))} / {_fmt(ct.get('picked_collapsed_share'))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
