"""Trial schedulers by `scheduler.type`, each with its own section of the sweep file.

A scheduler is one small config class here (a frozen spec `Section`, no Ray import, so that
`collapsetune validate` stays fast) registered in `SCHEDULERS`, whose `build(sweep)` makes
the Ray Tune scheduler; the Ray side lives in `collapsetune.schedulers`, imported then.

A scheduler that rescues collapsed trials (`rescues_collapsed = True`) is consulted before
any is stopped: the stopper then leaves collapsed and diverged trials to it, and it either
takes one over (e.g. PBT copies a healthy trial into it) or stops it itself.

Example:
    >>> Scheduler.from_yaml({"type": "asha", "grace_period": 3})
    Asha(type='asha', grace_period=3, reduction_factor=3.0, cut_ties=False, early_rungs=False)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from collapsetune.errors import SpecError
from collapsetune.registry import has_state
from collapsetune.spec._base import FrozenMap, Section, limited, show, thaw

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

    from collapsetune.spec import SweepSpec


class Scheduler(Section):
    """Base of the scheduler sections; `from_yaml` picks the class by `type`."""

    rescues_collapsed: ClassVar[bool] = False
    # Whether it ends trials before max_iterations (ASHA); `report` calls a trial that ended
    # early without a verdict "cut by the scheduler" only under one that does.
    cuts_trials: ClassVar[bool] = False
    # It changes trials' configs itself (PBT); Ray runs such a scheduler only with random search.
    makes_configs: ClassVar[bool] = False
    mutable: ClassVar[tuple[str, ...]] = ()  # config keys it changes in running trials
    grace_after_copy: ClassVar[int] = 0  # the rules' grace after it copies a checkpoint into a trial
    # Checkpoints each trial keeps at least: PBT copies them into other trials some reports later.
    checkpoints_kept: ClassVar[int] = 1

    @classmethod
    def from_yaml(cls, raw: Any, **extra: Any) -> Scheduler:
        if cls is not Scheduler:
            return super().from_yaml(raw, **extra)
        if raw is None:
            return Asha()
        if not isinstance(raw, Mapping):
            raise SpecError(f"expected a mapping with a type ({', '.join(SCHEDULERS)}), got {show(raw)}")
        kind = raw.get("type", "asha")
        if not isinstance(kind, str) or kind not in SCHEDULERS:
            close = difflib.get_close_matches(str(kind), SCHEDULERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"unknown scheduler {show(kind)}{hint}; expected one of {', '.join(SCHEDULERS)}",
                            key="type")
        return SCHEDULERS[kind].from_yaml({**raw, "type": kind}, **extra)

    def build(self, sweep: SweepSpec) -> TrialScheduler:
        """The Ray Tune scheduler for this sweep, on its (penalised) `objective`."""
        raise NotImplementedError

    def problems(self, sweep: SweepSpec) -> Iterator[SpecError]:
        """Checks against the rest of the sweep; keys are relative to `scheduler`."""
        return iter(())

    def advice(self, sweep: SweepSpec) -> list[SpecError]:
        """Legal but probably not meant; keys relative to `scheduler`."""
        return []

    def wrapper_problems(self, wrapper: type) -> list[SpecError]:
        """What the sweep's wrapper class lacks for this scheduler; keys relative to `scheduler`."""
        return []


@dataclass(frozen=True)
class Fifo(Scheduler):
    """Every trial runs to `max_iterations`, unless it collapses or diverges."""

    type: Literal["fifo"] = "fifo"

    def build(self, sweep: SweepSpec) -> TrialScheduler:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()


