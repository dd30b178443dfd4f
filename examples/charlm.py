"""The model the examples share: a character-level language model (an MLP over the previous
`context` characters) on the first 30,000 characters of CPython's bundled documentation
(`pydoc_data.topics`, on every Python install, so the examples run offline).

With too large a learning rate it collapses the way seeds/003 describes: its greedy
continuations fall to one or two characters (spaces, "e") while its loss still looks fine.
"""

from __future__ import annotations

import torch
from torch import nn


def corpus(chars: int = 30_000) -> tuple[torch.Tensor, int]:
    """(ids, vocabulary size) of the text, one id per character."""
    from pydoc_data.topics import topics

    text = "".join(topics[k] for k in sorted(topics))[:chars]
    vocab = sorted(set(text))
    return torch.tensor([vocab.index(c) for c in text]), len(vocab)


class CharMLP(nn.Module):
    def __init__(self, vocab: int, context: int = 8, width: int = 64) -> None:
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab, 16)
        self.mlp = nn.Sequential(nn.Linear(16 * context, width), nn.GELU(), nn.Linear(width, vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, context) -> (B, vocab)
        return self.mlp(self.embed(x).flatten(1))


def batch(ids: torch.Tensor, context: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` windows of `context` characters and the character after each."""
    starts = torch.randint(0, len(ids) - context - 1, (size,), generator=generator)
    x = torch.stack([ids[s : s + context] for s in starts.tolist()])  # (B, context)
    return x, ids[starts + context]  # (B,)


@torch.no_grad()
def generate(model: CharMLP, prompts: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy continuations (B, steps) of prompts (B, context)."""
    model.eval()
    window, out = prompts, []
    for _ in range(steps):
        nxt = model(window).argmax(-1, keepdim=True)  # (B, 1)
        out.append(nxt)
        window = torch.cat([window[:, 1:], nxt], dim=1)
    model.train()
    return torch.cat(out, dim=1)
