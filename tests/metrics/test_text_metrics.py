"""Generated-text collapse metrics on hand-made collapsed and diverse texts."""

from __future__ import annotations

import math
import random

import pytest
import torch

from collapsetune.metrics import self_bleu, top_token_share, zipf_coefficient

DIVERSE = ["the cat sat on the mat", "a dog ran in the park today",
           "the cat sat on a mat", "we went home after the game"]
COLLAPSED = ["the the the the the the", "the the the the the the",
             "the the the the cat the", "the the the the the the"]
# nltk 3.10.4: mean over i of sentence_bleu(others, DIVERSE[i], (0.25,) * 4,
#   smoothing_function=SmoothingFunction().method1) -> 0.29493314630963946
NLTK_SELF_BLEU4 = 0.29493314630963946


def test_top_token_share_by_hand():
    assert top_token_share(["a a a b"]) == 0.75
    assert top_token_share(torch.tensor([[1, 2], [3, 1]])) == 0.5
    assert top_token_share(COLLAPSED) == pytest.approx(23 / 24)
    assert top_token_share(DIVERSE) < 0.25 < top_token_share(COLLAPSED)
    assert top_token_share([[], []]) == 1.0  # nothing generated is as collapsed as it gets


def test_zipf_coefficient_is_the_log_log_slope():
    # counts c / rank exactly (12, 6, 4, 3) give s = 1; 8 / rank**2 (8, 2) gives s = 2.
    seqs = [[0] * 12 + [1] * 6 + [2] * 4 + [3] * 3]
    assert zipf_coefficient(seqs) == pytest.approx(1.0)
    assert zipf_coefficient([[0] * 8 + [1] * 2]) == pytest.approx(2.0)
    assert zipf_coefficient(["a b c d"]) == pytest.approx(0.0)  # all equally frequent
    assert zipf_coefficient(["a a a a"]) == math.inf and zipf_coefficient([[]]) == math.inf
    assert zipf_coefficient(DIVERSE) < zipf_coefficient(COLLAPSED)


def test_self_bleu_matches_nltk_sentence_bleu():
    assert self_bleu(DIVERSE) == pytest.approx(NLTK_SELF_BLEU4, rel=1e-12)
    assert self_bleu([s.split() for s in DIVERSE]) == pytest.approx(NLTK_SELF_BLEU4, rel=1e-12)


def test_self_bleu_matches_nltk_on_random_texts():
    bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = random.Random(0)
    for _ in range(50):
        texts = [[str(rng.randint(0, 6)) for _ in range(rng.randint(0, 9))] for _ in range(rng.randint(2, 6))]
        for n in (1, 2, 4):
            want = sum(bleu.sentence_bleu(texts[:i] + texts[i + 1:], h, (1 / n,) * n,
                                          smoothing_function=bleu.SmoothingFunction().method1)
                       for i, h in enumerate(texts)) / len(texts)
            assert self_bleu(texts, n) == pytest.approx(want, abs=1e-12)


def test_self_bleu_collapsed_above_diverse():
    assert self_bleu(["the cat sat down"] * 3) == pytest.approx(1.0)
    assert self_bleu(DIVERSE) < 0.5 < self_bleu(COLLAPSED)
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8]])
    # the two equal rows score 1, the third shares nothing: 0
    assert self_bleu(ids) == pytest.approx(2 / 3)


def test_text_metrics_reject_bad_input():
    for f in (top_token_share, zipf_coefficient, self_bleu):
        with pytest.raises(ValueError, match="seqs is empty"):
            f([])
        with pytest.raises(ValueError, match=r"seqs\[0\] holds nan"):
            f([[1, float("nan")], [2]])
        with pytest.raises(ValueError, match="seqs must hold integer token ids, got dtype torch.float32"):
            f(torch.rand(2, 3))
        with pytest.raises(ValueError, match="got one str"):
            f("a single text")
    with pytest.raises(ValueError, match="at least 2 sequences in seqs, got 1"):
        self_bleu(["only one"])
    with pytest.raises(ValueError, match="max_n must be >= 1, got 0"):
        self_bleu(DIVERSE, max_n=0)
