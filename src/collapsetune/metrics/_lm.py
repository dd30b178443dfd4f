"""Collapse metrics for language models: pure functions, tensors or lists in, float out."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

Seqs = torch.Tensor | Sequence[Sequence[int]]


def _as_lists(seqs: Seqs) -> list[list[int]]:
    if isinstance(seqs, torch.Tensor):
        if seqs.dim() == 1:
            seqs = seqs.unsqueeze(0)
        return seqs.tolist()
    return [list(map(int, s)) for s in seqs]


@torch.no_grad()
def argmax_unique(logits: torch.Tensor) -> float:
    """Number of distinct argmax tokens over all positions of logits (..., V).

    This is what seeds/003 counted on teacher-forced batches.
    """
    return float(logits.argmax(dim=-1).unique().numel())


@torch.no_grad()
def unique_tokens(seqs: Seqs) -> float:
    """Number of distinct token ids across all sequences."""
    return float(len({t for s in _as_lists(seqs) for t in s}))


@torch.no_grad()
def distinct_n(seqs: Seqs, n: int) -> float:
    """Distinct n-grams / total n-grams over all sequences (Li et al., 2016); 0 if none."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [tuple(s[i : i + n]) for s in _as_lists(seqs) for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.no_grad()
def unigram_entropy(seqs: Seqs) -> float:
    """Entropy in bits of the token frequency distribution pooled over all sequences."""
    counts = Counter(t for s in _as_lists(seqs) for t in s)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in counts.values())


@torch.no_grad()
def repetition(seqs: Seqs, k: int = 4) -> float:
    """Fraction of tokens equal to one of the previous ``k`` tokens of the same sequence.

    The first token of each sequence has no history and is not counted. A collapsed
    generator ("the the the", "a b a b") scores near 1; fluent text scores low.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    hits = total = 0
    for s in _as_lists(seqs):
        for i in range(1, len(s)):
            hits += s[i] in s[max(0, i - k) : i]
            total += 1
    return hits / total if total else 0.0
