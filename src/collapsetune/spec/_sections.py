"""The typed, frozen sweep spec: one dataclass per YAML mapping, keys = field names."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collapsetune.collapse._rules import Rule
from collapsetune.errors import SpecError, raise_all
from collapsetune.names import OBJECTIVE_KEY
from collapsetune.registry import wrapper_search_dirs
from collapsetune.spec._schedulers import Asha, Scheduler
from collapsetune.spec._base import (
    FrozenMap,
    Section,
    formed,
    limited,
)
from collapsetune.spec._distribution import Distribution
from collapsetune.spec._places import (
    address_problem,
    name_problem,
    storage_problem,
    tracking_problem,
)
from collapsetune.tracking._names import param_key_problem, param_keys

# The launcher always passes max_iterations to the wrapper; a second source would be ambiguous.
RESERVED = "max_iterations"
# Trials per launch (num_samples x grid points). Ray creates every grid variant before the
# first trial starts (a 10^6-point grid spent minutes there), and each trial adds to the
# experiment state Ray rewrites on every snapshot.
MAX_TRIALS = 10_000
# Reports per trial: a report a second for eleven days. Every report is a row in Ray's
# result.json and a step in MLflow (an int64); a larger number is a typo.
MAX_ITERATIONS = 1_000_000


def _seed_problem(seed: int) -> str | None:
    """Optuna's samplers and Tune's random search seed numpy, which takes 0 to 2**32 - 1."""
    if not 0 <= seed < 2**32:
        return f"expected an integer from 0 to {2**32 - 1} (numpy's seed range) or null, got {seed}"
    return None


@dataclass(frozen=True)
class Objective(Section):
    """What the search optimises: one metric and mode, or a YAML list of them (several
    objectives: Optuna's samplers look for their Pareto front; the first one is `objective`
    for the scheduler and the summary). Example: `Objective("val/loss", "min")`."""

    metric: str  # a metric the wrapper reports, e.g. val/loss
    mode: Literal["min", "max"]  # whether lower or higher is better
    also: tuple[Objective, ...] = field(default=(), metadata={"yaml": False})  # the list's further objectives

    @property
    def all(self) -> tuple[Objective, ...]:
        """Every objective, the first one first."""
        return (Objective(self.metric, self.mode), *self.also)

    @classmethod
    def from_yaml(cls, raw: Any, **extra: Any) -> Objective:
        if not isinstance(raw, list):
            return super().from_yaml(raw, **extra)
        if not raw:
            raise SpecError("expected {metric, mode} or a non-empty list of them, got []")
        objectives, errors = [], []
        for i, item in enumerate(raw):
            try:
                objectives.append(super().from_yaml(item))
            except SpecError as exc:
                errors.append(exc.within(f"[{i}]"))
        raise_all(errors)
        first, *rest = objectives
        return cls(first.metric, first.mode, also=tuple(rest))

    def to_yaml(self) -> dict | list:
        if self.also:
            return [{"metric": o.metric, "mode": o.mode} for o in self.all]
        return {"metric": self.metric, "mode": self.mode}

    def _problems(self) -> Iterator[SpecError]:
        if not self.metric:
            yield SpecError("expected a metric name such as val/loss, got ''", key="metric")
        if self.metric == OBJECTIVE_KEY:  # the trainable writes `objective` itself (penalised when collapsed)
            yield SpecError("'objective' is reserved for the penalised value; name the metric it comes "
                            "from, e.g. val/loss", key="metric")
        names = [self.metric, *(o.metric for o in self.also)]
        for name in sorted({n for n in names if names.count(n) > 1}):
            yield SpecError(f"{name!r} is listed twice; each objective is a different metric")


@dataclass(frozen=True)
class Search(Section):
    """The searcher. Example: `Search("random", seed=1)`."""

    algorithm: Literal["optuna", "random"] = "optuna"  # optuna: Optuna's sampler; random: Tune's grid/random generator
    seed: int | None = formed(_seed_problem, 0)  # null: a different random stream every launch
    points_to_evaluate: tuple[Mapping[str, Any], ...] = ()  # partial configs tried first
    sampler: Literal["tpe", "nsga2", "gp"] = "tpe"  # optuna only: TPE, NSGA-II (several objectives) or GP
    constraints: bool = False  # optuna only: collapse/margin as a constraint, besides the penalised objective
    # optuna only: results folders of earlier sweeps whose ended trials seed the study (collapsetune.warm_start)
    warm_start: tuple[str, ...] = ()

    @classmethod
    def from_yaml(cls, raw: Any, **extra: Any) -> Search:
        if isinstance(raw, Mapping) and isinstance(raw.get("warm_start"), str):  # one folder, not in a list
            raw = {**raw, "warm_start": [raw["warm_start"]]}
        return super().from_yaml(raw, **extra)

    def _problems(self) -> Iterator[SpecError]:
        for i, folder in enumerate(self.warm_start):
            if not folder.strip():
                yield SpecError("expected the path of a collapsetune results folder, got ''", key=f"warm_start[{i}]")
        if self.warm_start and self.algorithm != "optuna":
            yield SpecError("needs algorithm: optuna (the folders' trials seed Optuna's study; random search "
                            "learns nothing from them)", key="warm_start")
        if self.algorithm != "optuna":
            if self.constraints:
                yield SpecError("needs algorithm: optuna (random search learns nothing from results)",
                                key="constraints")
            if self.sampler != "tpe":
                yield SpecError("needs algorithm: optuna", key="sampler")


@dataclass(frozen=True)
class Resources(Section):
    """Per-trial resources; fractions share a device. Example: `Resources(cpu=0.5, gpu=0.25)`."""

    cpu: float = limited(1, ge=0)  # CPU cores per trial
    gpu: float = limited(0, ge=0)  # GPUs per trial

    def _problems(self) -> Iterator[SpecError]:
        if self.cpu <= 0 and self.gpu <= 0:
            yield SpecError(f"a trial needs cpu > 0 or gpu > 0, got cpu: {self.cpu}, gpu: {self.gpu}")


@dataclass(frozen=True)
class MlflowSpec(Section):
    """Where trials are logged. Example: `MlflowSpec(None)` turns MLflow off."""

    # null: no MLflow; relative sqlite paths are cwd-relative
    tracking_uri: str | None = formed(tracking_problem, "sqlite:///mlflow.db")


@dataclass(frozen=True)
class CollapseForecast(Section):
    """Stop a trial early when a model fitted on the sweep's own judged trials is confident
    it will end collapsed (collapsetune.forecast). Example: `CollapseForecast(min_trials=20)`."""

    min_trials: int = limited(20, ge=4)  # trials the rules have judged before the forecast may stop any
    max_false_stop: float = limited(0.05, gt=0, le=0.5)  # share of recovering trials it may stop (conformal)
    first_report: int = limited(1, ge=1)  # earliest report it may stop a trial on


@dataclass(frozen=True)
class StopSweepWhen(Section):
    """End the whole sweep once most of its judged trials collapsed (collapsetune.collapse's
    `SweepBreaker`): its search space is then almost all collapse, and the rest of the budget
    would buy more of the same. Example: `StopSweepWhen(collapsed_share_above=0.8, after_trials=20)`."""

    collapsed_share_above: float = limited(0.8, gt=0)  # stop when more than this share of judged trials collapsed
    after_trials: int = limited(20, ge=1)  # ... once this many trials have a final verdict (ASHA's cuts have none)

    def _problems(self) -> Iterator[SpecError]:
        if self.collapsed_share_above >= 1:
            yield SpecError("expected a share between 0 and 1 (the sweep stops when more than it collapsed; "
                            f"no share is above 1), got {self.collapsed_share_above}", key="collapsed_share_above")


@dataclass(frozen=True, kw_only=True)
class SweepSpec(Section):
    """A validated sweep file. Build with `load_sweep`; every YAML key is a field of the same name.

    Example:
        >>> spec = SweepSpec(name="toy", trainable="mywrap:Toy", objective=Objective("val/loss", "min"),
        ...                  search_space={"lr": Distribution("loguniform", (1e-4, 1e-2))})
        >>> spec.num_samples, spec.search_space["lr"].kind
        (8, 'loguniform')
    """

    name: str = formed(name_problem)  # MLflow experiment name and results folder name
    trainable: str  # built-in short name or "package.module:Class"
    config: Mapping[str, Any] = field(default_factory=FrozenMap)  # fixed values for the wrapper (read-only)
    search_space: Mapping[str, Distribution] = field(default_factory=FrozenMap)  # includes expanded
    objective: Objective  # metric and mode the search optimises
    max_iterations: int = limited(10, ge=1, le=MAX_ITERATIONS)  # reporting intervals per trial
    num_samples: int = limited(8, ge=1)  # trials (times the grid size for grid dimensions)
    search: Search = field(default_factory=Search)  # searcher
    scheduler: Scheduler = field(default_factory=Asha)  # by type: collapsetune.schedulers
    collapse: tuple[Rule, ...] = ()  # any rule that fires marks the trial collapsed
    collapse_forecast: CollapseForecast | None = None  # null: only the rules stop collapsed trials
    stop_sweep_when: StopSweepWhen | None = None  # null: the sweep runs all its trials whatever they end as
    resources: Resources = field(default_factory=Resources)  # per trial
    address: str | None = formed(address_problem, None)  # null: embedded local Ray; "auto" or host:port: a cluster
    storage: str = formed(storage_problem, "results")  # folder (relative: to the cwd at launch, ~: home) or a URI
    mlflow: MlflowSpec = field(default_factory=MlflowSpec)  # trial logging
    max_concurrent: int | None = limited(None, ge=1)  # null: as many trials as resources allow
    max_failures: int = limited(0, ge=-1)  # retries of a crashed trial; -1 retries forever
    # When a trial with state is checkpointed (always also at its end): every n reports (0:
    # only at the end), or, when null, every checkpoint_interval_s seconds, so cheap reports
    # do not pay for a checkpoint each.
    checkpoint_frequency: int | None = limited(None, ge=0)
    checkpoint_interval_s: float = limited(60.0, gt=0)  # with checkpoint_frequency null
    report_timeout_s: float | None = limited(None, gt=0)  # null: a step() may take any time; else it fails the trial
    trial_timeout_s: float | None = limited(None, gt=0)  # null: no limit on a trial's total time
    # Checkpoints kept per trial; null keeps all. Ray snapshots the whole experiment each
    # time a trial has made this many since the last snapshot (docs/benchmarks.md, overhead).
    checkpoint_num_to_keep: int | None = limited(2, ge=1)
    # Pictures (write_artifacts) of a trial cut early by the scheduler, drawn in the checkpoint
    # it ends with. Off: collapsed, diverged and full-length trials are drawn, cut ones not (a
    # drawing is ~40% of a mop_clip trial cut at report 3; docs/benchmarks.md, section 14).
    draw_cut_trials: bool = False
    source: Path | None = field(default=None, compare=False, metadata={"yaml": False})  # the YAML file
    base_dir: Path = field(default_factory=Path.cwd, compare=False, metadata={"yaml": False})  # its folder
    # The class `trainable` names, imported once by load_sweep when it checks it (None: a spec
    # built by hand; the launch imports it then). Never in the YAML, never compared.
    wrapper: type | None = field(default=None, compare=False, repr=False, metadata={"yaml": False})

    @property
    def search_dirs(self) -> tuple[Path, ...]:
        """Where a `module:Class` wrapper may live: beside the sweep file, or in the cwd."""
        return wrapper_search_dirs(self.base_dir)

    def advice(self) -> list[SpecError]:
        """Settings that are legal but probably not meant; `validate` and `run` print them."""
        file = str(self.source) if self.source else None
        found = [e.within("scheduler") for e in self.scheduler.advice(self)] + self._launch_place_advice()
        found += self._breaker_advice()
        return [e.in_file(file) if file else e for e in found]

    def _breaker_advice(self) -> list[SpecError]:
        """A breaker that needs more judged trials than the sweep has can never trip."""
        stop, grid = self.stop_sweep_when, [len(d.args) for d in self.search_space.values() if d.kind == "grid"]
        trials = self.num_samples * math.prod(grid)
        if stop is None or stop.after_trials <= trials:
            return []
        return [SpecError(f"is {stop.after_trials}, more than the sweep's {trials} trials: the breaker can never "
                          "trip", key="stop_sweep_when.after_trials")]

    def _launch_place_advice(self) -> list[SpecError]:
        """Relative results and MLflow store paths mean the launch directory: launched from
        elsewhere than the sweep's project, a sweep's runs land apart from its earlier ones."""
        if self.source is None:
            return []
        cwd = Path.cwd().resolve()
        project = Path(self.source).resolve().parent
        if project.name in ("sweeps", "configs"):
            project = project.parent
        if project == cwd or cwd in project.parents:
            return []
        relative = []
        if "://" not in self.storage and not self.storage.startswith(("/", "~")):
            relative.append("storage")
        uri = self.mlflow.tracking_uri or ""
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            relative.append("mlflow.tracking_uri")
        return [SpecError(f"is relative, so it means {cwd}, the directory you launch from, not the sweep's "
                          f"project {project}; launch from there to keep its runs together, or give an "
                          "absolute path", key=key) for key in relative]

    def _problems(self) -> Iterator[SpecError]:
        if self.trainable == "":
            yield SpecError("expected a non-empty string, got ''", key="trainable")
        yield from self._size_problems()
        yield from self._param_name_problems()
        for problem in self.scheduler.problems(self):
            yield problem.within("scheduler")
        if self.scheduler.makes_configs and self.search.algorithm != "random":
            yield SpecError(f"scheduler {self.scheduler.type} makes the trials' configs itself (it copies and "
                            "perturbs trials), and Ray runs it only beside random search; set "
                            "search: {algorithm: random}", key="search.algorithm")
        yield from self._forecast_problems()
        if self.stop_sweep_when is not None and not self.collapse:
            yield SpecError("needs collapse rules: it counts the trials they judge collapsed", key="stop_sweep_when")
        if self.objective.also:
            if self.search.algorithm != "optuna":
                yield SpecError("several objectives need search.algorithm: optuna (its samplers look for "
                                "their Pareto front)", key="objective")
            if self.scheduler.type != "fifo":
                yield SpecError("several objectives need scheduler: {type: fifo}: a scheduler that cuts or "
                                "copies trials ranks them on one number, and would drop Pareto-optimal ones",
                                key="scheduler.type")
        for section in ("config", "search_space"):
            if RESERVED in getattr(self, section):
                yield SpecError("is reserved: the launcher passes the top-level max_iterations to the wrapper; "
                                "set max_iterations there", key=f"{section}.{RESERVED}")
        if "include" in self.search_space:
            yield SpecError("fragments are expanded by load_sweep; pass the merged dimensions",
                            key="search_space.include")
        for key, dist in self.search_space.items():
            if key in self.config:
                yield SpecError("is also set in config; a key is either fixed (config) or searched "
                                "(search_space), not both", key=f"search_space.{key}")
            if dist.kind == "grid" and self.search.algorithm == "optuna":
                yield SpecError("grid needs search.algorithm: random (Optuna cannot enumerate a grid), "
                                "or turn it into {choice: [...]}", key=f"search_space.{key}")
        for i, point in enumerate(self.search.points_to_evaluate):
            for key, value in point.items():
                where = f"search.points_to_evaluate[{i}].{key}"
                if key not in self.search_space:
                    yield SpecError(f"not a search_space key; expected one of {', '.join(self.search_space)}",
                                    key=where)
                    continue
                try:
                    self.search_space[key].check(value)
                except SpecError as exc:
                    yield exc.within(where)

    def _forecast_problems(self) -> Iterator[SpecError]:
        forecast = self.collapse_forecast
        if forecast is None:
            return
        if not self.collapse:
            yield SpecError("needs collapse rules: the forecast learns from the verdicts they give",
                            key="collapse_forecast")
            return
        judged = max(rule.earliest_report for rule in self.collapse)
        if forecast.first_report >= judged:
            yield SpecError(f"must be below {judged}, the report on which the rules first judge a trial "
                            f"(grace + patience); from there the rules decide, got {forecast.first_report}",
                            key="collapse_forecast.first_report")
        if self.scheduler.rescues_collapsed:
            yield SpecError(f"scheduler {self.scheduler.type} rescues collapsed trials instead of stopping "
                            "them; the forecast only stops trials: remove one of the two",
                            key="collapse_forecast")

    def _size_problems(self) -> Iterator[SpecError]:
        grid = {k: len(d.args) for k, d in self.search_space.items() if d.kind == "grid"}
        points = math.prod(grid.values())
        if points * self.num_samples <= MAX_TRIALS:
            return
        sizes = " x ".join(f"{k} {n}" for k, n in grid.items())
        if points > MAX_TRIALS:
            yield SpecError(f"the grid dimensions ({sizes}) make {_count(points)} points; at most {MAX_TRIALS} "
                            "trials per launch: sample some of them with choice (or uniform) instead of grid",
                            key="search_space")
        else:
            of = f" x {points} grid points ({sizes})" if grid else ""
            yield SpecError(f"{self.num_samples}{of} = {_count(points * self.num_samples)} trials; at most "
                            f"{MAX_TRIALS} per launch", key="num_samples")

    def _param_name_problems(self) -> Iterator[SpecError]:
        """Every config and search key is an MLflow param of each trial (nested mappings joined by '.')."""
        names = {f"config.{k}": k for k in param_keys(self.config)}
        for key, dist in self.search_space.items():
            nested = [v for v in dist.args if isinstance(v, Mapping) and v]  # a choice of mappings
            if len(nested) < len(dist.args):
                names[f"search_space.{key}"] = key
            names.update({f"search_space.{k}": k for v in nested for k in param_keys(v, f"{key}.")})
        for where, param in names.items():
            if problem := param_key_problem(param):
                yield SpecError(problem, key=where)


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**12 else f"about 10^{int(math.log10(n))}"
