"""Type-hint driven checking shared by every spec dataclass.

A spec dataclass declares its fields with plain type hints; `Section.__post_init__` coerces
each field to its hint (so a hand-built object is checked exactly like YAML) and then runs
the class's own range checks. `from_yaml` adds what only YAML has: unknown and missing keys.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, Literal, Union

from collapsetune.errors import SpecError, raise_all


class FrozenMap(Mapping):
    """A read-only, hashable, picklable dict (MappingProxyType cannot be pickled for Ray).

    Example:
        >>> m = FrozenMap({"d_model": 64})
        >>> m["d_model"], dict(m)
        (64, {'d_model': 64})
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __reduce__(self):
        return FrozenMap, (self._data,)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def freeze(value: Any) -> Any:
    """Deep read-only copy: mappings become FrozenMap, lists tuples."""
    if isinstance(value, Mapping):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain YAML-able data back from frozen data (and from spec objects via their to_yaml)."""
    if hasattr(value, "to_yaml"):
        return value.to_yaml()
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(thaw(value))
    return text if len(text) <= 80 else text[:77] + "..."


def kind_of(value: Any) -> str:
    """What a value is, in YAML words, without showing it (for text that may not be the user's)."""
    if value is None:
        return "null (an empty document)"
    for types_, word in ((bool, "true or false"), ((int, float), "a number"), (str, "a single string"),
                         ((list, tuple), "a list"), (Mapping, "a mapping")):
        if isinstance(value, types_):
            return word
    return type(value).__name__


def number(value: Any) -> float | None:
    """A finite float from a number or a numeric string ("1e-4" is a str in YAML 1.1), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        result = float(value)
    except (ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def unknown_key(key: Any, valid: list[str]) -> SpecError:
    close = difflib.get_close_matches(str(key), valid, n=1) or [v for v in valid if v.startswith(str(key))][:1]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(f"unknown key{hint}; valid keys: {', '.join(valid)}", key=str(key))


def describe(tp: Any) -> str:
    """The expected form of a type hint, in YAML words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args if a is not type(None)) + " or null"
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        return "a list"
    if origin in (Mapping, dict) or (isinstance(tp, type) and hasattr(tp, "yaml_keys")):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            Path: "a path"}.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any) -> Any:
    """`value` converted to type hint `tp`; SpecError naming the expected form otherwise."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return freeze(value)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        try:
            return coerce(value, inner)
        except SpecError as exc:
            if exc.key is None and exc.message.startswith("expected "):
                raise SpecError(f"expected {describe(tp)}, got {show(value)}") from None
            raise
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"expected {describe(tp)}, got {show(value)}")
        return tuple(_each([(f"[{i}]", v) for i, v in enumerate(value)], args[0]).values())
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise SpecError(f"expected {describe(tp)}, got {show(value)}")
        bad = [k for k in value if not isinstance(k, str)]
        raise_all(SpecError(f"keys must be strings, got {show(k)}", key=str(k)) for k in bad)
        return FrozenMap(_each(list(value.items()), args[1]))
    if hasattr(tp, "from_yaml"):
        return value if isinstance(value, tp) else tp.from_yaml(value)
    result = _scalar(value, tp, args if origin is Literal else ())
    if result is _MISSING:
        raise SpecError(f"expected {describe(tp)}, got {show(value)}")
    return result


_MISSING = object()


def _scalar(value: Any, tp: Any, literals: tuple) -> Any:
    if literals:
        return value if isinstance(value, str) and value in literals else _MISSING
    if tp is float:
        result = number(value)
        return _MISSING if result is None else result
    if tp is int:  # bool is an int in Python, never in a sweep file
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISSING
    if tp is Path:
        return Path(value) if isinstance(value, (str, Path)) else _MISSING
    return value if isinstance(value, tp) else _MISSING


def _each(items: list[tuple[Any, Any]], tp: Any) -> dict:
    """Coerce every (key, value), collecting all errors before raising."""
    out, errors = {}, []
    for key, value in items:
        try:
            out[key] = coerce(value, tp)
        except SpecError as exc:
            errors.append(exc.within(str(key)))
    raise_all(errors)
    return out


class Section:
    """Mixin for frozen spec dataclasses: coerce fields to their hints, then `_problems()`."""

    def __post_init__(self) -> None:
        errors = []
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, self.check_field(f.name, getattr(self, f.name)))
            except SpecError as exc:
                errors.append(exc)
        raise_all(errors)  # cross-field checks need every field well-formed
        raise_all(self._problems())

    @classmethod
    def check_field(cls, name: str, value: Any) -> Any:
        """`value` coerced to field `name`'s hint and checked against its bound; errors keyed by `name`."""
        try:
            value = coerce(value, _hints(cls)[name])
        except SpecError as exc:
            raise exc.within(name) from None
        limits = {f.name: f.metadata for f in fields(cls)}[name]
        ge, gt, le = limits.get("ge"), limits.get("gt"), limits.get("le")
        if value is not None and ((ge is not None and value < ge) or (gt is not None and value <= gt)):
            bound = f">= {ge}" if ge is not None else f"> {gt}"
            raise SpecError(f"{name} must be {bound}, got {value}", key=name)
        if value is not None and le is not None and value > le:
            raise SpecError(f"{name} must be <= {le:_}, got {value:_}", key=name)
        form = limits.get("form")
        if value is not None and form is not None and (problem := form(value)):
            raise SpecError(problem, key=name)
        return value

    def _problems(self) -> Iterator[SpecError]:
        """Range and cross-field checks; each error keyed by its field."""
        return iter(())

    @classmethod
    def yaml_keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.metadata.get("yaml", True)]

    @classmethod
    def from_yaml(cls, raw: Any, **extra: Any) -> Section:
        """Build from a YAML mapping: unknown keys and missing required keys are errors."""
        keys = cls.yaml_keys()
        if not isinstance(raw, Mapping):
            raise SpecError(f"expected a mapping with keys {', '.join(keys)}, got {show(raw)}")
        required = [f.name for f in fields(cls) if f.name in keys and _required(f)]
        errors = [unknown_key(k, keys) for k in raw if k not in keys]
        errors += [SpecError("required key is missing", key=k) for k in required if k not in raw]
        if errors:  # still check the known keys, so one run reports everything
            raise_all(errors + cls.field_errors({k: v for k, v in raw.items() if k in keys}))
        return cls(**raw, **extra)

    @classmethod
    def field_errors(cls, values: Mapping[str, Any]) -> list[SpecError]:
        """Every per-field problem in `values` (no cross-field checks)."""
        errors = []
        for name, value in values.items():
            try:
                cls.check_field(name, value)
            except SpecError as exc:
                errors.append(exc)
        return errors

    def to_yaml(self) -> dict:
        return {k: thaw(getattr(self, k)) for k in self.yaml_keys()}


def limited(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None) -> Any:
    """A dataclass field with a default and bounds checked by Section (`ge`: >=, `gt`: >, `le`: <=)."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le})


def formed(form: Callable[[Any], str | None], default: Any = MISSING) -> Any:
    """A dataclass field whose value `form(value)` checks once it has its type: None when the
    value is well formed, else what is wrong and the expected form (e.g. a URI's scheme)."""
    return field(default=default, metadata={"form": form})


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:  # resolving string annotations is slow; classes never change
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]
