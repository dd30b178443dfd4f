"""Helpers for the typed config dataclasses at every wrapper's boundary."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

__all__ = ["check_fields", "expected_form", "field_hints", "fits", "from_dict", "unknown_key_hint"]

T = TypeVar("T")


def from_dict(cls: type[T], values: Mapping[str, Any], owner: str) -> T:
    """Builds `cls(**values)` after checking every key exists and every value has its field's type.

    Raises:
        ValueError: an unknown key (named, with a did-you-mean and the valid keys), or a value
            of the wrong type (`d_model: 'big'`), naming the key and the expected form.

    Example:
        >>> @dataclasses.dataclass
        ... class Cfg:
        ...     lr: float = 0.1
        >>> from_dict(Cfg, {"lr": 0.2}, "toy")
        Cfg(lr=0.2)
    """
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in valid]
    if unknown:
        raise ValueError(f"unknown {owner} config key {unknown[0]!r}{unknown_key_hint(unknown[0], valid)}; "
                         f"valid keys: {valid}")
    hints = field_hints(cls)
    for key, value in values.items():
        if not fits(value, hints[key]):
            raise ValueError(f"{owner} config key {key!r} expects {expected_form(hints[key])}, got {value!r}")
    return cls(**values)


def unknown_key_hint(key: str, valid: list[str]) -> str:
    """' (did you mean 'lr'?)' for a close valid key, else ''."""
    close = difflib.get_close_matches(str(key), valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@functools.cache  # resolving string annotations is slow; classes never change
def field_hints(cls: type) -> dict[str, Any]:
    """Each field's type hint, resolved (config modules use `from __future__ import annotations`);
    `Any`, so unchecked, where a hint cannot be resolved (a name imported only for type checkers)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # NameError and friends from the user's annotations: check nothing, crash nothing
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` is of type hint `hint`, as a sweep file can write it.

    A bool is not a number and an int is a float; numpy scalars count, since Tune's samplers
    may return them. Hints other than scalars, unions, Literal and tuples are not checked.

    Example:
        >>> fits(64, int), fits(0.5, int), fits(None, str | None), fits(True, float)
        (True, False, True, False)
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(value is None if a is type(None) else fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin in (tuple, list):
        return isinstance(value, (tuple, list))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def expected_form(hint: Any) -> str:
    """A type hint in sweep-file words: `int | None` -> 'an integer or null'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else expected_form(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (tuple, list):
        return "a list"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def check_fields(config: Any) -> None:
    """ValueError naming the first field of dataclass instance `config` whose value is not of
    its type (a Literal field: not one of its choices). Call it first in `__post_init__`.

    Example:
        >>> @dataclasses.dataclass
        ... class Cfg:
        ...     decode: Literal["greedy", "top_p"] = "greedy"
        ...     def __post_init__(self): check_fields(self)
        >>> Cfg("beam")
        Traceback (most recent call last):
        ...
        ValueError: decode must be one of greedy, top_p, got 'beam'
    """
    hints = field_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not fits(value, hints[f.name]):
            raise ValueError(f"{f.name} must be {expected_form(hints[f.name])}, got {value!r}")
