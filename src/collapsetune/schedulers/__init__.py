"""The Ray Tune side of collapsetune's schedulers; their sweep-file sections and the
registry by `scheduler.type` are in `collapsetune.spec._schedulers` (no Ray import there).

A new scheduler: a section class and a registry line in `spec/_schedulers.py`, its Ray
scheduler in a module here, a test in tests/test_scheduler*.py, and a row in
docs/sweep-format.md.
"""

from __future__ import annotations

from collapsetune.schedulers._asha import CollapseASHA
from collapsetune.schedulers._pbt import CollapsePBT
from collapsetune.spec._schedulers import SCHEDULERS, Asha, Fifo, Pbt, Scheduler

__all__ = ["SCHEDULERS", "Asha", "CollapseASHA", "CollapsePBT", "Fifo", "Pbt", "Scheduler"]
