"""BitLinear (BitNet b1.58): ternary weights, int8 activations, straight-through estimator.

Follows "The Era of 1-bit LLMs" (Ma et al., 2024) and its training-tips note: the input is
RMS-normalised, then quantised per token to int8 by absmax; the weight is quantised per
tensor to {-1, 0, +1} by absmean. Both quantisers are used through a straight-through
estimator so the full-precision latent weights and the inputs receive gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BitLinear", "absmax_int8", "absmean_ternary"]


def absmean_ternary(w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Quantise a weight tensor to ternary values, returned dequantised.

    s = 1 / mean|w|; q = clamp(round(w * s), -1, 1); returns q / s.

    Args:
        w: Weight tensor of any shape.
        eps: Floor on mean|w| so an all-zero tensor does not divide by zero.

    Returns:
        Tensor of w's shape whose values lie in {-1/s, 0, +1/s}.
    """
    scale = 1.0 / w.abs().mean().clamp(min=eps)
    return (w * scale).round().clamp(-1, 1) / scale


def absmax_int8(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Quantise activations per token (last dim) to int8 levels, returned dequantised.

    s = 127 / max|x| per token; q = clamp(round(x * s), -128, 127); returns q / s.

    Args:
        x: Activations (..., C).
        eps: Floor on max|x| so an all-zero token does not divide by zero.

    Returns:
        Tensor of x's shape with at most 256 distinct values per token.
    """
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=eps)
    return (x * scale).round().clamp(-128, 127) / scale


class BitLinear(nn.Linear):
    """Drop-in replacement for ``nn.Linear`` with b1.58 quantisation.

    The RMSNorm has no learnable gain: it only fixes the activation scale before absmax
    quantisation (the surrounding transformer block keeps its own learnable norms).

    Example:
        >>> layer = BitLinear(16, 32)
        >>> layer(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 32])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.norm = nn.RMSNorm(in_features, elementwise_affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)  # (..., in)
        # STE: forward uses the quantised value, backward sees the identity.
        x_q = x + (absmax_int8(x) - x).detach()
        w_q = self.weight + (absmean_ternary(self.weight) - self.weight).detach()
        return F.linear(x_q, w_q, self.bias)  # (..., out)
