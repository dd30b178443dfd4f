"""Anti-collapse losses, one small module each, and a registry of short names.

Every loss is an ``nn.Module`` whose constructor checks its arguments; a weight of 0 turns
it off. All but :class:`OutputL2` are ``forward(logits (N, V), targets (N,)) -> scalar``.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from collapsetune.regularizers._confidence_penalty import ConfidencePenalty
from collapsetune.regularizers._label_smoothing import LabelSmoothingCE
from collapsetune.regularizers._maxsup import MaxSup
from collapsetune.regularizers._output_l2 import OutputL2
from collapsetune.regularizers._vocab_diversity import VocabDiversityBonus

__all__ = [
    "REGULARIZERS",
    "ConfidencePenalty",
    "LabelSmoothingCE",
    "MaxSup",
    "OutputL2",
    "VocabDiversityBonus",
    "create",
]

REGULARIZERS: dict[str, Callable[..., nn.Module]] = {
    "label_smoothing": LabelSmoothingCE,
    "maxsup": MaxSup,
    "confidence_penalty": ConfidencePenalty,
    "vocab_bonus": VocabDiversityBonus,
    "output_l2": OutputL2,
}


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered regularizer by short name.

    Example:
        >>> create("confidence_penalty", beta=0.1)
        ConfidencePenalty()
    """
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; valid names: {sorted(REGULARIZERS)}")
    return REGULARIZERS[name](**kwargs)
