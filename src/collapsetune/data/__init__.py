"""Offline data: text corpora, local tokenizers and seeded batches; cached image features."""

from __future__ import annotations

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
