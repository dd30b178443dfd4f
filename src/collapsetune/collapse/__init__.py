"""Collapse rules, their conditions, the verdict they produce, and the stopper that acts on it.

The stoppers need Ray; everything else here does not, so `collapsetune validate` (which
parses rules) never imports Ray: `CollapseStopper` and `ForecastStopper` are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from collapsetune.collapse._conditions import (
    KINDS,
    MODIFIERS,
    Above,
    Below,
    Condition,
    FellFromBest,
    UnlessImproving,
    parse_condition,
)
from collapsetune.collapse._rules import (
    COLLAPSED,
    DIVERGED,
    ERROR,
    HEALTHY,
    INCONCLUSIVE,
    STOPPING,
    CollapseMonitor,
    CollapseRule,
    Rule,
    Verdict,
)

STATUS_KEY = "collapse.status"
REASON_KEY = "collapse.reason"
ITERATION_KEY = "collapse.iteration"
MARGIN_KEY = "collapse/margin"

__all__ = [
    "COLLAPSED",
    "DIVERGED",
    "ERROR",
    "HEALTHY",
    "INCONCLUSIVE",
    "ITERATION_KEY",
    "KINDS",
    "MARGIN_KEY",
    "MODIFIERS",
    "REASON_KEY",
    "STATUS_KEY",
    "STOPPING",
    "Above",
    "Below",
    "CollapseMonitor",
    "CollapseRule",
    "CollapseStopper",
    "Condition",
    "FellFromBest",
    "ForecastStopper",
    "Rule",
    "UnlessImproving",
    "Verdict",
    "parse_condition",
]


def __getattr__(name: str) -> Any:
    if name in ("CollapseStopper", "ForecastStopper"):
        from collapsetune.collapse import _stopper

        return getattr(_stopper, name)
    raise AttributeError(f"module 'collapsetune.collapse' has no attribute {name!r}")
