"""Collapse metrics of a set of outputs: how many are distinct, how much the commonest takes.

``outputs`` is either a tensor, whose rows (dim 0) are the outputs (class ids (N,),
token sequences (N, T), images (N, C, H, W)), or a list of hashable outputs (texts, ids);
lists inside it (word or token lists) compare as tuples.

Example:
    >>> unique_outputs(["a cat", "a cat", "a dog"]), top_output_share(torch.tensor([3, 3, 3, 1]))
    (0.6666666666666666, 0.75)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import torch

__all__ = ["top_output_share", "unique_outputs"]

Outputs = torch.Tensor | Sequence[Hashable] | Sequence[Sequence[Hashable]]


def _key(item: object, i: int) -> Hashable:
    if isinstance(item, torch.Tensor):
        item = item.tolist()
    if isinstance(item, float) and math.isnan(item):
        raise ValueError(f"outputs[{i}] is NaN, which equals nothing, not even itself")
    if isinstance(item, list):
        return tuple(_key(x, i) for x in item)
    try:
        hash(item)
    except TypeError:
        raise ValueError(f"outputs[{i}] must be hashable, a list or a tensor, got {type(item).__name__}") from None
    return item  # type: ignore[return-value]


def _counts(outputs: Outputs) -> tuple[torch.Tensor | list[int], int]:
    """How often each distinct output occurs, and how many outputs there are."""
    if isinstance(outputs, torch.Tensor):
        if outputs.dim() == 0 or outputs.shape[0] == 0:
            raise ValueError(f"outputs is empty: need at least one row, got shape {tuple(outputs.shape)}")
        if outputs.is_floating_point() and torch.isnan(outputs).any():
            raise ValueError("outputs holds NaN, which equals nothing, not even itself")
        rows = outputs.reshape(len(outputs), -1)
        return torch.unique(rows, dim=0, return_counts=True)[1], len(rows)
    if isinstance(outputs, str):
        raise ValueError("outputs must be a list of outputs, got one str (wrap it in a list)")
    keys = [_key(o, i) for i, o in enumerate(outputs)]
    if not keys:
        raise ValueError("outputs is empty: need at least one output")
    return list(Counter(keys).values()), len(keys)


@torch.no_grad()
def unique_outputs(outputs: Outputs) -> float:
    """Share of distinct outputs, in [1/N, 1]: 1/N when every input gets the same output."""
    counts, n = _counts(outputs)
    return len(counts) / n


@torch.no_grad()
def top_output_share(outputs: Outputs) -> float:
    """Share of inputs that get the most frequent output, in [1/N, 1]; 1 is collapsed."""
    counts, n = _counts(outputs)
    return float(max(counts)) / n
