"""Helpers for the typed config dataclasses at every wrapper's boundary."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], values: Mapping[str, Any], owner: str) -> T:
    """Builds `cls(**values)`; an unknown key is a ValueError naming it and the valid ones.

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
        raise ValueError(f"unknown {owner} config key {unknown[0]!r}; valid keys: {valid}")
    return cls(**values)
