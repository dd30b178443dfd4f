"""Wrapper for the built-in ``bitnet_lm`` trainable: config dict in, metrics dict out.

No Ray import: the Tune glue drives this class through ``step()`` / ``state_dict()``; the
loop, divergence and checkpoint round trip are ``collapsetune.wrapper.TorchWrapper``'s.

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
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from collapsetune import metrics, plots, regularizers
from collapsetune.configs import check_fields
from collapsetune.data import TokenData, build_tokenizer, load_text
from collapsetune.decoding import DecodingConfig, generate
from collapsetune.devices import check_device_fields
from collapsetune.models import BitNetConfig
from collapsetune.models import BitNetLM as BitNetModel
from collapsetune.wrapper import TorchWrapper

__all__ = ["BitNetLM", "BitNetLMConfig"]

VAL_SEQS = 32  # sequences in the fixed teacher-forced val batch
PROMPT_TOKENS = 8  # length of each fixed generation prompt
TOKEN_SHARES = "token_shares.png"
# Anti-collapse terms by their collapsetune.regularizers name: {constructor argument: config key}.
REGULARIZER_KEYS = {
    "label_smoothing": {"smoothing": "label_smoothing"},
    "maxsup": {"lam_start": "maxsup_start", "lam_end": "maxsup_end"},
    "confidence_penalty": {"beta": "confidence_penalty"},
    "vocab_bonus": {"weight": "vocab_bonus"},
    "output_l2": {"weight": "output_l2"},
}


@dataclass(frozen=True)
class BitNetLMConfig:
    """Every knob of the ``bitnet_lm`` trainable; names are Tune and MLflow params."""

    max_iterations: int = 20  # reports the sweep asks for; horizon of LR and MaxSup schedules
    seed: int = 0
    threads: int = 1  # torch intra-op threads; 1 so trials share cores fairly
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU Ray gave this trial if any, else cpu
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: autocast (fp16 on a GPU only)
    # data
    corpus: str | None = None  # None = pydoc_data.topics; else a text file or folder (read at build)
    tokenizer: Literal["bpe", "byte"] = "bpe"
    vocab_size: int = 512  # bpe only (>= 257); byte is always 256
    # model
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    context: int = 64
    linear: Literal["bit", "float"] = "bit"  # bit: BitLinear b1.58 | float: nn.Linear
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
    decode: Literal["greedy", "temperature", "top_k", "top_p"] = "greedy"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    gen_tokens: int = 32  # tokens generated per prompt
    gen_prompts: int = 16  # fixed prompts from the val split; 8 made greedy counts noisy

    def __post_init__(self) -> None:
        check_fields(self)
        check_device_fields(self.device, self.precision)
        positive = ("max_iterations", "threads", "batch_size", "steps_per_report", "gen_tokens",
                    "gen_prompts")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "warmup_steps", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.context <= PROMPT_TOKENS:
            raise ValueError(f"context must be > {PROMPT_TOKENS}, got {self.context}")
        if self.tokenizer == "bpe" and self.vocab_size < 257:
            raise ValueError(f"vocab_size must be >= 257 for tokenizer bpe, got {self.vocab_size}")
        self.model_config(256)  # d_model, n_layers, n_heads, context, linear
        self.decoding_config()  # temperature, top_k, top_p
        self.regularizers()  # the regularizer weights

    def model_config(self, vocab_size: int) -> BitNetConfig:
        return BitNetConfig(vocab_size=vocab_size, context=self.context, d_model=self.d_model,
                            n_layers=self.n_layers, n_heads=self.n_heads, linear=self.linear)

    def decoding_config(self) -> DecodingConfig:
        return DecodingConfig(self.decode, self.temperature, self.top_k, self.top_p)

    def regularizers(self) -> dict[str, nn.Module]:
        """The anti-collapse terms, built through the registry; their constructors check the weights."""
        built = {}
        for name, keys in REGULARIZER_KEYS.items():
            try:
                built[name] = regularizers.create(name, **{arg: getattr(self, key) for arg, key in keys.items()})
            except ValueError as exc:
                raise ValueError(f"{' / '.join(keys.values())}: {exc}") from None
        return built


class BitNetLM(TorchWrapper):
    """BitNet b1.58 LM on an offline corpus, reporting loss and collapse metrics.

    Example:
        >>> lm = BitNetLM({"tokenizer": "byte", "max_iterations": 10})  # doctest: +SKIP
        >>> lm.step()["collapse/unique_tokens"]  # doctest: +SKIP
        7.0
    """

    config_class = BitNetLMConfig  # lets `collapsetune validate` check keys before any trial
    # Two token counts, read differently:
    #   collapse/unique_tokens   distinct tokens in what the model *generates* from fixed
    #                            prompts (decode: greedy by default): what a user sees; the
    #                            shipped sweeps' rules use it.
    #   collapse/argmax_unique   distinct top-1 predictions under teacher forcing on fixed
    #                            val text: the count seeds/003 measured (docs/background.md).
    # distinct_1/2 are the ratios of distinct uni/bigrams in the generations, entropy their
    # unigram entropy (nats) and repetition the share of repeated bigrams.
    reported_metrics = ("train/loss", "val/loss", "val/accuracy", "collapse/argmax_unique",
                        "collapse/unique_tokens", "collapse/distinct_1", "collapse/distinct_2",
                        "collapse/entropy", "collapse/repetition", "train/lr")

    # Knobs a PBT copy may change without building the wrapper again (tokenizing the corpus):
    # read from self.cfg at each step, or re-derived by retune.
    retunable = ("lr", "weight_decay", "warmup_steps", "grad_clip", "batch_size",
                 *(key for keys in REGULARIZER_KEYS.values() for key in keys.values()),  # the regularizer weights
                 "decode", "temperature", "top_k", "top_p")

    def build(self, cfg: BitNetLMConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
        text = load_text(cfg.corpus)
        self.tok = build_tokenizer(cfg.tokenizer, text, cfg.vocab_size)
        self.data = TokenData(torch.tensor(self.tok.encode(text)))
        model = BitNetModel(cfg.model_config(self.tok.vocab_size))  # the kit puts it on the trial's device
        # Norm gains, biases and embeddings are not decayed (nanoGPT's split).
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "emb" in n]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95),
        )
        self.terms = cfg.regularizers()
        self.decoding = cfg.decoding_config()

        # Fixed evaluation inputs, drawn from their own seed so they never depend on training.
        g = torch.Generator().manual_seed(10_000 + cfg.seed)
        self.val_x, self.val_y = self.data.batch("val", VAL_SEQS, cfg.context, g)
        starts = torch.linspace(0, len(self.data.val) - PROMPT_TOKENS - 1, cfg.gen_prompts).long()
        self.prompts = self.data.val[starts[:, None] + torch.arange(PROMPT_TOKENS)]  # (P, 8)
        self._samples = ""
        self._argmax = self._generated = None  # the last report's tokens, for the picture
        return model, opt

    def retune(self, cfg: BitNetLMConfig) -> None:
        """A PBT copy's knobs on the kept wrapper: the optimizer settings and the terms `build` made."""
        decay, _ = self.optimizer.param_groups
        decay["weight_decay"] = cfg.weight_decay
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr  # as built; lr_at sets each step's
        self.terms = cfg.regularizers()
        self.decoding = cfg.decoding_config()

    def lr_at(self, step: int) -> float:
        """Linear warmup, then cosine decay to 10% of ``lr`` at the sweep horizon."""
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = min(1.0, (step - cfg.warmup_steps) / max(1, self.total_steps - cfg.warmup_steps))
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    def train_loss(self) -> torch.Tensor:
        x, y = self.data.batch("train", self.cfg.batch_size, self.cfg.context, self.generator)
        return self._loss(self.model(self.to_device(x)), self.to_device(y))

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cfg, terms = self.cfg, self.terms
        logits, y = logits.flatten(0, 1), y.flatten()  # (B*T, V), (B*T,)
        loss = terms["label_smoothing"](logits, y)
        if cfg.maxsup_start or cfg.maxsup_end:
            terms["maxsup"].set_progress(self.steps / self.total_steps)
            loss = loss + terms["maxsup"].penalty(logits)
        for name in ("confidence_penalty", "vocab_bonus"):
            if getattr(cfg, name):  # weight 0: skip the work
                loss = loss + terms[name](logits, y)
        if cfg.output_l2:
            loss = loss + terms["output_l2"](self.model.lm_head.weight)
        return loss

    def evaluate(self) -> dict[str, float]:
        """Teacher-forced val metrics plus collapse metrics of generated continuations."""
        logits = self.model(self.val_x)  # (B, T, V)
        val_loss = F.cross_entropy(logits.flatten(0, 1), self.val_y.flatten()).item()
        self._argmax = logits.argmax(-1)  # (B, T)
        out = {
            "val/loss": val_loss,
            "val/accuracy": (self._argmax == self.val_y).float().mean().item(),
            "collapse/argmax_unique": metrics.argmax_unique(logits),
        }
        gen_keys = ("unique_tokens", "distinct_1", "distinct_2", "entropy", "repetition")
        if not math.isfinite(val_loss):  # sampling from NaN logits would raise
            # No continuations this report: none of an earlier report's (or, on a wrapper kept
            # for a PBT copy, another trial's) text goes out as this report's samples or picture.
            self._samples, self._generated = "", None
            return out | {f"collapse/{k}": math.nan for k in gen_keys} | {"train/lr": self.lr_at(self.steps)}
        g = torch.Generator().manual_seed(self.cfg.seed)  # same draws every report, on every device
        seqs = generate(self.model, self.prompts, self.cfg.gen_tokens, context=self.cfg.context,
                        generator=g, **self.decoding.sampling())
        cont = self._generated = seqs[:, PROMPT_TOKENS:]  # (P, gen_tokens)
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
            "train/lr": self.lr_at(self.steps),  # the scheduled LR now; the param lr is its peak
        }

    def samples(self) -> str:
        """Latest continuations, one per prompt: ``prompt ||| continuation``."""
        return self._samples

    def write_artifacts(self, directory: str) -> None:
        """``token_shares.png``: the most frequent tokens of the last report's continuations and
        of its teacher-forced argmax, with their shares (a collapsed LM is one tall bar)."""
        streams = {"generated continuations": self._generated, "teacher-forced argmax (val)": self._argmax}
        panels = []
        for title, tokens in streams.items():
            if tokens is not None:
                ids, counts = torch.unique(tokens.cpu(), return_counts=True)
                order = counts.argsort(descending=True, stable=True)
                labels = [self._label(i) for i in ids[order].tolist()]
                panels.append((title, labels, (counts[order] / counts.sum()).numpy()))
        plots.token_shares(panels, Path(directory) / TOKEN_SHARES,
                           note=f" - report {self.reports}, step {self.steps}")

    def _label(self, token: int) -> str:
        text = self.tok.decode([token])
        return repr(text) if "\ufffd" not in text else f"#{token}"  # part of a multi-byte character
