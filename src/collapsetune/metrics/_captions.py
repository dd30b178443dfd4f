"""Caption quality and caption collapse: pure functions over captions as word lists.

BLEU-4 and CIDEr-D follow the coco-caption implementations (``pycocoevalcap``) exactly,
so numbers compare with published audio-captioning results: corpus BLEU-4 with the
closest reference length for the brevity penalty; CIDEr-D with document frequencies from
the evaluated set's references, sigma 6 length penalty, clipped n-gram counts and x10.

Example:
    >>> caps = [["a", "beep"], ["a", "beep"], ["a", "hiss"]]
    >>> unique_captions(caps), vocab_used(caps)
    (0.6666666666666666, 3)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["bleu4", "cider_d", "distinct_ngrams", "top_caption_share", "unique_captions", "vocab_used"]

Caption = Sequence[str]


def _ngrams(words: Caption, n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _check(candidates: Sequence[Caption], references: Sequence[Sequence[Caption]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(f"got {len(candidates)} candidates but {len(references)} reference sets")
    if not candidates:
        raise ValueError("need at least one candidate")
    if any(len(r) == 0 for r in references):
        raise ValueError("every candidate needs at least one reference")


def bleu4(candidates: Sequence[Caption], references: Sequence[Sequence[Caption]]) -> float:
    """Corpus BLEU-4 (Papineni et al. 2002) as coco-caption computes it, in [0, 1]."""
    _check(candidates, references)
    correct, guess = [0] * 4, [0] * 4
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        cand_len += len(cand)
        # Closest reference length; ties go to the shorter reference.
        ref_len += min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]
        for n in range(1, 5):
            counts = _ngrams(cand, n)
            max_ref: Counter = Counter()
            for r in refs:
                max_ref |= _ngrams(r, n)
            correct[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            guess[n - 1] += max(0, len(cand) - n + 1)
    tiny, small = 1e-15, 1e-9  # coco-caption's: a zero count gives ~0, not an error
    log_p = sum(math.log((c + tiny) / (g + small)) for c, g in zip(correct, guess)) / 4
    ratio = (cand_len + tiny) / (ref_len + small)
    brevity = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    return math.exp(log_p) * brevity


def cider_d(candidates: Sequence[Caption], references: Sequence[Sequence[Caption]],
            sigma: float = 6.0) -> float:
    """Corpus CIDEr-D (Vedantam et al. 2015) as coco-caption computes it (0 to ~10)."""
    _check(candidates, references)
    ref_grams = [[{n: _ngrams(r, n) for n in range(1, 5)} for r in refs] for refs in references]
    df: Counter = Counter()
    for refs in ref_grams:
        df.update({g for r in refs for n in range(1, 5) for g in r[n]})
    log_docs = math.log(float(len(references)))

    def vec(grams: dict[int, Counter]) -> tuple[list[dict], list[float], int]:
        v = [{g: c * (log_docs - math.log(max(1.0, df[g]))) for g, c in grams[n].items()} for n in range(1, 5)]
        # coco-caption's "length" is the bigram count; kept for identical numbers.
        return v, [math.sqrt(sum(x * x for x in d.values())) for d in v], sum(grams[2].values())

    scores = []
    for cand, refs in zip(candidates, ref_grams):
        cv, cn, cl = vec({n: _ngrams(cand, n) for n in range(1, 5)})
        total = 0.0
        for r in refs:
            rv, rn, rl = vec(r)
            penalty = math.exp(-((cl - rl) ** 2) / (2 * sigma**2))
            for n in range(4):
                val = sum(min(x, rv[n].get(g, 0.0)) * rv[n].get(g, 0.0) for g, x in cv[n].items())
                if cn[n] != 0 and rn[n] != 0:
                    val /= cn[n] * rn[n]
                total += val * penalty
        scores.append(total / 4 / len(refs) * 10.0)
    return sum(scores) / len(scores)


def unique_captions(captions: Sequence[Caption]) -> float:
    """Fraction of distinct captions: 1/N when every clip gets the same caption."""
    if not captions:
        raise ValueError("need at least one caption")
    return len({tuple(c) for c in captions}) / len(captions)


def top_caption_share(captions: Sequence[Caption]) -> float:
    """Share of clips that get the most frequent caption."""
    if not captions:
        raise ValueError("need at least one caption")
    return Counter(tuple(c) for c in captions).most_common(1)[0][1] / len(captions)


def distinct_ngrams(captions: Sequence[Caption], n: int) -> float:
    """distinct-n (Li et al. 2016): distinct n-grams / all n-grams over every caption; 0 if none."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [g for c in captions for g in (tuple(c[i:i + n]) for i in range(len(c) - n + 1))]
    return len(set(grams)) / len(grams) if grams else 0.0


def vocab_used(captions: Sequence[Caption]) -> int:
    """Number of distinct words over all captions."""
    return len({w for c in captions for w in c})
