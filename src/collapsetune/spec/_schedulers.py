"""Trial schedulers by `scheduler.type`, each with its own section of the sweep file.

A scheduler is one small config class here (a frozen spec `Section`, no Ray import, so that
`collapsetune validate` stays fast) registered in `SCHEDULERS`, whose `build(sweep)` makes
the Ray Tune scheduler; the Ray side lives in `collapsetune.schedulers`, imported then.

A scheduler that rescues collapsed trials (`rescues_collapsed = True`) is consulted before
any is stopped: the stopper then leaves collapsed and diverged trials to it, and it either
takes one over (e.g. PBT copies a healthy trial into it) or stops it itself.

Example:
    >>> Scheduler.from_yaml({"type": "asha", "grace_period": 3})
    Asha(type='asha', grace_period=3, reduction_factor=3.0)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from collapsetune.errors import SpecError
from collapsetune.spec._base import Section, limited, show

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

    from collapsetune.spec import SweepSpec


class Scheduler(Section):
    """Base of the scheduler sections; `from_yaml` picks the class by `type`."""

    rescues_collapsed: ClassVar[bool] = False

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
    grace_period: int = limited(1, ge=1)  # reports before a trial can be cut for a poor objective
    reduction_factor: float = limited(3, gt=1)  # keep 1/reduction_factor of the trials at each rung

    def build(self, sweep: SweepSpec) -> TrialScheduler:
        from collapsetune.schedulers import CollapseASHA

        return CollapseASHA(time_attr="training_iteration", max_t=sweep.max_iterations,
                            grace_period=self.grace_period, reduction_factor=self.reduction_factor)

    def problems(self, sweep: SweepSpec) -> Iterator[SpecError]:
        if self.grace_period > sweep.max_iterations:
            yield SpecError(f"must be <= max_iterations ({sweep.max_iterations}), got {self.grace_period}",
                            key="grace_period")

    def advice(self, sweep: SweepSpec) -> list[SpecError]:
        """An ASHA rung before the collapse rules can fire compares healthy trials with trials
        not yet known to be collapsed, whose loss is often the lowest."""
        if not sweep.collapse:
            return []
        latest = max(rule.earliest_report for rule in sweep.collapse)
        if self.grace_period >= latest:
            return []
        return [SpecError(
            f"{self.grace_period} comes before report {latest} (the earliest a collapse rule can fire: its "
            f"grace + patience, plus the reports its conditions need), so ASHA may cut healthy trials for "
            f"losing to trials that are collapsing; set grace_period >= {latest}", key="grace_period")]


# type -> section. A new scheduler: a Section subclass above (or in its own module) and a line here.
SCHEDULERS: dict[str, type[Scheduler]] = {"asha": Asha, "fifo": Fifo}

__all__ = ["SCHEDULERS", "Asha", "Fifo", "Scheduler"]
