"""Atomic cache writes: several Ray workers may build the same cached file at once
(`collapsetune._atomic`, which the pictures use too without importing the data package)."""

from __future__ import annotations

from collapsetune._atomic import atomic_path

__all__ = ["atomic_path"]
