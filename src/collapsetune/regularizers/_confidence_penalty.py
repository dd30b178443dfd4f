from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapsetune.regularizers._checks import check_nonneg


class ConfidencePenalty(nn.Module):
    """Confidence penalty (Pereyra et al., 2017): ``-beta * mean_i H(p_i)`` (nats).

    Added to the base loss, it rewards high per-position predictive entropy. ``targets``
    is accepted for the common signature and not used. ``beta=0`` = off.

    Example:
        >>> ConfidencePenalty(0.1)(torch.zeros(2, 4), torch.tensor([0, 1]))
        tensor(-0.1386)
    """

    def __init__(self, beta: float = 0.0) -> None:
        super().__init__()
        self.beta = check_nonneg("beta", beta)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """logits (N, V) -> scalar."""
        logp = F.log_softmax(logits, dim=-1)  # (N, V)
        entropy = -(logp.exp() * logp).sum(dim=-1)  # (N,)
        return -self.beta * entropy.mean()
