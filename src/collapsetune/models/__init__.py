"""Reference models: the BitNet b1.58 language model (and its BitLinear layer), the
MoP-CLIP mixture-of-prompts learner and the CNN + GRU audio captioner."""

from __future__ import annotations

from collapsetune.models.audio_caption import (
    AudioCaptioner,
    AudioCaptionerConfig,
    sampling_prob,
    spec_augment,
)
from collapsetune.models.bitlinear import BitLinear, absmax_int8, absmean_ternary
from collapsetune.models.bitnet_lm import BitNetConfig, BitNetLM
from collapsetune.models.mop_clip import MopClip, MopClipConfig, tau_at

__all__ = [
    "AudioCaptioner",
    "AudioCaptionerConfig",
    "sampling_prob",
    "spec_augment",
    "BitLinear",
    "BitNetConfig",
    "BitNetLM",
    "MopClip",
    "MopClipConfig",
    "absmax_int8",
    "absmean_ternary",
    "tau_at",
]
