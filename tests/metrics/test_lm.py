from __future__ import annotations

import math

import pytest
import torch

from collapsetune.metrics import (
    argmax_unique,
    distinct_n,
    repetition,
    unigram_entropy,
    unique_tokens,
)

SEQS = [[1, 2, 3, 1], [1, 2, 2, 2]]


def test_argmax_unique_counts_distinct_argmax():
    logits = torch.zeros(2, 3, 5)
    logits[0, 0, 4] = logits[0, 1, 4] = logits[1, 2, 1] = 1.0  # argmax: 4, 4, 0, 0, 0, 1
    assert argmax_unique(logits) == 3.0


def test_unique_tokens_lists_and_tensors_agree():
    assert unique_tokens(SEQS) == 3.0
    assert unique_tokens(torch.tensor(SEQS)) == 3.0


def test_distinct_n_by_hand():
    assert distinct_n(SEQS, 1) == pytest.approx(3 / 8)
    # bigrams: (1,2) (2,3) (3,1) | (1,2) (2,2) (2,2) -> 4 distinct of 6
    assert distinct_n(SEQS, 2) == pytest.approx(4 / 6)
    assert distinct_n([[1]], 2) == 0.0
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        distinct_n(SEQS, 0)


def test_unigram_entropy_bits():
    assert unigram_entropy([[0, 1, 2, 3]]) == pytest.approx(2.0)
    assert unigram_entropy([[7, 7, 7]]) == 0.0
    p = [3 / 8, 4 / 8, 1 / 8]  # counts of 1, 2, 3 in SEQS
    assert unigram_entropy(SEQS) == pytest.approx(-sum(x * math.log2(x) for x in p))


def test_repetition_previous_k_window():
    # seq 1: 2 no, 3 no, 1 yes (within 4) -> 1/3; seq 2: 2 no, 2 yes, 2 yes -> 2/3
    assert repetition(SEQS) == pytest.approx(3 / 6)
    assert repetition([[5, 5, 5, 5]]) == 1.0
    # With k=1 only an immediate repeat counts.
    assert repetition([[1, 2, 1, 2]], k=1) == 0.0
    assert repetition([[1, 2, 1, 2]], k=2) == pytest.approx(2 / 3)


def test_token_metrics_read_texts_and_word_lists_like_ids():
    texts = ["a b c a", "a b b b"]  # SEQS with words for ids
    words = [t.split() for t in texts]
    for f in (unique_tokens, unigram_entropy, repetition):
        assert f(texts) == f(words) == pytest.approx(f(SEQS))
    assert distinct_n(texts, 2) == distinct_n(words, 2) == pytest.approx(distinct_n(SEQS, 2))
    ragged = [torch.tensor([1, 2, 3, 1]), torch.tensor([1, 2])]
    assert distinct_n(ragged, 1) == pytest.approx(3 / 6)


def test_token_metrics_on_collapsed_and_diverse_text():
    collapsed = ["the the the the the the", "the the the the the the"]
    diverse = ["a quick brown fox jumps", "over the lazy sleeping dog"]
    assert unique_tokens(collapsed) < unique_tokens(diverse)
    assert distinct_n(collapsed, 2) < distinct_n(diverse, 2)
    assert unigram_entropy(collapsed) < unigram_entropy(diverse)
    assert repetition(collapsed) > repetition(diverse)


def test_token_metrics_reject_bad_input():
    for f in (unique_tokens, unigram_entropy, repetition, lambda s: distinct_n(s, 2)):
        with pytest.raises(ValueError, match="seqs is empty"):
            f([])
        with pytest.raises(ValueError, match="seqs is empty"):
            f(torch.zeros(0, 4, dtype=torch.long))
        with pytest.raises(ValueError, match=r"seqs\[1\] holds nan"):
            f([[1, 2], [float("nan")]])
        with pytest.raises(ValueError, match="seqs must hold integer token ids"):
            f(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"logits must be \(\.\.\., V\)"):
        argmax_unique(torch.zeros(0, 5))
    # Sequences with no tokens (a generator that stops at once) are allowed.
    assert unique_tokens([[], []]) == 0.0 and distinct_n([[]], 1) == 0.0 and repetition([[]]) == 0.0
