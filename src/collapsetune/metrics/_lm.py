"""Collapse metrics of token streams: logits, or generated sequences of ids or words.

``seqs`` is a LongTensor (N, T), a list of token id lists, a list of texts (split on
whitespace) or a list of word lists (see ``_tokens``). An empty ``seqs`` is a ValueError;
sequences with no tokens in them are allowed (a generator that stops at once).

Example:
    >>> distinct_n(["the cat sat", "the cat ran"], 2), repetition([[5, 5, 5, 5]])
    (0.75, 1.0)
"""

from __future__ import annotations

import torch

from collapsetune.metrics._tokens import Seqs, as_tokens

__all__ = ["argmax_unique", "distinct_n", "repetition", "unigram_entropy", "unique_tokens"]


@torch.no_grad()
def argmax_unique(logits: torch.Tensor) -> float:
    """Number of distinct argmax tokens over all positions of logits (..., V).

    This is what seeds/003 counted on teacher-forced batches.
    """
    if logits.dim() == 0 or logits.numel() == 0:
        raise ValueError(f"logits must be (..., V) with at least one position, got shape {tuple(logits.shape)}")
    return float(logits.argmax(dim=-1).unique().numel())


@torch.no_grad()
def unique_tokens(seqs: Seqs) -> float:
    """Number of distinct tokens across all sequences."""
    return float(as_tokens(seqs).ids.unique().numel())


@torch.no_grad()
def distinct_n(seqs: Seqs, n: int) -> float:
    """Distinct n-grams / total n-grams over all sequences (Li et al., 2016); 0 if none."""
    grams, _ = as_tokens(seqs).ngrams(n)
    return grams.unique().numel() / len(grams) if len(grams) else 0.0


@torch.no_grad()
def unigram_entropy(seqs: Seqs) -> float:
    """Entropy in bits of the token frequency distribution pooled over all sequences."""
    ids = as_tokens(seqs).ids
    if len(ids) == 0:
        return 0.0
    p = ids.unique(return_counts=True)[1].double() / len(ids)
    return max(0.0, -(p * p.log2()).sum().item())  # max: -0.0 for a single token


@torch.no_grad()
def repetition(seqs: Seqs, k: int = 4) -> float:
    """Fraction of tokens equal to one of the previous ``k`` tokens of the same sequence.

    The first token of each sequence has no history and is not counted. A collapsed
    generator ("the the the", "a b a b") scores near 1; fluent text scores low. 0 if no
    token has a history (every sequence shorter than 2).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    tok = as_tokens(seqs)
    counted = tok.pos >= 1
    if not counted.any():
        return 0.0
    hit = torch.zeros_like(counted)
    for j in range(1, min(k, int(tok.lengths.max())) + 1):  # k shifted compares, not a loop over tokens
        back = torch.cat([tok.ids.new_full((j,), -1), tok.ids[:-j]])[: len(tok.ids)]
        hit |= (tok.pos >= j) & (tok.ids == back)
    return (hit & counted).sum().item() / counted.sum().item()
