"""Token sampling shared by every generative model (the LM here, the audio captioner later).

Example:
    >>> logits = torch.tensor([[0.0, 2.0, 1.0]])
    >>> sample_next(logits, "greedy")
    tensor([1])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

__all__ = [
    "STRATEGIES", "DecodingConfig", "generate", "sample_next", "top_k_filter", "top_p_filter",
]

STRATEGIES = ("greedy", "temperature", "top_k", "top_p")


@dataclass(frozen=True)
class DecodingConfig:
    """How to pick the next token; validated on construction.

    Example:
        >>> DecodingConfig(strategy="top_p", top_p=0.9).sampling()["top_p"]
        0.9
    """

    strategy: str = "greedy"  # greedy | temperature | top_k | top_p
    temperature: float = 1.0  # divides logits for every sampling strategy
    top_k: int = 0  # tokens kept by top_k; 0 = all
    top_p: float = 1.0  # nucleus mass kept by top_p; 1 = all

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.strategy == "top_k" and self.top_k == 0:
            raise ValueError("top_k must be >= 1 when strategy is 'top_k', got 0")

    def sampling(self) -> dict[str, float | int | str]:
        """Keyword arguments for :func:`sample_next` and :func:`generate`."""
        return asdict(self)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the ``k`` largest logits per row (B, V) to -inf; ``k <= 0`` keeps all."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the nucleus: the smallest set of top tokens whose probability sums to >= p.

    At least one token is always kept. Rows are (B, V); removed logits become -inf.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of strictly better tokens
    drop_sorted = mass_before >= p  # the nucleus already reached p without this token
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from logits (B, V); returns ids (B,)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if strategy == "greedy":
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if strategy == "top_k":
        logits = top_k_filter(logits, top_k)
    elif strategy == "top_p":
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    prompt: torch.Tensor,
    max_new_tokens: int,
    context: int | None = None,
    **sampling: object,
) -> torch.Tensor:
    """Autoregressively extend ``prompt`` (B, T) by ``max_new_tokens``; returns (B, T + new).

    Args:
        model_fn: Maps ids (B, T) to logits (B, T, V).
        prompt: Starting ids (B, T).
        max_new_tokens: Tokens to append.
        context: If given, the model sees only the last ``context`` tokens.
        **sampling: Passed to :func:`sample_next` (strategy, temperature, top_k, top_p,
            generator).
    """
    idx = prompt
    for _ in range(max_new_tokens):
        window = idx if context is None else idx[:, -context:]  # (B, <=context)
        logits = model_fn(window)[:, -1, :]  # (B, V)
        idx = torch.cat([idx, sample_next(logits, **sampling).unsqueeze(-1)], dim=1)
    return idx
