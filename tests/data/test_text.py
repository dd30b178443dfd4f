from __future__ import annotations

import pytest
import torch

from collapsetune.data import (
    BPETokenizer,
    ByteTokenizer,
    TokenData,
    build_tokenizer,
    cache_dir,
    load_text,
)


def test_load_text_default_is_pydoc_topics():
    text = load_text()
    assert len(text) > 400_000 and "assert" in text


def test_load_text_file_and_folder(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("hello")
    assert load_text(f) == "hello"
    folder = tmp_path / "wiki"
    (folder / "sub").mkdir(parents=True)
    (folder / "wiki.train.tokens").write_text("one")
    (folder / "sub" / "b.txt").write_text("two")
    (folder / "ignored.csv").write_text("x")
    text = load_text(str(folder))
    assert "one" in text and "two" in text and "x" not in text


def test_load_text_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_text(tmp_path / "nope")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty_dir"):
        load_text(empty)


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    ids = tok.encode("héllo")
    assert max(ids) < 256 and tok.decode(ids) == "héllo"


def test_bpe_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    text = load_text()[:50_000]
    tok = build_tokenizer("bpe", text, vocab_size=300)
    files = list(tmp_path.glob("bpe-*-v300.json"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    again = BPETokenizer.train_or_load(text, 300)  # now read from the cache file
    sample = text[:500]
    assert again.encode(sample) == tok.encode(sample)
    assert again.decode(again.encode(sample)) == sample
    assert tok.vocab_size == 300


def test_bpe_rejects_small_vocab_and_unknown_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="vocab_size must be >= 257"):
        build_tokenizer("bpe", "abc", vocab_size=100)
    with pytest.raises(ValueError, match="'char'"):
        build_tokenizer("char", "abc")


def test_token_data_split_and_seeded_batches():
    data = TokenData(torch.arange(1000))
    assert data.train[-1].item() == 899 and data.val[0].item() == 900
    x1, y1 = data.batch("val", 4, 8, torch.Generator().manual_seed(3))
    x2, y2 = data.batch("val", 4, 8, torch.Generator().manual_seed(3))
    assert torch.equal(x1, x2) and torch.equal(y1, x1 + 1)
    assert (x1 >= 900).all()
    with pytest.raises(ValueError, match="split"):
        data.batch("test", 1, 4, torch.Generator())
