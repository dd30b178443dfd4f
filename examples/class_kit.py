"""The same model as function_loop.py, written to the class kit (`TorchWrapper`): the kit
owns the loop, seeding, divergence and the checkpoint round trip, and the wrapper keeps what
is its model's. More to write than a function, but `validate` checks a sweep's keys, types
and metric names against it before any trial starts.

    collapsetune run examples/class_kit.yaml
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from charlm import CharMLP, batch, corpus, generate

from collapsetune.metrics import distinct_n, unique_tokens
from collapsetune.wrapper import TorchWrapper


@dataclass(frozen=True)
class CharConfig:
    max_iterations: int = 6  # the kit reads these four
    seed: int = 0
    threads: int = 1
    steps_per_report: int = 60
    lr: float = 3e-3
    context: int = 8
    width: int = 64

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class CharLM(TorchWrapper):
    config_class = CharConfig
    reported_metrics = ("train/loss", "val/loss", "collapse/unique_tokens", "collapse/distinct_2")

    def build(self, cfg: CharConfig):
        ids, vocab = corpus()
        self.train_ids = ids[:27_000]
        self.val_x, self.val_y = batch(ids[27_000:], cfg.context, 512, torch.Generator().manual_seed(1))
        model = CharMLP(vocab, cfg.context, cfg.width)
        return model, torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def train_loss(self) -> torch.Tensor:
        x, y = batch(self.train_ids, self.cfg.context, 64, self.generator)
        return F.cross_entropy(self.model(x), y)

    def evaluate(self) -> dict[str, float]:
        text = generate(self.model, self.val_x[:16], 24)  # (16, 24) greedy continuations
        return {"val/loss": F.cross_entropy(self.model(self.val_x), self.val_y).item(),
                "collapse/unique_tokens": unique_tokens(text), "collapse/distinct_2": distinct_n(text, 2)}
