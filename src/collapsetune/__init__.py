"""collapsetune: Ray Tune sweeps that stop a trial the moment its model collapses."""

from __future__ import annotations

__version__ = "0.1.0"
