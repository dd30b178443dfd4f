"""Collapse metrics of embeddings and representations: rank, Vendi score, cosine, spectrum.

``embeddings`` is a float tensor (N, D): N items (a batch of images, texts, prompts) with D
features each, on any device. Half precision is computed in float32.

Example:
    >>> same = torch.ones(8, 4)                       # every item the same embedding
    >>> [round(f(same), 3) for f in (effective_rank, vendi_score, mean_pairwise_cosine)]
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math

import torch

__all__ = ["effective_rank", "mean_pairwise_cosine", "vanishing_singular_values", "vendi_score"]


def _check(embeddings: torch.Tensor, least: int = 1) -> torch.Tensor:
    if not isinstance(embeddings, torch.Tensor):
        raise ValueError(f"embeddings must be a float tensor (N, D), got {type(embeddings).__name__}")
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got dtype {embeddings.dtype}")
    if embeddings.shape[0] < least or embeddings.shape[1] == 0:
        raise ValueError(f"embeddings needs at least {least} row(s) and 1 column, got shape {tuple(embeddings.shape)}")
    if not torch.isfinite(embeddings).all():
        raise ValueError("embeddings holds NaN or inf")
    return embeddings.float() if embeddings.dtype in (torch.float16, torch.bfloat16) else embeddings


def _unit_rows(embeddings: torch.Tensor) -> torch.Tensor:
    norms = embeddings.norm(dim=1)
    if (norms == 0).any():
        raise ValueError(f"embeddings has {int((norms == 0).sum())} all-zero row(s), whose cosine is "
                         "undefined (effective_rank and vanishing_singular_values accept them)")
    return embeddings / norms[:, None]


def _entropy(p: torch.Tensor) -> float:
    p = p[p > 0]
    return -(p * p.log()).sum().item()


@torch.no_grad()
def effective_rank(embeddings: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values.

    ``exp(-sum p_k log p_k)`` with ``p_k = s_k / sum(s) + eps`` over the singular values of
    the (uncentred) embeddings: the effective rank of Roy & Vetterli (2007) with RankMe's
    eps. In [1, min(N, D)] (eps lifts it by ~min(N, D) * 1.6e-6); it falls as the
    embeddings collapse onto fewer directions, to ~1 when they are all the same vector or zero.
    """
    s = torch.linalg.svdvals(_check(embeddings))
    p = s / s.sum().clamp_min(torch.finfo(s.dtype).tiny) + eps
    return math.exp(-(p * p.log()).sum().item())


@torch.no_grad()
def vendi_score(embeddings: torch.Tensor) -> float:
    """Vendi score (Friedman & Dieng 2023) with the cosine kernel: the effective number of distinct items.

    ``exp(-sum l_i log l_i)`` over the eigenvalues of ``K / N``, ``K`` the (N, N) cosine
    similarities; computed from the singular values of the unit rows (``l_i = s_i^2 / N``),
    the same spectrum without forming K. In [1, N]: 1 when all items point the same way, N
    when they are orthogonal. What ``vendi_score.vendi.score_X`` (q = 1) computes.
    """
    x = _unit_rows(_check(embeddings))
    lam = torch.linalg.svdvals(x).square() / x.shape[0]
    return math.exp(_entropy(lam))


@torch.no_grad()
def mean_pairwise_cosine(embeddings: torch.Tensor) -> float:
    """Mean cosine similarity over all N(N-1)/2 pairs of distinct items, in [-1, 1]; 1 is collapsed.

    From the sum of the unit rows (``|sum x|^2 = N + 2 * sum_{i<j} cos_ij``), so no (N, N) matrix.
    """
    x = _unit_rows(_check(embeddings, least=2)).double()
    n = x.shape[0]
    return ((x.sum(dim=0).square().sum() - n) / (n * (n - 1))).item()


@torch.no_grad()
def vanishing_singular_values(embeddings: torch.Tensor, rtol: float = 1e-3) -> float:
    """Dimensions the embeddings no longer use: D minus the singular values above ``rtol`` x the largest.

    Singular values of the centred embeddings (square roots of the covariance spectrum that
    Jing et al. 2022 plot to show dimensional collapse). In [0, D]; D when every item is
    the same. With N <= D at least D - N + 1 vanish by construction, so use N > D.

    Args:
        embeddings: (N, D), N >= 2.
        rtol: a singular value below ``rtol * largest`` counts as vanished.
    """
    if not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    z = _check(embeddings, least=2)
    s = torch.linalg.svdvals(z - z.mean(dim=0))
    alive = int((s > rtol * s[0]).sum()) if s[0] > 0 else 0
    return float(z.shape[1] - alive)
