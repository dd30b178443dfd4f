from __future__ import annotations

import torch
from torch import nn

from collapsetune.regularizers._checks import check_nonneg


class OutputL2(nn.Module):
    """L2 penalty on the output layer: ``weight * sum(W ** 2)``.

    Unlike the others its ``forward`` takes the lm_head weight matrix ``(V, C)``, not
    logits, because it regularises parameters: ``forward(lm_head_weight) -> scalar``. It
    keeps a few output rows from growing large enough to win every argmax (seeds/003).
    ``weight=0`` = off.

    Example:
        >>> OutputL2(0.5)(torch.ones(2, 3))
        tensor(3.)
    """

    def __init__(self, weight: float = 0.0) -> None:
        super().__init__()
        self.weight = check_nonneg("weight", weight)

    def forward(self, lm_head_weight: torch.Tensor) -> torch.Tensor:
        """lm_head weight (V, C) -> scalar."""
        return self.weight * lm_head_weight.pow(2).sum()
