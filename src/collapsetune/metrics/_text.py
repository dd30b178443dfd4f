"""Collapse metrics of generated text: token concentration, Zipf slope and self-BLEU.

``seqs`` as in ``_lm``: token ids (tensor or lists), texts, or word lists.

Example:
    >>> top_token_share(["a a a b"]), self_bleu(["the cat sat down", "the cat sat down"])
    (0.75, 1.0)
"""

from __future__ import annotations

import math

import torch

from collapsetune.metrics._tokens import Seqs, Tokens, as_tokens

__all__ = ["self_bleu", "top_token_share", "zipf_coefficient"]

_EPSILON = 0.1  # nltk's SmoothingFunction().method1, which Texygen's self-BLEU uses


@torch.no_grad()
def top_token_share(seqs: Seqs) -> float:
    """Share of all generated tokens that are the most frequent token, in (0, 1].

    1.0 when every token is the same; 1.0 too when ``seqs`` holds no tokens at all.
    """
    ids = as_tokens(seqs).ids
    if len(ids) == 0:
        return 1.0
    return ids.unique(return_counts=True)[1].max().item() / len(ids)


@torch.no_grad()
def zipf_coefficient(seqs: Seqs) -> float:
    """Zipf coefficient s: minus the least-squares slope of log frequency on log rank.

    Tokens are pooled over all sequences and ranked by frequency (Holtzman et al. 2020
    compare it with human text, s ~ 0.9-1.0). Steeper (larger s) means fewer tokens carry
    more of the text: a collapsing generator's s rises. 0 when every token is equally
    frequent; ``inf`` with a single distinct token (or none), where no slope exists.
    """
    ids = as_tokens(seqs).ids
    counts = ids.unique(return_counts=True)[1] if len(ids) else ids
    if len(counts) < 2:
        return math.inf
    y = counts.double().sort(descending=True).values.log()  # (V,)
    x = torch.arange(1, len(y) + 1, dtype=torch.float64, device=y.device).log()
    x = x - x.mean()
    return -((x * (y - y.mean())).sum() / (x * x).sum()).item()


def _clipped_matches(tok: Tokens, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) n-grams of each sequence that some other sequence also holds (clipped counts), (N,) n-grams."""
    gid, row = tok.ngrams(n)  # (M,), (M,)
    total = torch.bincount(row, minlength=tok.n)
    if len(gid) == 0:
        return total, total
    n_grams = int(gid.max()) + 1
    pair, count = torch.unique(row * n_grams + gid, return_counts=True)  # one entry per (seq, gram)
    r, g = pair // n_grams, pair % n_grams
    # Clip each count by the largest count of the same gram in any *other* sequence:
    # the largest over all sequences, unless this sequence holds it, then the second largest.
    top = torch.zeros(n_grams, dtype=count.dtype, device=count.device).scatter_reduce(0, g, count, "amax")
    big = torch.full((n_grams,), tok.n, dtype=r.dtype, device=r.device)
    owner = big.scatter_reduce(0, g, torch.where(count == top[g], r, tok.n), "amin")  # one holder of the top
    second = torch.zeros_like(top).scatter_reduce(0, g, torch.where(r == owner[g], 0, count), "amax")
    other = torch.where(r == owner[g], second[g], top[g])
    matched = torch.zeros_like(total).index_add_(0, r, torch.minimum(count, other))
    return matched, total


def _closest_other_length(lengths: torch.Tensor) -> torch.Tensor:
    """(N,) for each sequence, the length of another one closest to it; ties to the shorter (as nltk)."""
    values, counts = lengths.unique(return_counts=True)  # (U,)
    diff = (values[None, :] - lengths[:, None]).abs().double()  # (N, U)
    alone = (values[None, :] == lengths[:, None]) & (counts[None, :] == 1)  # only itself has that length
    key = diff.masked_fill(alone, math.inf) * (2 * int(values.max()) + 2) + values[None, :]
    return values[key.argmin(dim=1)]


@torch.no_grad()
def self_bleu(seqs: Seqs, max_n: int = 4) -> float:
    """Self-BLEU (Zhu et al. 2018, Texygen): each text's BLEU against all the others, averaged.

    In [0, 1]; 1 when every text is the same, low when texts share few n-grams. Each text
    is scored as nltk's ``sentence_bleu(others, text, weights=(1/max_n,) * max_n,
    smoothing_function=SmoothingFunction().method1)`` scores it, Texygen's choice: a zero
    n-gram precision counts as 0.1 / n-grams, but no unigram in common gives 0. All the
    others' n-grams count at once, so the cost grows with the tokens, not their pairs.

    Args:
        seqs: at least 2 texts or token sequences.
        max_n: the longest n-gram (BLEU-4 by default; Texygen reports 2 to 5).
    """
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    tok = as_tokens(seqs)
    if tok.n < 2:
        raise ValueError(f"self_bleu needs at least 2 sequences in seqs, got {tok.n}")
    log_p = torch.zeros(tok.n, dtype=torch.float64, device=tok.ids.device)
    unigram_hits = None
    for n in range(1, max_n + 1):
        matched, total = _clipped_matches(tok, n)
        if n == 1:
            unigram_hits = matched
        m = matched.double()
        log_p += torch.where(m > 0, m, torch.full_like(m, _EPSILON)).log() - total.clamp_min(1).double().log()
    length = tok.lengths.double()
    ref = _closest_other_length(tok.lengths).double()
    brevity = torch.where(length > ref, 1.0, torch.exp(1 - ref / length.clamp_min(1)))
    score = brevity * torch.exp(log_p / max_n)
    score = torch.where((unigram_hits > 0) & (length > 0), score, torch.zeros_like(score))
    return score.mean().item()
