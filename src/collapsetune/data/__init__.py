"""Offline data: text corpora, local tokenizers and seeded batches; cached image features;
synthetic and Clotho audio captions; atomic file writes for caches and artifacts."""

from __future__ import annotations

from collapsetune.data._atomic import atomic_path
from collapsetune.data.audio import (
    SYNTHETIC,
    AudioCaptionSet,
    Clip,
    MelSpec,
    caption_words,
    load_audio_captions,
    load_clotho,
    log_mel,
    synthesize_clips,
    write_clotho,
)
from collapsetune.data.features import (
    DIGITS,
    FeatureSet,
    build_digits_features,
    load_features,
    save_features,
)
from collapsetune.data.text import (
    BPETokenizer,
    ByteTokenizer,
    TokenData,
    build_tokenizer,
    cache_dir,
    load_text,
)

__all__ = [
    "atomic_path",
    "SYNTHETIC",
    "AudioCaptionSet",
    "Clip",
    "MelSpec",
    "caption_words",
    "load_audio_captions",
    "load_clotho",
    "log_mel",
    "synthesize_clips",
    "write_clotho",
    "DIGITS",
    "FeatureSet",
    "build_digits_features",
    "load_features",
    "save_features",
    "BPETokenizer",
    "ByteTokenizer",
    "TokenData",
    "build_tokenizer",
    "cache_dir",
    "load_text",
]
