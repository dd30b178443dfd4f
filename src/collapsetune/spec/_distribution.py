"""One search dimension: `{loguniform: [1e-4, 1e-2]}` in YAML, a Ray Tune domain at launch."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collapsetune.errors import SpecError
from collapsetune.spec._base import freeze, number, show, thaw

RANGES = ("uniform", "loguniform", "randint")
KINDS = (*RANGES, "choice", "grid", "const")
ALIASES = {"int": "randint"}  # `int` reads naturally in YAML; tune calls it randint


@dataclass(frozen=True)
class Distribution:
    """A search dimension.

    Attributes:
        kind: uniform | loguniform | randint | choice | grid | const ("int" is read as randint).
        args: [low, high] for the ranges (randint's high is exclusive, as in tune.randint),
            the values for choice and grid, (value,) for const.

    Example:
        >>> d = Distribution.from_yaml({"loguniform": [1e-4, 1e-2]})
        >>> d.kind, d.args
        ('loguniform', (0.0001, 0.01))
        >>> Distribution.from_yaml(0.01)
        Distribution(kind='const', args=(0.01,))
    """

    kind: str  # one of KINDS
    args: tuple  # bounds, values, or (value,) for const; frozen

    def __post_init__(self) -> None:
        kind = ALIASES.get(self.kind, self.kind)
        if kind not in KINDS:
            raise _unknown(self.kind)
        args = self.args
        if kind in RANGES:
            args = _bounds(kind, args)
        elif not isinstance(args, (list, tuple)) or not args:
            form = "(value,)" if kind == "const" else "a non-empty list of values"
            raise SpecError(f"{kind} expects {form}, got {show(args)}")
        elif kind == "const" and len(args) != 1:
            raise SpecError(f"const expects (value,), got {show(args)}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "args", freeze(tuple(args)))

    @classmethod
    def from_yaml(cls, raw: Any) -> Distribution:
        """A one-key `{kind: args}` mapping is a distribution; any other value is a constant."""
        if isinstance(raw, Distribution):
            return raw
        if isinstance(raw, Mapping):
            names = [k for k in raw if k in KINDS or k in ALIASES]
            if len(raw) == 1 and names:
                args = raw[names[0]]
                return cls(names[0], (args,) if names[0] == "const" else args)
            if len(raw) == 1:  # a one-key mapping is almost surely a misspelt distribution
                raise _unknown(next(iter(raw)))
            if names:
                raise SpecError(f"a distribution mapping has exactly one key, got {', '.join(map(str, raw))}")
        return cls("const", (raw,))

    def to_yaml(self) -> Any:
        if self.kind != "const":
            return {self.kind: thaw(self.args)}
        value = thaw(self.args[0])
        return {"const": value} if isinstance(value, Mapping) else value  # a dict must not read as a distribution

    def to_tune(self) -> Any:
        """The Ray Tune domain (or the plain value for const)."""
        from ray import tune  # imported late: loading a spec must not pay for Ray

        values = thaw(self.args)
        if self.kind == "const":
            return values[0]
        if self.kind == "grid":
            return tune.grid_search(values)
        if self.kind == "choice":
            return tune.choice(values)
        return getattr(tune, self.kind)(*values)

    def check(self, value: Any) -> None:
        """SpecError unless `value` is one this dimension can produce (for points_to_evaluate)."""
        if self.kind in ("choice", "grid") and freeze(value) not in self.args:
            raise SpecError(f"expected one of the {self.kind} values {show(self.args)}, got {show(value)}")
        if self.kind in RANGES:
            low, high = self.args
            is_int = isinstance(value, int) and not isinstance(value, bool)
            x = number(value) if self.kind != "randint" or is_int else None
            inside = x is not None and (low <= x < high if self.kind == "randint" else low <= x <= high)
            if not inside:
                bounds = f"[{low}, {high})" if self.kind == "randint" else f"[{low}, {high}]"
                raise SpecError(f"expected a value in {self.kind} {bounds}, got {show(value)}")


def _bounds(kind: str, args: Any) -> tuple:
    form = "[low, high) integers" if kind == "randint" else "[low, high] numbers"
    if not isinstance(args, (list, tuple)) or len(args) != 2:
        raise SpecError(f"{kind} expects {form} with low < high, got {show(args)}")
    if kind == "randint":
        ok = all(isinstance(a, int) and not isinstance(a, bool) for a in args)
        low, high = args if ok else (None, None)
    else:
        low, high = number(args[0]), number(args[1])
    if low is None or high is None:
        raise SpecError(f"{kind} expects {form} with low < high, got {show(args)}")
    if kind == "loguniform" and (low <= 0 or high <= 0):
        raise SpecError(f"loguniform bounds must be > 0, got [{low}, {high}]")
    if low >= high:
        raise SpecError(f"{kind} expects {form} with low < high, got [{low}, {high}]")
    return (low, high)


def _unknown(name: Any) -> SpecError:
    valid = [*KINDS, *ALIASES]
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(
        f"unknown distribution {show(name)}{hint}; expected a one-key mapping with one of "
        f"{', '.join(valid)}, e.g. {{loguniform: [1.0e-4, 1.0e-2]}}"
    )