@dataclass(frozen=True)
class Asha(Scheduler):
    """Collapse-aware ASHA: cuts trials with a poor objective at rungs, and forgets the rung
    values a trial had before it collapsed (`collapsetune.schedulers.CollapseASHA`)."""

    type: Literal["asha"] = "asha"
    cuts_trials: ClassVar[bool] = True
    grace_period: int = limited(1, ge=1)  # reports before a trial can be cut for a poor objective
    reduction_factor: float = limited(3, gt=1)  # keep 1/reduction_factor of the trials at each rung
    # cut a trial tied with a rung's cutoff once the rung's top share is full (Ray keeps every
    # tied trial: on a discrete objective, such as an accuracy, whole groups tie at each rung)
    cut_ties: bool = False
    # a first rung before the collapse rules can judge is meant: no warning (such a rung ranks
    # trials nobody has judged yet; measured worth it on MoP-CLIP, docs/benchmarks.md section 17)
    early_rungs: bool = False

    def build(self, sweep: SweepSpec) -> TrialScheduler:
        from collapsetune.schedulers import CollapseASHA

        return CollapseASHA(time_attr="training_iteration", max_t=sweep.max_iterations,
                            grace_period=self.grace_period, reduction_factor=self.reduction_factor,
                            cut_ties=self.cut_ties)

    def problems(self, sweep: SweepSpec) -> Iterator[SpecError]:
        if self.grace_period > sweep.max_iterations:
            yield SpecError(f"must be <= max_iterations ({sweep.max_iterations}), got {self.grace_period}",
                            key="grace_period")

    def advice(self, sweep: SweepSpec) -> list[SpecError]:
        """An ASHA rung before the collapse rules can fire compares healthy trials with trials
        not yet known to be collapsed, whose loss is often the lowest."""
        if not sweep.collapse or self.early_rungs:
            return []
        latest = max(rule.earliest_report for rule in sweep.collapse)
        if self.grace_period >= latest:
            return []
        return [SpecError(
            f"{self.grace_period} comes before report {latest} (the earliest a collapse rule can fire: its "
            f"grace + patience, plus the reports its conditions need), so ASHA may cut healthy trials for "
            f"losing to trials that are collapsing; set grace_period >= {latest} (or early_rungs: true if meant)",
            key="grace_period")]


