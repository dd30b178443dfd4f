"""Collapse metrics: pure ``@torch.no_grad()`` functions, no state, no logging.

Every metric, its range and which direction means collapse: docs/metrics.md.
"""

from __future__ import annotations

from collapsetune.metrics._captions import (
    bleu4,
    cider_d,
    distinct_ngrams,
    top_caption_share,
    unique_captions,
    vocab_used,
)
from collapsetune.metrics._embeddings import (
    effective_rank,
    mean_pairwise_cosine,
    vanishing_singular_values,
    vendi_score,
)
from collapsetune.metrics._lm import (
    argmax_unique,
    distinct_n,
    repetition,
    unigram_entropy,
    unique_tokens,
)
from collapsetune.metrics._outputs import top_output_share, unique_outputs
from collapsetune.metrics._prompts import (
    assign_entropy,
    assign_max_share,
    dead_subprompts,
    hard_assignments,
    subprompt_cos_max,
    subprompt_cos_mean,
    subprompt_cosines,
)
from collapsetune.metrics._text import self_bleu, top_token_share, zipf_coefficient

__all__ = [
    # captions (word lists)
    "bleu4",
    "cider_d",
    "distinct_ngrams",
    "top_caption_share",
    "unique_captions",
    "vocab_used",
    # token streams and generated text (ids, texts or word lists)
    "argmax_unique",
    "distinct_n",
    "repetition",
    "self_bleu",
    "top_token_share",
    "unigram_entropy",
    "unique_tokens",
    "zipf_coefficient",
    # embeddings and representations (N, D)
    "effective_rank",
    "mean_pairwise_cosine",
    "vanishing_singular_values",
    "vendi_score",
    # sets of outputs
    "top_output_share",
    "unique_outputs",
    # mixtures of sub-prompts
    "assign_entropy",
    "assign_max_share",
    "dead_subprompts",
    "hard_assignments",
    "subprompt_cos_max",
    "subprompt_cos_mean",
    "subprompt_cosines",
]
