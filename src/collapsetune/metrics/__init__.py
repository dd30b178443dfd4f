"""Collapse metrics: pure ``@torch.no_grad()`` functions, no state, no logging."""

from __future__ import annotations

from collapsetune.metrics._captions import (
    bleu4,
    cider_d,
    distinct_ngrams,
    top_caption_share,
    unique_captions,
    vocab_used,
)
from collapsetune.metrics._lm import (
    argmax_unique,
    distinct_n,
    repetition,
    unigram_entropy,
    unique_tokens,
)
from collapsetune.metrics._prompts import (
    assign_entropy,
    assign_max_share,
    dead_subprompts,
    hard_assignments,
    subprompt_cos_max,
    subprompt_cos_mean,
    subprompt_cosines,
)

__all__ = [
    "bleu4",
    "cider_d",
    "distinct_ngrams",
    "top_caption_share",
    "unique_captions",
    "vocab_used",
    "argmax_unique",
    "assign_entropy",
    "assign_max_share",
    "dead_subprompts",
    "distinct_n",
    "hard_assignments",
    "repetition",
    "subprompt_cos_max",
    "subprompt_cos_mean",
    "subprompt_cosines",
    "unigram_entropy",
    "unique_tokens",
]
