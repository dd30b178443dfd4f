"""Reference models: the BitNet b1.58 language model and its BitLinear layer."""

from __future__ import annotations

from collapsetune.models.bitlinear import BitLinear, absmax_int8, absmean_ternary
from collapsetune.models.bitnet_lm import BitNetConfig, BitNetLM

__all__ = ["BitLinear", "BitNetConfig", "BitNetLM", "absmax_int8", "absmean_ternary"]
