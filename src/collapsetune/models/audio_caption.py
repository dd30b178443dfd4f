"""Audio captioner: log-mel CNN encoder + GRU decoder, with the seed's fixes as options (seeds/002).

The seed's collapsing model max-pools the CNN's output over time (one vector per clip) and
gives the audio to the decoder only as its initial state. Its architecture fixes are
options here: ``pooling="time_preserving"`` keeps a sequence of audio frames,
``audio_injection="every_step"`` feeds audio beside every word, ``attention="additive"``
(Bahdanau) lets each step look at the frames it needs. Training fixes: label smoothing
(in the loss), scheduled sampling (:func:`sampling_prob`, Bengio et al. 2015) and
SpecAugment (:func:`spec_augment`, Park et al. 2019).

Example:
    >>> m = AudioCaptioner(AudioCaptionerConfig(vocab_size=20))
    >>> m(torch.randn(2, 64, 50), torch.randint(3, 20, (2, 7))).shape
    torch.Size([2, 7, 20])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["BOS", "EOS", "PAD", "AudioCaptioner", "AudioCaptionerConfig", "sampling_prob", "spec_augment"]

PAD, BOS, EOS = 0, 1, 2  # fixed ids at the front of every caption vocabulary
POOLINGS = ("max", "time_preserving")
INJECTIONS = ("init", "every_step")
ATTENTIONS = ("none", "additive")
SS_SCHEDULES = ("linear", "exponential", "inverse_sigmoid")


@dataclass(frozen=True)
class AudioCaptionerConfig:
    """Shape and options of the captioner; unknown or bad values are errors."""

    vocab_size: int
    n_mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64)  # one conv block each; frequency halves per block
    pooling: str = "max"  # max: max over time (seed) | time_preserving: keep a frame sequence
    audio_injection: str = "init"  # init: audio only sets h0 (seed) | every_step: also beside each word
    attention: str = "none"  # none | additive (Bahdanau); implies audio at every step (over 1 frame after max pooling)
    embed_dim: int = 64
    hidden: int = 128  # GRU state
    dropout: float = 0.2

    def __post_init__(self) -> None:
        for name, value, valid in (("pooling", self.pooling, POOLINGS),
                                   ("audio_injection", self.audio_injection, INJECTIONS),
                                   ("attention", self.attention, ATTENTIONS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
        if self.vocab_size <= EOS:
            raise ValueError(f"vocab_size must be > {EOS}, got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def sampling_prob(schedule: str, progress: float, max_prob: float) -> float:
    """Scheduled sampling: probability of feeding the model's own previous word.

    Bengio et al. (2015) decay the teacher-forcing probability eps; here over training
    progress p in [0, 1]: linear eps = 1 - p, exponential eps = 0.01**p, inverse sigmoid
    eps = 1 / (1 + exp(10 (p - 0.5))). Returns min(max_prob, 1 - eps).
    """
    if schedule not in SS_SCHEDULES:
        raise ValueError(f"ss_schedule must be one of {list(SS_SCHEDULES)}, got {schedule!r}")
    p = min(max(progress, 0.0), 1.0)
    eps = {"linear": 1.0 - p, "exponential": 0.01 ** p,
           "inverse_sigmoid": 1.0 / (1.0 + math.exp(10.0 * (p - 0.5)))}[schedule]
    return min(max_prob, 1.0 - eps)


def spec_augment(x: torch.Tensor, freq_width: int, time_width: int, n_masks: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment masks on (B, M, T) features: ``n_masks`` frequency and time bands each,
    widths uniform in [0, width], filled with each clip's mean (a silent band would be a
    new, unnatural sound)."""
    b, m, t = x.shape
    out = x.clone()
    fill = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
    for size, width, axis in ((m, freq_width, 1), (t, time_width, 2)):
        for _ in range(n_masks):
            # Drawn on the generator's device (the CPU's, in the kit): same masks on every device.
            w = torch.randint(0, width + 1, (b, 1), generator=generator)
            start = (torch.rand(b, 1, generator=generator) * (size - w).clamp(min=1)).long()
            pos = torch.arange(size)[None, :]
            band = ((pos >= start) & (pos < start + w)).to(x.device)  # (B, size)
            band = band[:, :, None] if axis == 1 else band[:, None, :]
            out = torch.where(band, fill, out)
    return out


