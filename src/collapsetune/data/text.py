"""Offline text corpora, local tokenizers and seeded LM batches.

The default corpus is CPython's bundled documentation (``pydoc_data.topics``, ~465 KB of
English present on every Python install), so nothing is ever downloaded.

Example:
    >>> tok = ByteTokenizer()
    >>> data = TokenData(torch.tensor(tok.encode("hello world " * 50)))
    >>> x, y = data.batch("train", 4, 8, torch.Generator().manual_seed(0))
    >>> x.shape
    torch.Size([4, 8])
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from collapsetune.data._atomic import atomic_path

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "TokenData",
    "build_tokenizer",
    "cache_dir",
    "load_text",
]

TEXT_SUFFIXES = (".txt", ".tokens")


def load_text(corpus: str | os.PathLike[str] | None = None) -> str:
    """Return the corpus text.

    Args:
        corpus: None for ``pydoc_data.topics``; a text file; or a folder whose ``*.txt`` and
            WikiText-style ``*.tokens`` files (searched recursively, sorted) are joined.

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: A folder holds no text files, or the text is empty.
    """
    if corpus is None:
        from pydoc_data.topics import topics

        return "\n\n".join(topics[k] for k in sorted(topics))
    path = Path(corpus).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"corpus path does not exist: {path}")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise ValueError(f"corpus folder {path} has no {' or '.join(TEXT_SUFFIXES)} files")
        text = "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"corpus {path} is empty")
    return text


def cache_dir() -> Path:
    """``$COLLAPSETUNE_CACHE`` if set, else ``~/.cache/collapsetune``."""
    return Path(os.environ.get("COLLAPSETUNE_CACHE") or Path.home() / ".cache" / "collapsetune")


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255: no training, no unknown tokens."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


class BPETokenizer:
    """Byte-level BPE (GPT-2 style) trained locally with HF ``tokenizers`` and cached on disk.

    The cache file is keyed by corpus hash and vocab size and written atomically (temp file
    then ``os.replace``) because several Ray workers may train the same tokenizer at once.

    Example:
        >>> tok = BPETokenizer.train_or_load("some text " * 100, vocab_size=300)
        >>> tok.decode(tok.encode("some text"))
        'some text'
    """

    def __init__(self, tokenizer: object) -> None:
        self._tok = tokenizer
        self.vocab_size: int = tokenizer.get_vocab_size()

    @classmethod
    def train_or_load(
        cls, text: str, vocab_size: int, directory: str | os.PathLike[str] | None = None
    ) -> BPETokenizer:
        from tokenizers import Tokenizer

        if vocab_size < 257:
            raise ValueError(f"vocab_size must be >= 257 for byte-level BPE, got {vocab_size}")
        folder = Path(directory) if directory is not None else cache_dir()
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        path = folder / f"bpe-{digest}-v{vocab_size}.json"
        if path.exists():
            return cls(Tokenizer.from_file(str(path)))
        tok = _train_bpe(text, vocab_size)
        with atomic_path(path) as tmp:
            tok.save(str(tmp))
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([int(i) for i in ids])


def _train_bpe(text: str, vocab_size: int) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no unknowns
        show_progress=False,
    )
    # Chunked so the trainer sees line-sized "sentences" rather than one 465 KB string.
    lines = text.splitlines()
    tok.train_from_iterator(
        ("\n".join(lines[i : i + 64]) for i in range(0, len(lines), 64)), trainer=trainer
    )
    return tok


def build_tokenizer(
    name: str, text: str, vocab_size: int = 512
) -> ByteTokenizer | BPETokenizer:
    """``"byte"`` or ``"bpe"`` (trained on ``text`` with ``vocab_size`` ids, cached)."""
    if name == "byte":
        return ByteTokenizer()
    if name == "bpe":
        return BPETokenizer.train_or_load(text, vocab_size)
    raise ValueError(f"tokenizer must be 'byte' or 'bpe', got {name!r}")


class TokenData:
    """A token stream split deterministically: the last ``val_frac`` is validation.

    Example:
        >>> data = TokenData(torch.arange(100))
        >>> data.val.tolist()[:3]
        [90, 91, 92]
    """

    def __init__(self, tokens: torch.Tensor, val_frac: float = 0.1) -> None:
        if not 0.0 < val_frac < 1.0:
            raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        n_val = max(1, int(len(tokens) * val_frac))
        self.train, self.val = tokens[:-n_val], tokens[-n_val:]

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val

    def batch(
        self, split: str, batch_size: int, context: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: inputs (B, T) and next-token targets (B, T)."""
        data = self.split(split)
        if len(data) <= context + 1:
            raise ValueError(f"{split} split has {len(data)} tokens, need > {context + 1}")
        starts = torch.randint(len(data) - context - 1, (batch_size,), generator=generator)
        offsets = starts[:, None] + torch.arange(context + 1)  # (B, T+1)
        window = data[offsets]
        return window[:, :-1], window[:, 1:]
