"""Callbacks that make a framework's training a collapsetune trial, one import each (the
frameworks are optional extras, so nothing here imports them):

- `collapsetune.integrations.lightning.CollapseCallback`: a Lightning `Callback`
  (`pip install "collapsetune[lightning]"`).
- `collapsetune.integrations.transformers.CollapseCallback`: a Hugging Face `TrainerCallback`
  (`pip install "collapsetune[hf]"`).

Each reports, once per validation, the metrics a user names plus collapse metrics computed
on a probe set the user gives (`token_metrics` on the model's tokens, or the user's own
function), with the framework's own checkpoint as the trial's checkpoint, through
`collapsetune.session`; the training function that builds the trainer is the sweep's
`trainable: module:train` (docs/extending.md).
"""

from __future__ import annotations

from collapsetune.integrations._probe import TOKEN_METRICS, token_metrics

__all__ = ["TOKEN_METRICS", "token_metrics"]
