"""Small tests on values that several modules make alike: is it a number, is it a report
worth a picture. One definition each, so the spec, the results reader and the writers agree."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["is_finite_number", "is_number", "log_spaced"]


def is_number(value: Any, integer: bool = False) -> bool:
    """An int or float (an int only, with `integer`), never a bool.

    Example:
        >>> is_number(1.5), is_number(True), is_number(2, integer=True), is_number(2.0, integer=True)
        (True, False, True, False)
    """
    return isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A number that is neither NaN nor infinite.

    Example:
        >>> is_finite_number(3), is_finite_number(float("nan")), is_finite_number("3")
        (True, False, False)
    """
    return is_number(value) and math.isfinite(value)


def log_spaced(report: int) -> bool:
    """Reports 1, 2, 4, 8, ...: pictures of a trial's whole course at log cost.

    Example:
        >>> [n for n in range(1, 20) if log_spaced(n)]
        [1, 2, 4, 8, 16]
    """
    return report & (report - 1) == 0
