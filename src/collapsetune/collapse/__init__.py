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
    Unknown,
    parse_condition,
    read_condition,
)
from collapsetune.collapse._rules import (
    COLLAPSED,
    COLLAPSING,
    DIVERGED,
    ERROR,
    HEALTHY,
    INCONCLUSIVE,
    OUTCOMES,
    RUNNING,
    STOPPING,
    UNJUDGED,
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
    "COLLAPSING",
    "DIVERGED",
    "ERROR",
    "HEALTHY",
    "INCONCLUSIVE",
    "ITERATION_KEY",
    "KINDS",
    "MARGIN_KEY",
    "MODIFIERS",
    "OUTCOMES",
    "REASON_KEY",
    "RUNNING",
    "STATUS_KEY",
    "STOPPING",
    "UNJUDGED",
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
    "Unknown",
    "Verdict",
    "parse_condition",
    "read_condition",
]


def __getattr__(name: str) -> Any:
    if name in ("CollapseStopper", "ForecastStopper"):
        from collapsetune.collapse import _stopper

        return getattr(_stopper, name)
    raise AttributeError(f"module 'collapsetune.collapse' has no attribute {name!r}")
