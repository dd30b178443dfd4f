"""The Pareto front: the points no other point beats on every objective.

Example:
    >>> front([(1.0, 5.0), (2.0, 2.0), (3.0, 4.0), (1.5, 6.0)], ["min", "max"])
    [0, 3]
"""

from __future__ import annotations

from collections.abc import Sequence


def front(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in their order. `modes[i]` says whether lower
    (`min`) or higher (`max`) is better on objective i; equal points are all kept."""
    if any(mode not in ("min", "max") for mode in modes):
        raise ValueError(f"modes must be min or max, got {list(modes)}")
    signs = [1.0 if mode == "max" else -1.0 for mode in modes]
    scored = [[s * v for s, v in zip(signs, p)] for p in points]

    def beats(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [i for i, p in enumerate(scored) if not any(beats(q, p) for q in scored)]
