"""Collapse metrics of a mixture of sub-prompts: same-class cosine and assignment balance.

Pure ``@torch.no_grad()`` functions from tensors to floats (``subprompt_cosines`` and
``hard_assignments`` return tensors for plots and for the other metrics).

Example:
    >>> prompts = torch.nn.functional.normalize(torch.ones(2, 3, 4), dim=-1)  # identical
    >>> subprompt_cos_max(prompts), assign_max_share(torch.zeros(4, dtype=torch.long),
    ...                                              torch.tensor([0, 0, 1, 1]), 3)
    (1.0, 1.0)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "assign_entropy",
    "assign_max_share",
    "dead_subprompts",
    "hard_assignments",
    "subprompt_cos_max",
    "subprompt_cos_mean",
    "subprompt_cosines",
]


@torch.no_grad()
def subprompt_cosines(prompts: torch.Tensor) -> torch.Tensor:
    """(C, K, K) cosine between every two sub-prompts of each class."""
    p = F.normalize(prompts.float(), dim=-1)  # (C, K, D)
    return p @ p.transpose(1, 2)


def _pairs(prompts: torch.Tensor) -> torch.Tensor:
    k = prompts.shape[1]
    if k < 2:
        raise ValueError(f"sub-prompt cosine needs K >= 2 sub-prompts per class, got K={k}")
    i, j = torch.triu_indices(k, k, offset=1)
    return subprompt_cosines(prompts)[:, i, j]  # (C, K(K-1)/2)


@torch.no_grad()
def subprompt_cos_max(prompts: torch.Tensor) -> float:
    """Largest same-class pairwise cosine, averaged over classes.

    Per class rather than one global max, so a single coinciding pair out of C*K*(K-1)/2
    does not mark a healthy model collapsed; a class whose sub-prompts all merged gives 1.

    Args:
        prompts: (C, K, D) sub-prompts (normalised here), K >= 2.
    """
    return _pairs(prompts).max(dim=1).values.mean().item()


@torch.no_grad()
def subprompt_cos_mean(prompts: torch.Tensor) -> float:
    """Mean same-class pairwise cosine over all classes and pairs. Args as ``subprompt_cos_max``."""
    return _pairs(prompts).mean().item()


@torch.no_grad()
def hard_assignments(features: torch.Tensor, labels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """(N,) index of the sub-prompt of its own class closest (cosine) to each image.

    Args:
        features: (N, D) image features.
        labels: (N,) classes.
        prompts: (C, K, D) sub-prompts.
    """
    x = F.normalize(features.float(), dim=-1)  # (N, D)
    own = F.normalize(prompts.float(), dim=-1)[labels]  # (N, K, D)
    return torch.einsum("nd,nkd->nk", x, own).argmax(dim=-1)


def _usage(assign: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(C', K) share of each present class's images that each sub-prompt owns."""
    if assign.shape != labels.shape:
        raise ValueError(f"assign and labels must have the same shape, got {tuple(assign.shape)} "
                         f"and {tuple(labels.shape)}")
    if len(assign) == 0:
        raise ValueError("no assignments given")
    if assign.min() < 0 or assign.max() >= k:
        raise ValueError(f"assignments must lie in [0, {k}), got {assign.min().item()}..{assign.max().item()}")
    classes = labels.unique()
    counts = torch.zeros(len(classes), k, device=assign.device)  # counted where the tensors are
    rows = torch.searchsorted(classes, labels)
    counts.index_put_((rows, assign.long()), torch.ones(len(assign), device=assign.device), accumulate=True)
    return counts / counts.sum(dim=1, keepdim=True)


@torch.no_grad()
def assign_max_share(assign: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Mean over classes of the largest share of a class's images one sub-prompt owns.

    1/K is perfectly balanced; 1.0 means one sub-prompt owns every image of every class.

    Args:
        assign: (N,) hard assignments in [0, K).
        labels: (N,) classes; only classes present count.
        k: K.
    """
    return _usage(assign, labels, k).max(dim=1).values.mean().item()


@torch.no_grad()
def assign_entropy(assign: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Entropy of each class's sub-prompt usage over log K, averaged over classes, in [0, 1].

    1 = every sub-prompt owns the same share; 0 = one owns them all. Args as ``assign_max_share``.
    """
    if k < 2:
        return 0.0
    usage = _usage(assign, labels, k)
    ent = -(usage * usage.clamp_min(1e-12).log()).sum(dim=1)
    return (ent / math.log(k)).mean().item()


@torch.no_grad()
def dead_subprompts(assign: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of the present classes' sub-prompts that own no image. Args as ``assign_max_share``."""
    return (_usage(assign, labels, k) == 0).float().mean().item()
