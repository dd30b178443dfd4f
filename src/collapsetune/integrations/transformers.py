"""A Hugging Face `TrainerCallback` that makes `Trainer.train` a collapsetune trial.

After every evaluation it reports the evaluation metrics it is told to (`eval_loss` as
`val/loss` by default) and collapse metrics of greedy continuations of probe prompts. In a
trial it asks the Trainer to save a checkpoint right then (`control.should_save`) and
reports once the Trainer has written it (`on_save`), carrying the checkpoint folder as
bytes; `resume_path()` writes it back for `trainer.train(resume_from_checkpoint=...)`, on
resume and on a PBT copy alike; after the Trainer restores it, the optimizer's and the lr
schedule's base lr go back to this trial's `learning_rate` (so a PBT copy trains with its
own perturbed lr, not the donor's; other optimizer settings are the checkpoint's). So the Trainer's own checkpoint (weights, optimizer,
scheduler, RNG and trainer state) is the trial's. Outside a sweep it reports nowhere and
saves nothing more than the Trainer would.

Example:
    >>> from collapsetune.integrations.transformers import CollapseCallback
    >>> def train(config):  # doctest: +SKIP
    ...     collapse = CollapseCallback(probe=prompt_ids)
    ...     args = TrainingArguments(output_dir=..., num_train_epochs=config["max_iterations"],
    ...                              eval_strategy="epoch", save_strategy="no", learning_rate=config["lr"])
    ...     trainer = Trainer(model, args, train_dataset=..., eval_dataset=..., callbacks=[collapse])
    ...     trainer.train(resume_from_checkpoint=collapse.resume_path())
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from collapsetune import session
from collapsetune.integrations import _probe

__all__ = ["CollapseCallback"]


class CollapseCallback(TrainerCallback):
    """Reports `metrics` and collapse metrics of `probe`'s continuations after every evaluation.

    Args:
        metrics: {name in the report: name in the Trainer's evaluation metrics}, or a list of
            the Trainer's names (reported as they are).
        probe: Prompt token ids (B, T) whose greedy continuations the collapse metrics judge,
            or a dict of tensors (`input_ids`, `attention_mask`) for `model.generate`.
        max_new_tokens: Length of each continuation.
        collapse: `collapse(model, probe) -> {name: float}` instead of the default
            (`token_metrics` of `max_new_tokens` greedy tokens per prompt).

    Example:
        >>> CollapseCallback(probe=torch.zeros(2, 3, dtype=torch.long)).metrics
        {'val/loss': 'eval_loss'}
    """

    def __init__(self, metrics: Mapping[str, str] | list[str] | tuple[str, ...] = None,
                 probe: Any = None, max_new_tokens: int = 16, collapse: _probe.Collapse | None = None) -> None:
        if probe is None and collapse is None:
            raise ValueError("CollapseCallback needs probe prompts (or a collapse function of the model)")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.metrics = _probe.as_names(metrics if metrics is not None else {"val/loss": "eval_loss"})
        self.probe = probe
        self.max_new_tokens = max_new_tokens
        self.collapse = collapse or self._continuations
        self._pending: dict[str, float] | None = None
        self._restored: Path | None = None

    def resume_path(self) -> str | None:
        """The trial's checkpoint folder for `trainer.train(resume_from_checkpoint=...)`; None to
        start fresh."""
        checkpoint = session.get_checkpoint()
        if checkpoint is None:
            return None
        self._restored = _probe.unpack(checkpoint["hf"], "collapsetune-hf-")
        return str(self._restored)

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        # The Trainer has restored the checkpoint's optimizer and schedule, the donor's lr under PBT.
        if self._restored is not None and optimizer is not None:
            bases = list(lr_scheduler.base_lrs) if lr_scheduler is not None else [
                g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
            scale = args.learning_rate / bases[0] if bases[0] else None  # groups keep their ratios
            lrs = [b * scale for b in bases] if scale is not None else [args.learning_rate] * len(bases)
            _probe.rebase_lrs(optimizer, lr_scheduler, lrs)
        return control

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        report = _probe.named(metrics or {}, self.metrics, "the Trainer's evaluation metrics")
        was_training = model.training
        model.eval()
        with torch.no_grad():
            report.update(self.collapse(model, self.probe))
        model.train(was_training)
        if not _probe.in_trial():
            session.report(report)
            return control
        self._pending = report
        control.should_save = True  # the Trainer saves next, then calls on_save: report there
        return control

    def on_save(self, args, state, control, **kwargs):
        if self._pending is None:  # a save of the Trainer's own schedule, not after an evaluation
            return control
        report, self._pending = self._pending, None
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        session.report(report, checkpoint={"hf": _probe.pack(folder)})
        return control

    def on_train_end(self, args, state, control, **kwargs):
        _probe.remove(self._restored)
        self._restored = None
        return control

    def _continuations(self, model, probe) -> dict[str, float]:
        inputs = probe if isinstance(probe, Mapping) else {"input_ids": probe}
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        prompt = inputs["input_ids"].shape[1]
        out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, min_new_tokens=self.max_new_tokens,
                             do_sample=False, pad_token_id=model.config.eos_token_id or 0)
        return _probe.token_metrics(out[:, prompt:])
