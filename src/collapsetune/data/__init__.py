"""Offline data: text corpora, local tokenizers and seeded batches."""

from __future__ import annotations

from collapsetune.data.text import (
    BPETokenizer,
    ByteTokenizer,
    TokenData,
    build_tokenizer,
    cache_dir,
    load_text,
)

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "TokenData",
    "build_tokenizer",
    "cache_dir",
    "load_text",
]