class Encoder(nn.Module):
    """Log-mel (B, M, T) -> audio frames (B, T', C): T' = 1 for ``max`` pooling, T // 4 otherwise."""

    def __init__(self, cfg: AudioCaptionerConfig) -> None:
        super().__init__()
        blocks, c_in = [], 1
        for i, c in enumerate(cfg.channels):
            # Time halves in the first two blocks only: frames stay ~80 ms apart, fine
            # enough to tell events and their repetitions apart.
            pool = (2, 2) if i < 2 else (2, 1)
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d(pool), nn.Dropout2d(cfg.dropout / 2)]
            c_in = c
        self.cnn = nn.Sequential(*blocks)
        self.pooling = cfg.pooling
        self.dim = c_in

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.cnn(mel.unsqueeze(1))  # (B, C, M', T')
        h = h.mean(dim=2).transpose(1, 2)  # (B, T', C): frequency averaged away
        if self.pooling == "max":
            h = h.max(dim=1, keepdim=True).values  # (B, 1, C): order and count are gone
        return h


class AdditiveAttention(nn.Module):
    """Bahdanau attention: score(h, f) = v . tanh(W h + U f)."""

    def __init__(self, query: int, key: int, dim: int = 64) -> None:
        super().__init__()
        self.w, self.u, self.v = nn.Linear(query, dim), nn.Linear(key, dim, bias=False), nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor, frames: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        # h (N, H), frames (N, T', C), keys = self.u(frames) precomputed (N, T', D)
        score = self.v(torch.tanh(keys + self.w(h)[:, None, :])).squeeze(-1)  # (N, T')
        return torch.einsum("nt,ntc->nc", score.softmax(-1), frames)  # (N, C)


class AudioCaptioner(nn.Module):
    """CNN encoder + GRU decoder. ``forward`` is teacher-forced (optionally with scheduled
    sampling); ``init_state`` / ``step`` drive one token at a time for decoding.

    Example:
        >>> cfg = AudioCaptionerConfig(vocab_size=20, pooling="time_preserving", attention="additive")
        >>> m = AudioCaptioner(cfg)
        >>> state = m.init_state(torch.randn(3, 64, 40))
        >>> m.step(torch.full((3,), BOS), state)[0].shape
        torch.Size([3, 20])
    """

    def __init__(self, cfg: AudioCaptionerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        c, h = self.encoder.dim, cfg.hidden
        self.uses_context = cfg.audio_injection == "every_step" or cfg.attention != "none"
        self.init_h = nn.Linear(c, h)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD)
        self.gru = nn.GRUCell(cfg.embed_dim + (c if self.uses_context else 0), h)
        self.attn = AdditiveAttention(h, c) if cfg.attention == "additive" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(h + (c if self.uses_context else 0), cfg.vocab_size)

    def init_state(self, mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decoder state for clips (B, M, T): (h (B, H), frames (B, T', C), keys (B, T', D))."""
        frames = self.encoder(mel)  # (B, T', C)
        h = torch.tanh(self.init_h(frames.mean(dim=1)))  # (B, H)
        keys = self.attn.u(frames) if self.attn is not None else frames[:, :, :0]
        return h, frames, keys

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple]:
        """One decoding step: previous tokens (N,) -> next-token logits (N, V), new state."""
        h, frames, keys = state
        x = self.drop(self.embed(tokens))  # (N, E)
        if self.uses_context:
            ctx = self.attn(h, frames, keys) if self.attn is not None else frames.mean(dim=1)  # (N, C)
            x = torch.cat([x, ctx], dim=-1)
        h = self.gru(x, h)
        feats = torch.cat([h, ctx], dim=-1) if self.uses_context else h
        return self.out(self.drop(feats)), (h, frames, keys)

    def forward(self, mel: torch.Tensor, inputs: torch.Tensor, ss_prob: float = 0.0,
                generator: torch.Generator | None = None, repeats: int = 1) -> torch.Tensor:
        """Logits (B * repeats, L, V) for caption inputs (B * repeats, L) (BOS first), clip b
        captioned by rows b * repeats .. (b + 1) * repeats - 1 (its references, encoded once).
        With ``ss_prob > 0`` each input after the first is replaced, with that probability,
        by the model's own greedy word from the previous step (scheduled sampling)."""
        state = tuple(t.repeat_interleave(repeats, dim=0) for t in self.init_state(mel))
        logits, tokens = [], inputs[:, 0]
        for t in range(inputs.size(1)):
            if t > 0:
                tokens = inputs[:, t]
                if ss_prob > 0:
                    own = (torch.rand(tokens.shape, generator=generator) < ss_prob).to(tokens.device)
                    tokens = torch.where(own, logits[-1].detach().argmax(-1), tokens)
            step_logits, state = self.step(tokens, state)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)