@dataclass(frozen=True, kw_only=True)
class Pbt(Scheduler):
    """Collapse-aware Population Based Training (`collapsetune.schedulers.CollapsePBT`).

    Every `perturbation_interval` reports, a trial in the bottom `quantile_fraction` copies
    the checkpoint of a healthy trial in the top one and perturbs the `mutable` knobs (each
    value times one of `perturbation_factors`, or with `resample_probability` drawn afresh
    from its search-space dimension; clipped to its bounds). With `rescue`, a trial marked
    collapsed or diverged does so at once instead of being stopped (the knobs in
    `rescue_toward` then move their fixing way), and restarts its collapse rules, grace
    included. PBT makes its own configs: the sweep's search is random.
    """

    makes_configs: ClassVar[bool] = True
    checkpoints_kept: ClassVar[int] = 4  # Ray warns that 2 or fewer can be deleted before they are copied

    type: Literal["pbt"] = "pbt"
    mutable: tuple[str, ...]  # search_space keys PBT may change in a running trial
    perturbation_interval: int = limited(2, ge=1)  # reports between a trial's exploit/explore steps
    burn_in: int = limited(0, ge=0)  # reports before a trial's first exploit/explore step (rescues excepted)
    quantile_fraction: float = limited(0.25, gt=0)  # top and bottom share of the population, at most 0.5
    resample_probability: float = limited(0.25, ge=0)  # chance a knob is drawn afresh instead of scaled
    perturbation_factors: tuple[float, ...] = (1.2, 0.8)  # a scaled knob is multiplied by one of these
    rescue: bool = True  # collapsed trials copy a healthy one instead of stopping
    # After a copy the trial's rules start again, each with min(its grace, this): the grace
    # meant for a model fresh from its initial weights is not needed for a trained copy.
    grace_after_copy: int = limited(1, ge=0)
    # On a rescue these mutable knobs move the way that fixes collapse (up | down) instead of at
    # random: a number by the largest / smallest perturbation factor, a choice one neighbour along its list.
    rescue_toward: Mapping[str, Literal["up", "down"]] = field(default_factory=FrozenMap)

    @property
    def rescues_collapsed(self) -> bool:  # type: ignore[override]
        return self.rescue

    def _problems(self) -> Iterator[SpecError]:
        if not self.mutable:
            yield SpecError("expected a non-empty list of search_space keys to perturb", key="mutable")
        if self.quantile_fraction > 0.5:
            yield SpecError(f"must be <= 0.5 (top and bottom cannot overlap), got {self.quantile_fraction}",
                            key="quantile_fraction")
        if self.resample_probability > 1:
            yield SpecError(f"must be <= 1, got {self.resample_probability}", key="resample_probability")
        for i, key in enumerate(self.mutable):
            if key in self.mutable[:i]:
                yield SpecError(f"{key!r} is listed twice; list each search_space key once", key=f"mutable[{i}]")
        if not self.perturbation_factors:  # Ray's explore draws one at random: [] fails mid-sweep
            yield SpecError("expected a non-empty list of numbers > 0, e.g. [1.2, 0.8]", key="perturbation_factors")
        for i, factor in enumerate(self.perturbation_factors):
            if not factor > 0:
                yield SpecError(f"expected numbers > 0, got {factor}", key=f"perturbation_factors[{i}]")
        if self.rescue_toward and not self.rescue:
            yield SpecError("moves knobs on a rescue, but rescue is false; expected rescue: true", key="rescue_toward")
        for key in self.rescue_toward:
            if key not in self.mutable:
                yield SpecError(f"{key!r} is not in mutable ({', '.join(self.mutable)}); expected mutable knobs, "
                                "each up or down", key=f"rescue_toward.{key}")

    def _toward_problems(self, sweep: SweepSpec) -> Iterator[SpecError]:
        """`rescue_toward` against the knob's dimension: a number is scaled by a factor, so
        `up` needs one > 1 (`down` one < 1) and a range without negative values; a choice
        moves one neighbour along its list, so a list of numbers must run from smallest to
        largest for `up` to raise the knob."""
        for key, direction in self.rescue_toward.items():
            dim = sweep.search_space.get(key)
            if key not in self.mutable or dim is None or dim.kind == "const":
                continue  # named by _problems or by the mutable check
            where = f"rescue_toward.{key}"
            if dim.kind in ("choice", "grid"):
                values = list(thaw(dim.args))
                numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
                if len(numbers) == len(values) and numbers != sorted(numbers):
                    yield SpecError(f"{direction} moves a choice to the {'next' if direction == 'up' else 'previous'} "
                                    f"value in its list, but search_space.{key} lists {values}, not ascending; "
                                    "expected its numbers from smallest to largest", key=where)
                continue
            low = dim.args[0]
            if low < 0:
                yield SpecError(f"{direction} scales the knob by a perturbation factor, which moves a negative value "
                                f"the other way, and search_space.{key} reaches {low:g}; expected a range of "
                                "numbers >= 0", key=where)
            factor, word, side = ((max(self.perturbation_factors, default=1), "largest", ">")
                                  if direction == "up" else (min(self.perturbation_factors, default=1), "smallest", "<"))
            if not (factor > 1 if direction == "up" else factor < 1):
                yield SpecError(f"{direction} multiplies by the {word} perturbation factor ({factor:g}), which is not "
                                f"{side} 1; expected a factor {side} 1 in perturbation_factors", key=where)

    def problems(self, sweep: SweepSpec) -> Iterator[SpecError]:
        for i, key in enumerate(self.mutable):
            dim = sweep.search_space.get(key)
            if dim is None:
                close = difflib.get_close_matches(key, list(sweep.search_space), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield SpecError(f"{key!r} is not a search_space key{hint}; PBT perturbs searched knobs only; "
                                f"expected one of {', '.join(sweep.search_space) or '(none: the search space is empty)'}",
                                key=f"mutable[{i}]")
            elif dim.kind == "const":
                yield SpecError(f"{key!r} is a constant in search_space; PBT perturbs a dimension "
                                "(uniform, loguniform, randint, choice or grid)", key=f"mutable[{i}]")
        yield from self._toward_problems(sweep)
        for name in ("perturbation_interval", "burn_in"):
            if getattr(self, name) > sweep.max_iterations:
                yield SpecError(f"must be <= max_iterations ({sweep.max_iterations}), got {getattr(self, name)}",
                                key=name)

    def build(self, sweep: SweepSpec) -> TrialScheduler:
        from collapsetune.schedulers import CollapsePBT

        mutations, limits = {}, {}
        for key in self.mutable:
            dim = sweep.search_space[key]
            if dim.kind in ("choice", "grid"):
                mutations[key] = list(thaw(dim.args))
            else:
                mutations[key] = dim.to_tune()
                low, high = dim.args
                limits[key] = (low, high - 1) if dim.kind == "randint" else (low, high)
        return CollapsePBT(time_attr="training_iteration", perturbation_interval=self.perturbation_interval,
                           burn_in_period=self.burn_in, hyperparam_mutations=mutations,
                           quantile_fraction=self.quantile_fraction,
                           resample_probability=self.resample_probability,
                           perturbation_factors=tuple(self.perturbation_factors), limits=limits,
                           rescue=self.rescue, rescue_toward=dict(self.rescue_toward), max_t=sweep.max_iterations,
                           settle=max((rule.after_copy(self.grace_after_copy).earliest_report
                                       for rule in sweep.collapse), default=0))

    def wrapper_problems(self, wrapper: type) -> list[SpecError]:
        """PBT copies checkpoints between trials: the wrapper must have state."""
        if has_state(wrapper):
            return []
        return [SpecError(f"pbt copies one trial's checkpoint into another, but {wrapper.__name__} has no "
                          "state_dict()/load_state_dict() (docs/extending.md); use asha or fifo", key="type")]


# type -> section. A new scheduler: a Section subclass above (or in its own module) and a line here.
SCHEDULERS: dict[str, type[Scheduler]] = {"asha": Asha, "fifo": Fifo, "pbt": Pbt}

__all__ = ["SCHEDULERS", "Asha", "Fifo", "Pbt", "Scheduler"]
