from __future__ import annotations

import random

import pytest

from collapsetune.metrics._captions import (
    bleu4,
    cider_d,
    distinct_ngrams,
    top_caption_share,
    unique_captions,
    vocab_used,
)

REFS = {
    0: ["a loud beep sounds twice", "a strong beep is heard two times", "we hear a loud tone twice"],
    1: ["a soft hiss then a click train", "a quiet noise burst followed by clicking", "a faint hiss and then clicks"],
    2: ["a rising whistle", "an upward sweep is heard", "a tone that rises"],
    3: ["a dog barks loudly", "a loud dog is barking", "the dog barks"],
}
CANDS = {0: "a loud beep twice", 1: "a soft hiss then clicks", 2: "a rising tone is heard", 3: "a dog barks"}
# pycocoevalcap 1.2 (the coco-caption code behind published captioning numbers) on REFS/CANDS:
# Bleu(4) -> [0.8890097652981863, 0.779713143889978, 0.6216289635483322, 0.4546032778097179]
# Cider() (which is CIDEr-D: sigma 6, clipped counts, x10) -> 2.2280281120953696,
#   per caption [2.05071121, 2.43239785, 1.04063488, 3.38836851]
COCO_BLEU4 = 0.4546032778097179
COCO_CIDER_D = 2.2280281120953696


def _words(example: dict[int, str | list[str]]):
    return [s.split() if isinstance(s, str) else [r.split() for r in s] for s in example.values()]


def test_bleu4_matches_coco_caption():
    assert bleu4(_words(CANDS), _words(REFS)) == pytest.approx(COCO_BLEU4, rel=1e-12)


def test_cider_d_matches_coco_caption():
    assert cider_d(_words(CANDS), _words(REFS)) == pytest.approx(COCO_CIDER_D, rel=1e-12)


def test_bleu_and_cider_match_pycocoevalcap_on_random_captions():
    bleu_mod = pytest.importorskip("pycocoevalcap.bleu.bleu")
    cider_mod = pytest.importorskip("pycocoevalcap.cider.cider")
    rng = random.Random(0)
    words = ["a", "loud", "soft", "beep", "hiss", "then", "twice", "click", "tone", "rising", "falling", "train"]
    cands = [[rng.choice(words) for _ in range(rng.randint(1, 9))] for _ in range(12)]
    refs = [[[rng.choice(words) for _ in range(rng.randint(2, 9))] for _ in range(5)] for _ in range(12)]
    gts = {i: [" ".join(r) for r in refs[i]] for i in range(12)}
    res = {i: [" ".join(cands[i])] for i in range(12)}
    assert bleu4(cands, refs) == pytest.approx(bleu_mod.Bleu(4).compute_score(gts, res, verbose=0)[0][3], rel=1e-9)
    assert cider_d(cands, refs) == pytest.approx(cider_mod.Cider().compute_score(gts, res)[0], rel=1e-9)


def test_bleu4_known_values():
    refs = [[["the", "cat", "sat", "on", "the", "mat"]]]
    assert bleu4([["the", "cat", "sat", "on", "the", "mat"]], refs) == pytest.approx(1.0)
    assert bleu4([["dog", "dog", "dog", "dog"]], refs) < 1e-6  # no matching 4-gram
    # brevity penalty: a correct prefix of 4 words against 6 -> exp(1 - 6/4)
    assert bleu4([["the", "cat", "sat", "on"]], refs) == pytest.approx(0.6065306597, rel=1e-6)


def test_cider_d_rewards_specific_over_generic_caption():
    refs = _words(REFS)
    generic = [["a", "sound", "is", "heard"]] * 4
    assert cider_d(generic, refs) < 0.5 < cider_d(_words(CANDS), refs)


def test_collapse_metrics_on_a_collapsed_and_a_varied_set():
    collapsed = [["a", "loud", "beep"]] * 10
    assert unique_captions(collapsed) == pytest.approx(0.1)
    assert top_caption_share(collapsed) == 1.0
    assert distinct_ngrams(collapsed, 1) == pytest.approx(3 / 30)
    assert distinct_ngrams(collapsed, 2) == pytest.approx(2 / 20)
    assert vocab_used(collapsed) == 3
    varied = [["a", "loud", "beep"], ["a", "soft", "hiss"], ["a", "loud", "hiss"]]
    assert unique_captions(varied) == 1.0 and top_caption_share(varied) == pytest.approx(1 / 3)
    assert distinct_ngrams(varied, 1) == pytest.approx(5 / 9)
    assert distinct_ngrams(varied, 2) == pytest.approx(5 / 6)
    assert vocab_used(varied) == 5
    assert distinct_ngrams([["one"]], 2) == 0.0


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="reference sets"):
        bleu4([["a"]], [])
    with pytest.raises(ValueError, match="at least one reference"):
        cider_d([["a"]], [[]])
    with pytest.raises(ValueError):
        unique_captions([])
    with pytest.raises(ValueError, match="n must be"):
        distinct_ngrams([["a"]], 0)
