"""Shared argument checks for the regularizer constructors."""

from __future__ import annotations

import math


def check_nonneg(name: str, value: float) -> float:
    """Return ``value`` as float, or raise ValueError naming ``name`` and what it got."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)
