"""Collapse metrics: pure ``@torch.no_grad()`` functions, no state, no logging."""

from __future__ import annotations

from collapsetune.metrics._lm import (
    argmax_unique,
    distinct_n,
    repetition,
    unigram_entropy,
    unique_tokens,
)

__all__ = ["argmax_unique", "distinct_n", "repetition", "unigram_entropy", "unique_tokens"]
