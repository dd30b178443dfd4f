"""A small decoder-only transformer (nanoGPT layout) whose linear layers are BitLinear.

Attention and MLP projections use :class:`BitLinear` (or ``nn.Linear`` with
``linear="float"`` so benchmarks can compare); the token embedding and the lm_head stay in
full precision, as in BitNet b1.58.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from collapsetune.models.bitlinear import BitLinear

__all__ = ["BitNetConfig", "BitNetLM"]


@dataclass(frozen=True)
class BitNetConfig:
    """Shape of a :class:`BitNetLM`.

    Example:
        >>> cfg = BitNetConfig.from_dict({"vocab_size": 256, "d_model": 64})
        >>> cfg.n_layers
        4
    """

    vocab_size: int = 512  # tokenizer size; lm_head width
    context: int = 64  # maximum sequence length (learned positions)
    d_model: int = 128  # residual width
    n_layers: int = 4  # transformer blocks
    n_heads: int = 4  # attention heads; must divide d_model
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * d_model
    dropout: float = 0.0  # off by default: tiny CPU runs do not overfit in a sweep
    linear: str = "bit"  # "bit" (BitLinear b1.58) or "float" (nn.Linear)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "d_model", "n_layers", "n_heads", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got {self.d_model} and {self.n_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.linear not in ("bit", "float"):
            raise ValueError(f"linear must be 'bit' or 'float', got {self.linear!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BitNetConfig:
        """Build from a dict; an unknown key is an error that lists the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                raise ValueError(f"unknown BitNetConfig key {key!r}; valid keys: {valid}")
        return cls(**values)


def _linear(cfg: BitNetConfig, n_in: int, n_out: int) -> nn.Module:
    return BitLinear(n_in, n_out) if cfg.linear == "bit" else nn.Linear(n_in, n_out, bias=False)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: BitNetConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = _linear(cfg, cfg.d_model, 3 * cfg.d_model)
        self.proj = _linear(cfg, cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(  # (B, nh, T, hs)
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, cfg: BitNetConfig) -> None:
        super().__init__()
        self.fc = _linear(cfg, cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.out = _linear(cfg, cfg.mlp_ratio * cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.out(F.gelu(self.fc(x))))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: BitNetConfig) -> None:
        super().__init__()
        self.norm1 = nn.RMSNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.RMSNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, T, C)
        return x + self.mlp(self.norm2(x))  # (B, T, C)


class BitNetLM(nn.Module):
    """Decoder-only ternary language model.

    Example:
        >>> model = BitNetLM(BitNetConfig(vocab_size=256, context=16, d_model=32, n_heads=2))
        >>> model(torch.zeros(2, 16, dtype=torch.long)).shape
        torch.Size([2, 16, 256])
    """

    def __init__(self, cfg: BitNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm_f = nn.RMSNorm(cfg.d_model)
        # Unquantised, as in BitNet b1.58: the output layer is kept in full precision.
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2 scaled init of residual projections keeps the residual stream's variance flat.
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "out.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Map token ids (B, T) with T <= context to next-token logits (B, T, V)."""
        B, T = idx.shape
        if T > self.cfg.context:
            raise ValueError(f"sequence length {T} exceeds context {self.cfg.context}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.lm_head(self.norm_f(x))  # (B, T, V)
