"""Collapse rules, the verdict they produce, and the stopper that acts on it."""

from __future__ import annotations

from collapsetune.collapse._rules import (
    COLLAPSED,
    DIVERGED,
    ERROR,
    HEALTHY,
    CollapseMonitor,
    CollapseRule,
    Threshold,
    Verdict,
)
from collapsetune.collapse._stopper import ITERATION_KEY, REASON_KEY, STATUS_KEY, CollapseStopper

__all__ = [
    "COLLAPSED",
    "DIVERGED",
    "ERROR",
    "HEALTHY",
    "ITERATION_KEY",
    "REASON_KEY",
    "STATUS_KEY",
    "CollapseMonitor",
    "CollapseRule",
    "CollapseStopper",
    "Threshold",
    "Verdict",
]
