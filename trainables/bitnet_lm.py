"""Wrapper for the built-in ``bitnet_lm`` trainable: config dict in, metrics dict out.

No Ray import: the Tune glue drives this class through ``step()`` / ``state_dict()``.

Example:
    >>> lm = BitNetLM({"tokenizer": "byte", "d_model": 32, "n_layers": 1, "n_heads": 2,
    ...                "context": 16, "batch_size": 4, "steps_per_report": 2,
    ...                "max_iterations": 2})
    >>> sorted(lm.step())[:3]
    ['collapse/argmax_unique', 'collapse/distinct_1', 'collapse/distinct_2']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from collapsetune import metrics
from collapsetune.configs import from_dict
from collapsetune.data import TokenData, build_tokenizer, load_text
from collapsetune.decoding import DecodingConfig, generate
from collapsetune.models import BitNetConfig
from collapsetune.models import BitNetLM as BitNetModel
from collapsetune.regularizers import (
    ConfidencePenalty,
    LabelSmoothingCE,
    MaxSup,
    OutputL2,
    VocabDiversityBonus,
)

__all__ = ["BitNetLM", "BitNetLMConfig"]

VAL_SEQS = 32  # sequences in the fixed teacher-forced val batch
PROMPT_TOKENS = 8  # length of each fixed generation prompt


@dataclass(frozen=True)
class BitNetLMConfig:
    """Every knob of the ``bitnet_lm`` trainable; names are Tune and MLflow params."""

    max_iterations: int = 20  # reports the sweep asks for; horizon of LR and MaxSup schedules
    seed: int = 0
    threads: int = 1  # torch intra-op threads; 1 so trials share cores fairly
    device: str = "auto"  # auto: the GPU Ray gave this trial if any, else cpu | cpu | cuda
    # data
    corpus: str | None = None  # None = pydoc_data.topics; else a text file or folder
    tokenizer: str = "bpe"  # bpe | byte
    vocab_size: int = 512  # bpe only; byte is always 256
    # model
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    context: int = 64
    linear: str = "bit"  # bit (BitLinear b1.58) | float (nn.Linear)
    # optimisation
    batch_size: int = 32
    steps_per_report: int = 50
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    grad_clip: float = 1.0  # 0 = off
    # anti-collapse regularizers; 0 = off
    label_smoothing: float = 0.0
    maxsup_start: float = 0.0
    maxsup_end: float = 0.0
    confidence_penalty: float = 0.0
    vocab_bonus: float = 0.0
    output_l2: float = 0.0
    # decoding of the generated continuations behind collapse/unique_tokens etc.
    decode: str = "greedy"  # greedy | temperature | top_k | top_p
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    gen_tokens: int = 32  # tokens generated per prompt
    gen_prompts: int = 16  # fixed prompts from the val split; 8 made greedy counts noisy

    def __post_init__(self) -> None:
        positive = ("max_iterations", "threads", "batch_size", "steps_per_report", "gen_tokens",
                    "gen_prompts")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "warmup_steps", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.context <= PROMPT_TOKENS:
            raise ValueError(f"context must be > {PROMPT_TOKENS}, got {self.context}")


class BitNetLM:
    """BitNet b1.58 LM on an offline corpus, reporting loss and collapse metrics.

    Example:
        >>> lm = BitNetLM({"tokenizer": "byte", "max_iterations": 10})  # doctest: +SKIP
        >>> lm.step()["collapse/unique_tokens"]  # doctest: +SKIP
        7.0
    """

    config_class = BitNetLMConfig  # lets `collapsetune validate` check keys before any trial

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = self.cfg = from_dict(BitNetLMConfig, dict(config), "bitnet_lm")
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)

        text = load_text(cfg.corpus)
        self.tok = build_tokenizer(cfg.tokenizer, text, cfg.vocab_size)
        self.data = TokenData(torch.tensor(self.tok.encode(text)))

        # Ray sets CUDA_VISIBLE_DEVICES per trial, so "auto" sees only this trial's GPU share.
        use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.model = BitNetModel(BitNetConfig(
            vocab_size=self.tok.vocab_size, context=cfg.context, d_model=cfg.d_model,
            n_layers=cfg.n_layers, n_heads=cfg.n_heads, linear=cfg.linear,
        )).to(self.device)
        # Norm gains, biases and embeddings are not decayed (nanoGPT's split).
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2 and "emb" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2 or "emb" in n]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95),
        )
        self.total_steps = cfg.max_iterations * cfg.steps_per_report

        self.ce = LabelSmoothingCE(cfg.label_smoothing)
        self.maxsup = MaxSup(cfg.maxsup_start, cfg.maxsup_end)
        self.conf = ConfidencePenalty(cfg.confidence_penalty)
        self.bonus = VocabDiversityBonus(cfg.vocab_bonus)
        self.l2 = OutputL2(cfg.output_l2)
        self.decoding = DecodingConfig(cfg.decode, cfg.temperature, cfg.top_k, cfg.top_p)

        # Fixed evaluation inputs, drawn from their own seed so they never depend on training.
        g = torch.Generator().manual_seed(10_000 + cfg.seed)
        self.val_x, self.val_y = (t.to(self.device) for t in self.data.batch("val", VAL_SEQS, cfg.context, g))
        starts = torch.linspace(0, len(self.data.val) - PROMPT_TOKENS - 1, cfg.gen_prompts).long()
        self.prompts = self.data.val[starts[:, None] + torch.arange(PROMPT_TOKENS)].to(self.device)  # (P, 8)

        self.gen = torch.Generator().manual_seed(cfg.seed)  # training batches
        self.steps = 0
        self.diverged = False
        self._samples = ""

    def lr_at(self, step: int) -> float:
        """Linear warmup, then cosine decay to 10% of ``lr`` at the sweep horizon."""
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = min(1.0, (step - cfg.warmup_steps) / max(1, self.total_steps - cfg.warmup_steps))
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, y = logits.flatten(0, 1), y.flatten()  # (B*T, V), (B*T,)
        loss = self.ce(logits, y)
        if self.maxsup.lam_start or self.maxsup.lam_end:
            self.maxsup.set_progress(self.steps / self.total_steps)
            loss = loss + self.maxsup.penalty(logits)
        if self.conf.beta:
            loss = loss + self.conf(logits, y)
        if self.bonus.weight:
            loss = loss + self.bonus(logits, y)
        if self.l2.weight:
            loss = loss + self.l2(self.model.lm_head.weight)
        return loss

    def step(self) -> dict[str, float]:
        """Train ``steps_per_report`` optimizer steps, then evaluate on fixed val data."""
        cfg = self.cfg
        self.model.train()
        losses = []
        for _ in range(cfg.steps_per_report):
            if self.diverged:  # weights are non-finite: more steps cannot help
                break
            lr = self.lr_at(self.steps)
            for group in self.opt.param_groups:
                group["lr"] = lr
            x, y = self.data.batch("train", cfg.batch_size, cfg.context, self.gen)
            x, y = x.to(self.device), y.to(self.device)
            loss = self._loss(self.model(x), y)
            losses.append(loss.item())
            self.steps += 1
            if not math.isfinite(losses[-1]):
                self.diverged = True
                break
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
        return {"train/loss": sum(losses) / len(losses) if losses else math.nan,
                **self.evaluate(), "lr": self.lr_at(self.steps)}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Teacher-forced val metrics plus collapse metrics of generated continuations."""
        self.model.eval()
        logits = self.model(self.val_x)  # (B, T, V)
        val_loss = F.cross_entropy(logits.flatten(0, 1), self.val_y.flatten()).item()
        out = {
            "val/loss": val_loss,
            "val/accuracy": (logits.argmax(-1) == self.val_y).float().mean().item(),
            "collapse/argmax_unique": metrics.argmax_unique(logits),
        }
        gen_keys = ("unique_tokens", "distinct_1", "distinct_2", "entropy", "repetition")
        if not math.isfinite(val_loss):  # sampling from NaN logits would raise
            return out | {f"collapse/{k}": math.nan for k in gen_keys}
        g = torch.Generator(self.device).manual_seed(self.cfg.seed)  # same draws every report
        seqs = generate(self.model, self.prompts, self.cfg.gen_tokens, context=self.cfg.context,
                        generator=g, **self.decoding.sampling())
        cont = seqs[:, PROMPT_TOKENS:]  # (P, gen_tokens)
        self._samples = "\n---\n".join(
            f"{self.tok.decode(p.tolist())} ||| {self.tok.decode(c.tolist())}"
            for p, c in zip(self.prompts, cont)
        )
        return out | {
            "collapse/unique_tokens": metrics.unique_tokens(cont),
            "collapse/distinct_1": metrics.distinct_n(cont, 1),
            "collapse/distinct_2": metrics.distinct_n(cont, 2),
            "collapse/entropy": metrics.unigram_entropy(cont),
            "collapse/repetition": metrics.repetition(cont),
        }

    def samples(self) -> str:
        """Latest continuations, one per prompt: ``prompt ||| continuation``."""
        return self._samples

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain types only, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "steps": self.steps,
            "diverged": self.diverged,
            "gen_state": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "samples": self._samples,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
        self.diverged = bool(state["diverged"])
        self.gen.set_state(state["gen_state"])
        torch.set_rng_state(state["torch_rng"])
        self._samples = str(state["samples"])
