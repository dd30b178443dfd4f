from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapsetune.regularizers._checks import check_nonneg


class VocabDiversityBonus(nn.Module):
    """Batch-level vocabulary diversity: ``-weight * H(mean_i p_i)`` (nats).

    A differentiable stand-in for "reward using more distinct tokens" (seeds/003): unlike
    the confidence penalty it lets each position stay confident, and only punishes the
    batch putting its mass on the same few tokens. ``targets`` is not used. ``weight=0`` = off.

    Example:
        >>> VocabDiversityBonus(1.0)(torch.eye(4) * 50, torch.arange(4))
        tensor(-1.3863)
    """

    def __init__(self, weight: float = 0.0) -> None:
        super().__init__()
        self.weight = check_nonneg("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """logits (N, V) -> scalar."""
        mean_p = F.softmax(logits, dim=-1).mean(dim=0)  # (V,)
        entropy = -(mean_p * mean_p.clamp_min(1e-12).log()).sum()
        return -self.weight * entropy
