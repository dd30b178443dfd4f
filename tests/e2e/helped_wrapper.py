"""A wrapper that imports a helper package beside it, as real projects do: on a cluster the
helper must reach the worker nodes along with the wrapper."""

from __future__ import annotations

import toy_helpers
from outside_wrapper import Toy


class Helped(Toy):
    def step(self) -> dict[str, float]:
        metrics = super().step()
        metrics["helper/answer"] = toy_helpers.answer()
        return metrics
