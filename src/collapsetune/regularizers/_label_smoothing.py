from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapsetune.regularizers._checks import check_nonneg


class LabelSmoothingCE(nn.Module):
    """Cross-entropy with label smoothing (Szegedy et al., 2016); ``smoothing=0`` is plain CE.

    The target is ``(1 - smoothing) * onehot + smoothing / V``. This is the base loss, not an
    additive term.

    Example:
        >>> loss = LabelSmoothingCE(0.1)(torch.randn(4, 10), torch.tensor([1, 2, 3, 4]))
    """

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        self.smoothing = check_nonneg("smoothing", smoothing)
        if self.smoothing > 1.0:
            raise ValueError(f"smoothing must be <= 1, got {smoothing}")

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """logits (N, V), targets (N,) -> scalar."""
        return F.cross_entropy(logits, targets, label_smoothing=self.smoothing)
