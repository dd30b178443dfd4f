from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapsetune.regularizers._checks import check_nonneg


class MaxSup(nn.Module):
    """Max Suppression (Zhou et al., 2025, arXiv:2502.15798): CE + lam * (z_top1 - mean(z)).

    Same form as the official code (ZhouYuxuanYX/Maximum-Suppression-Regularization): the
    penalty is on the top-1 logit minus the mean logit, whatever the label, and ``lam`` ramps
    linearly from ``lam_start`` to ``lam_end`` as training progresses (call
    :meth:`set_progress` with the fraction of training done). ``forward`` returns the full
    loss (CE included); :meth:`penalty` returns the added term alone, for use on top of
    another base loss. Both weights 0 = off.

    Example:
        >>> ms = MaxSup(0.1, 0.2)
        >>> ms.set_progress(0.5)
        >>> ms.lam
        0.15000000000000002
    """

    def __init__(self, lam_start: float = 0.1, lam_end: float = 0.2) -> None:
        super().__init__()
        self.lam_start = check_nonneg("lam_start", lam_start)
        self.lam_end = check_nonneg("lam_end", lam_end)
        self.progress = 0.0

    def set_progress(self, frac: float) -> None:
        """Set the fraction of training done, clamped to [0, 1]."""
        self.progress = min(max(float(frac), 0.0), 1.0)

    @property
    def lam(self) -> float:
        return self.lam_start + (self.lam_end - self.lam_start) * self.progress

    def penalty(self, logits: torch.Tensor) -> torch.Tensor:
        """lam * mean over rows of (max logit - mean logit); logits (N, V) -> scalar."""
        reg = logits.max(dim=-1).values - logits.mean(dim=-1)  # (N,)
        return self.lam * reg.mean()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """logits (N, V), targets (N,) -> scalar CE + penalty."""
        return F.cross_entropy(logits, targets) + self.penalty(logits)
