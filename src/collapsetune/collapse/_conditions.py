"""Conditions: what a collapse rule tests on one metric's values so far.

A condition is a small frozen object, written in a sweep file as a mapping with `metric`,
exactly one kind key, and optional modifiers:

    {metric: collapse/unique_tokens, below: 20}                          # Below
    {metric: collapse/subprompt_cos_max, above: 0.9}                     # Above
    {metric: collapse/unique_tokens, fell_from_best: 0.5}                # FellFromBest
    {metric: collapse/unique_tokens, below: 20,
     unless_improving: {by: 2, over: 3}}                                 # UnlessImproving(Below)

Conditions are pure: `holds(values)` looks at the metric's values reported so far (oldest
first, the current report last); the rule that owns them keeps the values, its patience and
its grace. A new kind is one class here with a `KIND` key, registered in `KINDS` (or
`MODIFIERS` for one that wraps another), and one test: `report`, the atlas and MLflow's notes
read rules through these classes (`text`, `threshold`, `falls`), so they need no edit.

A condition this version cannot read (a kind a newer version wrote into a results folder)
is read as `Unknown`: shown as such, never holding, never judged here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from collapsetune.errors import SpecError, raise_all

_TINY = 1e-12  # keeps margins finite around a threshold of 0


class Condition:
    """Base of every condition kind: one metric, a test on its values, and how to say why.

    Subclasses are frozen dataclasses with a `metric` field.
    """

    KIND: ClassVar[str]  # the YAML key that selects this kind
    metric: str

    @property
    def reports_needed(self) -> int:
        """Reports of the metric it must see before it can hold at all."""
        return 1

    def holds(self, values: Sequence[float]) -> bool:
        raise NotImplementedError

    def margin(self, values: Sequence[float]) -> float:
        """How far past the condition the latest value is, relative to its bound: > 0 while it
        holds, <= 0 when not (what Optuna's constraints and the atlas read)."""
        raise NotImplementedError

    def describe(self, values: Sequence[float]) -> str:
        raise NotImplementedError

    def to_yaml(self) -> dict:
        raise NotImplementedError

    # What readers of results show and draw (`report`, the atlas, MLflow's notes); the
    # defaults fit any kind, so a new kind needs to override them only to read better.

    falls: ClassVar[bool] = True  # collapse shows as the metric falling (False: rising)

    @property
    def threshold(self) -> float | None:
        """A fixed value of the metric it holds past, to draw as a line; None when its bound moves."""
        return None

    def bound(self) -> str:
        """What it says of the metric, as written: `< 20`, `fell 50% from its best`."""
        return ", ".join(f"{k} {v}" for k, v in self.to_yaml().items() if k != "metric")

    def text(self) -> str:
        """The condition as written: `collapse/unique_tokens < 20`."""
        return f"{self.metric} {self.bound()}"


def _latest(values: Sequence[float]) -> float:
    return float(values[-1]) if values else math.nan


@dataclass(frozen=True)
class Below(Condition):
    """The metric is under a value. Example: `Below("collapse/unique_tokens", 20)`.

    A NaN (the model could not be measured) is no evidence of collapse.
    """

    KIND: ClassVar[str] = "below"
    metric: str
    value: float

    def holds(self, values: Sequence[float]) -> bool:
        return _latest(values) < self.value  # False for NaN

    def margin(self, values: Sequence[float]) -> float:
        latest = _latest(values)
        return -math.inf if math.isnan(latest) else (self.value - latest) / max(abs(self.value), _TINY)

    def describe(self, values: Sequence[float]) -> str:
        return f"{self.metric}={_fmt(_latest(values))} < {_fmt(self.value)}"

    def to_yaml(self) -> dict:
        return {"metric": self.metric, "below": self.value}

    @property
    def threshold(self) -> float:
        return self.value

    def bound(self) -> str:
        return f"< {_fmt(self.value)}"


@dataclass(frozen=True)
class Above(Condition):
    """The metric is over a value. Example: `Above("collapse/subprompt_cos_max", 0.9)`."""

    KIND: ClassVar[str] = "above"
    metric: str
    value: float

    def holds(self, values: Sequence[float]) -> bool:
        return _latest(values) > self.value

    def margin(self, values: Sequence[float]) -> float:
        latest = _latest(values)
        return -math.inf if math.isnan(latest) else (latest - self.value) / max(abs(self.value), _TINY)

    def describe(self, values: Sequence[float]) -> str:
        return f"{self.metric}={_fmt(_latest(values))} > {_fmt(self.value)}"

    def to_yaml(self) -> dict:
        return {"metric": self.metric, "above": self.value}

    falls: ClassVar[bool] = False

    @property
    def threshold(self) -> float:
        return self.value

    def bound(self) -> str:
        return f"> {_fmt(self.value)}"


@dataclass(frozen=True)
class FellFromBest(Condition):
    """The metric (higher = healthier) fell by `fraction` of its best value so far.

    Example: `FellFromBest("collapse/unique_tokens", 0.5)` holds at 12 after a best of 30.
    """

    KIND: ClassVar[str] = "fell_from_best"
    metric: str
    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise SpecError(f"fell_from_best is a fraction of the best value, in (0, 1), got {self.fraction}",
                            key=self.KIND)

    @property
    def reports_needed(self) -> int:
        return 2  # a best before the current report

    def _line(self, values: Sequence[float]) -> tuple[float, float]:
        """(best before the latest report, the value at or under which it holds)."""
        earlier = [v for v in values[:-1] if not math.isnan(v)]
        best = max(earlier) if earlier else math.nan
        return best, (1.0 - self.fraction) * best

    def holds(self, values: Sequence[float]) -> bool:
        best, line = self._line(values)
        return best > 0 and _latest(values) <= line

    def margin(self, values: Sequence[float]) -> float:
        best, line = self._line(values)
        latest = _latest(values)
        if math.isnan(best) or math.isnan(latest) or best <= 0:
            return -math.inf
        return (line - latest) / max(abs(best), _TINY)

    def describe(self, values: Sequence[float]) -> str:
        best, _ = self._line(values)
        fell = 1.0 - _latest(values) / best if best else math.nan
        return f"{self.metric}={_fmt(_latest(values))} fell {fell:.0%} from its best {_fmt(best)}"

    def to_yaml(self) -> dict:
        return {"metric": self.metric, "fell_from_best": self.fraction}

    def bound(self) -> str:
        return f"fell {self.fraction:.0%} from its best"


@dataclass(frozen=True)
class UnlessImproving(Condition):
    """A threshold that holds only while the metric is not recovering: past the bound and
    not moved towards health by at least `by` over the last `over` reports. It waits out a
    collapse that is lifting, and still catches one that lasts.

    Example: below 20 unless improving by 2 over 3 reports holds at 6, 6, 7, 7 (up 1).
    """

    KIND: ClassVar[str] = "unless_improving"
    inner: Below | Above
    by: float
    over: int

    def __post_init__(self) -> None:
        problems = []
        if not self.by > 0:
            problems.append(SpecError(f"by must be > 0, got {self.by}", key=f"{self.KIND}.by"))
        if self.over < 1:
            problems.append(SpecError(f"over must be >= 1 (reports), got {self.over}", key=f"{self.KIND}.over"))
        raise_all(problems)

    @property
    def metric(self) -> str:  # type: ignore[override]
        return self.inner.metric

    @property
    def reports_needed(self) -> int:
        return self.over + 1

    def _gain(self, values: Sequence[float]) -> float:
        """How far the metric moved towards health over the last `over` reports."""
        if len(values) <= self.over:
            return math.nan
        change = float(values[-1]) - float(values[-1 - self.over])
        return change if isinstance(self.inner, Below) else -change

    def holds(self, values: Sequence[float]) -> bool:
        gain = self._gain(values)
        return self.inner.holds(values) and not math.isnan(gain) and gain < self.by

    def margin(self, values: Sequence[float]) -> float:
        gain = self._gain(values)
        stalled = -math.inf if math.isnan(gain) else (self.by - gain) / self.by
        return min(self.inner.margin(values), stalled)

    def describe(self, values: Sequence[float]) -> str:
        gain = self._gain(values)
        return f"{self.inner.describe(values)}, improving {_fmt(gain)} over {self.over} reports (< {_fmt(self.by)})"

    def to_yaml(self) -> dict:
        return {**self.inner.to_yaml(), "unless_improving": {"by": self.by, "over": self.over}}

    @property
    def falls(self) -> bool:  # type: ignore[override]
        return self.inner.falls

    @property
    def threshold(self) -> float | None:
        return self.inner.threshold

    def bound(self) -> str:
        return f"{self.inner.bound()} unless improving by {_fmt(self.by)} over {self.over} reports"


@dataclass(frozen=True)
class Unknown(Condition):
    """A condition this version cannot read, kept as written: a kind a newer version wrote
    into a results folder, or a form it does not know. It never holds, so a rule holding one
    never fires here and is not replayed; readers show it as unknown.

    Example:
        >>> Unknown("collapse/entropy", {"metric": "collapse/entropy", "trend": -0.1}).text()
        'collapse/entropy (unknown rule kind: trend)'
    """

    KIND: ClassVar[str] = "unknown"
    metric: str
    raw: Any = field(default=None, compare=False)  # the YAML as written

    def holds(self, values: Sequence[float]) -> bool:
        return False

    def margin(self, values: Sequence[float]) -> float:
        return -math.inf

    def describe(self, values: Sequence[float]) -> str:
        return self.text()

    def to_yaml(self) -> Any:
        return self.raw

    def bound(self) -> str:
        keys = [str(k) for k in self.raw if k != "metric"] if isinstance(self.raw, Mapping) else []
        return f"(unknown rule kind: {', '.join(keys) or _show(self.raw)})"

    def text(self) -> str:
        return f"{self.metric} {self.bound()}" if self.metric else self.bound()


KINDS: dict[str, type[Condition]] = {"below": Below, "above": Above, "fell_from_best": FellFromBest}
MODIFIERS: dict[str, type[Condition]] = {"unless_improving": UnlessImproving}
FORM = ("{metric, " + "|".join(KINDS) + ": value, " + "?, ".join(MODIFIERS) + "?: {by, over}}")


def parse_condition(raw: Any, also: Sequence[str] = ()) -> Condition:
    """A condition from its YAML mapping; SpecError naming the key and the expected form.
    `also`: the other keys valid beside it (a rule's patience and grace), for did-you-mean."""
    from collapsetune.spec._base import number, show, unknown_key

    if not isinstance(raw, Mapping):
        raise SpecError(f"expected a condition {FORM}, got {show(raw)}")
    valid = ["metric", *KINDS, *MODIFIERS]
    errors = [unknown_key(k, [*valid, *also]) for k in raw if k not in valid]
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        errors.append(SpecError(f"expected a metric name such as collapse/unique_tokens, got {show(metric)}",
                                key="metric"))
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        got = "none" if not kinds else ", ".join(kinds)
        errors.append(SpecError(f"a condition needs exactly one of {', '.join(KINDS)}, got {got}"))
    raise_all(errors)
    kind = kinds[0]
    value = number(raw[kind])
    if value is None:
        raise SpecError(f"expected a number, got {show(raw[kind])}", key=kind)
    condition: Condition = KINDS[kind](metric, value)
    if "unless_improving" in raw:
        condition = _unless_improving(condition, raw["unless_improving"])
    return condition


def read_condition(raw: Any) -> Condition:
    """A condition as a results folder holds it, never failing: one this version cannot
    parse (a kind a newer version wrote) is `Unknown`, keeping its metric."""
    try:
        return parse_condition(raw)
    except SpecError:
        metric = raw.get("metric") if isinstance(raw, Mapping) else None
        return Unknown(metric if isinstance(metric, str) else "", raw)


def _unless_improving(inner: Condition, raw: Any) -> Condition:
    from collapsetune.spec._base import number, show, unknown_key

    key = "unless_improving"
    if not isinstance(inner, (Below, Above)):
        raise SpecError(f"applies to below or above, not {inner.KIND}", key=key)
    if not isinstance(raw, Mapping) or set(raw) != {"by", "over"}:
        extra = [unknown_key(k, ["by", "over"]).within(key) for k in (raw if isinstance(raw, Mapping) else ())
                 if k not in ("by", "over")]
        raise_all(extra or [SpecError(f"expected {{by: a number, over: reports}}, got {show(raw)}", key=key)])
    by, over = number(raw["by"]), raw["over"]
    errors = []
    if by is None:
        errors.append(SpecError(f"expected a number, got {show(raw['by'])}", key=f"{key}.by"))
    if not isinstance(over, int) or isinstance(over, bool):
        errors.append(SpecError(f"expected an integer number of reports, got {show(over)}", key=f"{key}.over"))
    raise_all(errors)
    return UnlessImproving(inner, by, over)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _show(raw: Any) -> str:
    return str(raw)[:80]
