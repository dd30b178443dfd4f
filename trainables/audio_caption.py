"""Wrapper for the built-in ``audio_caption`` trainable: config dict in, metrics dict out.

Trains a CNN + GRU captioner (collapsetune.models.audio_caption) on the synthetic
sound-event set or a Clotho folder, decodes the validation clips with the configured
strategy and reports loss, BLEU-4, CIDEr-D and caption-collapse metrics. No Ray import; the
loop, divergence and checkpoint round trip are ``collapsetune.wrapper.TorchWrapper``'s.

Decoding-only sweeps (the seed's first priority: no retraining). Every trial writes its
weights to ``captioner.pt`` among its artifacts (also in MLflow). Point ``checkpoint`` at
such a file and set ``train: false``: the trial loads the weights, skips training and
only decodes, so ``max_iterations: 1`` is enough. The architecture keys (``pooling``,
``audio_injection``, ``attention``, ``embed_dim``, ``hidden``) must equal the
checkpoint's; a mismatch is an error that names the values to set. See
docs/audio_caption.md.

Example:
    >>> m = AudioCaption({"n_clips": 60, "val_clips": 20, "steps_per_report": 2,
    ...                   "max_iterations": 1})  # doctest: +SKIP
    >>> 0 < m.step()["collapse/unique_captions"] <= 1  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from collapsetune import metrics as cm  # benchmarks/model_cost.py times these calls as cm.*
from collapsetune.configs import check_fields
from collapsetune.data import atomic_path
from collapsetune.data.audio import SYNTHETIC, MelSpec, caption_words, check_dataset, load_audio_captions
from collapsetune.decoding import SequenceDecodingConfig, decode_sequences
from collapsetune.devices import check_device_fields
from collapsetune.models.audio_caption import (
    BOS,
    EOS,
    PAD,
    AudioCaptioner,
    AudioCaptionerConfig,
    sampling_prob,
    spec_augment,
)
from collapsetune.wrapper import TorchWrapper

__all__ = ["AudioCaption", "AudioCaptionTrainConfig"]

UNK = 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
WEIGHTS_FILE = "captioner.pt"
SAMPLES_FILE = "samples.txt"
ARCH_KEYS = ("pooling", "audio_injection", "attention", "embed_dim", "hidden")


@dataclass(frozen=True)
class AudioCaptionTrainConfig:
    """Every knob of the ``audio_caption`` trainable; names are Tune and MLflow params."""

    max_iterations: int = 10  # reports the sweep asks for; horizon of scheduled sampling
    seed: int = 0
    threads: int = 1  # torch intra-op threads; 1 so trials share cores fairly
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU Ray gave this trial if any, else cpu
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: autocast (fp16 on a GPU only)
    # data
    dataset: str = SYNTHETIC  # "synthetic", "synthetic_scenes" (harder: holds the collapse) or a Clotho folder
    n_clips: int = 1200  # synthetic only
    data_seed: int = 0  # synthetic only: which clips
    clip_seconds: float = 2.5  # clips cropped / padded to this; Clotho users raise it; scene clips are this long
    val_clips: int = 200  # the last clips: val loss and decoding metrics
    max_caption_len: int = 30  # words, eos excluded; longer references are cut
    # model (collapsetune.models.AudioCaptionerConfig)
    pooling: str = "max"  # seed: max over time
    audio_injection: str = "init"  # seed: initial state only
    attention: str = "none"
    embed_dim: int = 64
    hidden: int = 128
    dropout: float = 0.2
    # training
    train: bool = True  # false: decode a loaded checkpoint only
    checkpoint: str | None = None  # a captioner.pt written by an earlier trial
    lr: float = 2e-3  # AdamW, constant
    weight_decay: float = 1e-4
    batch_size: int = 32
    steps_per_report: int = 50
    grad_clip: float = 5.0  # max grad norm; 0 = off
    label_smoothing: float = 0.0
    scheduled_sampling: float = 0.0  # max probability of feeding the model's own word; 0 = off
    ss_schedule: str = "linear"  # linear | exponential | inverse_sigmoid
    specaugment: bool = False
    freq_mask: int = 8  # max width of each SpecAugment frequency band (mel bins)
    time_mask: int = 12  # max width of each time band (frames of 20 ms)
    n_masks: int = 2  # bands of each kind
    # decoding (collapsetune.decoding.SequenceDecodingConfig)
    decoding: str = "greedy"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam_size: int = 5
    beam_groups: int = 1
    diversity_penalty: float = 0.0
    length_penalty: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self)
        check_device_fields(self.device, self.precision)
        check_dataset(self.dataset)
        for name in ("max_iterations", "threads", "n_clips", "val_clips", "max_caption_len", "batch_size",
                     "embed_dim", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "steps_per_report", "n_masks", "freq_mask", "time_mask"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.clip_seconds > 0:
            raise ValueError(f"clip_seconds must be > 0, got {self.clip_seconds}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")
        if not self.train and self.checkpoint is None:
            raise ValueError("train: false needs a checkpoint to decode (a captioner.pt)")
        sampling_prob(self.ss_schedule, 0.0, 0.0)  # validates the schedule name
        self.decoding_config()
        self.model_config(10)

    def model_config(self, vocab_size: int) -> AudioCaptionerConfig:
        return AudioCaptionerConfig(vocab_size=vocab_size, dropout=self.dropout,
                                    **{k: getattr(self, k) for k in ARCH_KEYS})

    def decoding_config(self) -> SequenceDecodingConfig:
        return SequenceDecodingConfig(self.decoding, self.temperature, self.top_k, self.top_p, self.beam_size,
                                      self.beam_groups, self.diversity_penalty, self.length_penalty)


class AudioCaption(TorchWrapper):
    """Audio captioner trial: trains, decodes the val clips, reports quality and collapse.

    Example:
        >>> m = AudioCaption({"pooling": "time_preserving", "audio_injection": "every_step",
        ...                   "max_iterations": 10})  # doctest: +SKIP
        >>> m.step()["collapse/unique_captions"]  # doctest: +SKIP
        0.62
    """

    config_class = AudioCaptionTrainConfig  # lets `collapsetune validate` check keys before any trial
    reported_metrics = ("train/loss", "val/loss", "val/bleu4", "val/cider_d", "val/caption_len",
                        "collapse/unique_captions", "collapse/top_caption_share", "collapse/distinct_1",
                        "collapse/distinct_2", "collapse/vocab_used")  # train/loss only when it trains

    # Knobs a PBT copy may change without building the wrapper again (synthesizing or reading
    # the clips): read from self.cfg at each step, or re-derived by retune.
    retunable = ("lr", "weight_decay", "batch_size", "grad_clip", "label_smoothing", "scheduled_sampling",
                 "ss_schedule", "specaugment", "freq_mask", "time_mask", "n_masks", "decoding", "temperature",
                 "top_k", "top_p", "beam_size", "beam_groups", "diversity_penalty", "length_penalty")

    def build(self, cfg: AudioCaptionTrainConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
        ds = load_audio_captions(cfg.dataset, cfg.n_clips, cfg.data_seed, MelSpec(seconds=cfg.clip_seconds))
        if cfg.val_clips >= len(ds.names):
            raise ValueError(f"val_clips ({cfg.val_clips}) must be < the {len(ds.names)} clips of {cfg.dataset}")
        n_train = len(ds.names) - cfg.val_clips
        saved = self._read_checkpoint(cfg.checkpoint) if cfg.checkpoint else None
        if saved is not None:
            self.vocab = list(saved["vocab"])
            self.mean, self.std = float(saved["mean"]), float(saved["std"])
        else:
            words = sorted({w for caps in ds.captions[:n_train] for c in caps for w in caption_words(c)})
            self.vocab = [*SPECIALS, *words]
            self.mean, self.std = float(ds.features[:n_train].mean()), float(ds.features[:n_train].std())
        self.index = {w: i for i, w in enumerate(self.vocab)}
        feats = torch.from_numpy((ds.features - self.mean) / self.std)  # (N, M, T), normalised by train stats
        self.x_train, self.x_val = feats[:n_train], feats[n_train:]
        self.y_train = self._encode(ds.captions[:n_train])  # (N, 5, L+2): bos, words, eos, pad
        self.y_val = self._encode(ds.captions[n_train:])
        self.val_refs = [[caption_words(c) for c in caps] for caps in ds.captions[n_train:]]
        self.val_names = ds.names[n_train:]

        model = AudioCaptioner(cfg.model_config(len(self.vocab)))
        if saved is not None:
            model.load_state_dict(saved["model"])
        self.decoding = cfg.decoding_config()
        self.generated: list[list[str]] = []
        return model, torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _read_checkpoint(self, path: str) -> dict[str, Any]:
        saved = torch.load(Path(path).expanduser(), weights_only=True, map_location="cpu")
        wrong = {k: saved["arch"][k] for k in ARCH_KEYS if saved["arch"][k] != getattr(self.cfg, k)}
        if wrong:
            raise ValueError(f"checkpoint {path} was trained with {wrong}; set these values in the sweep's config")
        return saved

    def _encode(self, captions: list[list[str]]) -> torch.Tensor:
        length = self.cfg.max_caption_len + 2
        out = torch.full((len(captions), len(captions[0]), length), PAD, dtype=torch.long)
        for i, caps in enumerate(captions):
            for j, c in enumerate(caps):
                ids = [BOS, *(self.index.get(w, UNK) for w in caption_words(c))][: length - 1] + [EOS]
                out[i, j, : len(ids)] = torch.tensor(ids)
        return out

    def _loss(self, mel: torch.Tensor, y: torch.Tensor, smoothing: float, ss_prob: float = 0.0,
              repeats: int = 1) -> torch.Tensor:
        used = int((y != PAD).sum(dim=1).max())  # trim the padding every caption shares
        y = y[:, :used]
        logits = self.model(mel, y[:, :-1], ss_prob, self.generator, repeats)  # (B * repeats, L, V)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1),
                               ignore_index=PAD, label_smoothing=smoothing)

    def retune(self, cfg: AudioCaptionTrainConfig) -> None:
        """A PBT copy's knobs on the kept wrapper: AdamW's settings and the decoding `build` made."""
        for group in self.optimizer.param_groups:
            group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
        self.decoding = cfg.decoding_config()

    def steps_this_report(self) -> int:
        return self.cfg.steps_per_report if self.cfg.train else 0  # train: false only decodes

    def train_loss(self) -> torch.Tensor:
        cfg = self.cfg
        idx = torch.randint(len(self.x_train), (cfg.batch_size,), generator=self.generator)
        pick = torch.randint(self.y_train.size(1), (cfg.batch_size,), generator=self.generator)  # all 5 refs used
        mel = self.x_train[idx]
        if cfg.specaugment:
            mel = spec_augment(mel, cfg.freq_mask, cfg.time_mask, cfg.n_masks, self.generator)
        ss = sampling_prob(cfg.ss_schedule, self.steps / max(1, self.total_steps), cfg.scheduled_sampling)
        return self._loss(mel, self.y_train[idx, pick], cfg.label_smoothing, ss)

    def evaluate(self) -> dict[str, float]:
        """Teacher-forced val loss over all 5 references; decoding metrics over the val clips."""
        n, refs = self.y_val.shape[:2]
        val_loss = self._loss(self.x_val, self.y_val.reshape(n * refs, -1), 0.0, repeats=refs).item()
        g = torch.Generator().manual_seed(10_000 + self.cfg.seed)  # same samples for the same weights
        ids = []
        for start in range(0, n, 100):  # bounded memory for wide beams
            state = self.model.init_state(self.x_val[start:start + 100])
            ids.append(decode_sequences(self.model.step, state, BOS, EOS, self.cfg.max_caption_len + 1,
                                        self.decoding, g))
        self.generated = [self._words(row) for batch in ids for row in batch.tolist()]
        caps = self.generated
        return {
            "val/loss": val_loss,
            "val/bleu4": cm.bleu4(caps, self.val_refs),
            "val/cider_d": cm.cider_d(caps, self.val_refs),
            "val/caption_len": float(np.mean([len(c) for c in caps])),
            "collapse/unique_captions": cm.unique_captions(caps),
            "collapse/top_caption_share": cm.top_caption_share(caps),
            "collapse/distinct_1": cm.distinct_ngrams(caps, 1),
            "collapse/distinct_2": cm.distinct_ngrams(caps, 2),
            "collapse/vocab_used": float(cm.vocab_used(caps)),
        }

    def _words(self, ids: list[int]) -> list[str]:
        words = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.vocab[i])
        return words

    def samples(self) -> str:
        """The first 8 val clips: generated caption beside one reference (MLflow, each report)."""
        return "\n".join(f"{self.val_names[i]}: {' '.join(self.generated[i])!r} | ref: {' '.join(self.val_refs[i][0])!r}"
                         for i in range(min(8, len(self.generated))))

    def write_artifacts(self, directory: str) -> None:
        """``samples.txt`` (every val clip: generated caption and its 5 references) and
        ``captioner.pt`` (weights, vocabulary, feature statistics, architecture) for
        decoding-only sweeps."""
        lines = []
        for name, gen, refs in zip(self.val_names, self.generated, self.val_refs):
            lines += [f"{name}", f"  generated: {' '.join(gen)}", *(f"  ref {j + 1}: {' '.join(r)}" for j, r in enumerate(refs)), ""]
        Path(directory, SAMPLES_FILE).write_text("\n".join(lines), encoding="utf-8")
        model = {k: v.cpu() for k, v in self.model.state_dict().items()}  # a CPU-only decoding sweep reads it too
        weights = {"model": model, "vocab": self.vocab, "mean": self.mean, "std": self.std,
                   "arch": {k: getattr(self.cfg, k) for k in ARCH_KEYS}}
        with atomic_path(Path(directory, WEIGHTS_FILE)) as tmp:  # a decoding sweep may be reading it
            torch.save(weights, tmp)
