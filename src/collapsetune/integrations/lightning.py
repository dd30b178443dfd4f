"""A Lightning `Callback` that makes `trainer.fit` a collapsetune trial.

Once per validation (not the sanity check) it reports the logged metrics it is told to
(`trainer.callback_metrics`), collapse metrics on a probe batch, and, in a trial, the
trainer's own checkpoint (`trainer.save_checkpoint`, carried as bytes). `resume_path()`
gives that checkpoint back as a file for `trainer.fit(ckpt_path=...)`, on resume and on a
PBT copy alike; after Lightning restores it, the optimizers' settings (lr, weight decay, ...)
and their schedulers' base lrs go back to the ones this trial's `configure_optimizers` set,
so a PBT copy trains with its own perturbed lr, not the donor's. Outside a sweep it reports
nowhere and makes no checkpoint.

Example:
    >>> from collapsetune.integrations.lightning import CollapseCallback
    >>> def train(config):  # doctest: +SKIP
    ...     model = MyModule(lr=config["lr"])
    ...     collapse = CollapseCallback(metrics=["val/loss"], probe=probe_ids)
    ...     trainer = L.Trainer(max_epochs=config["max_iterations"], callbacks=[collapse])
    ...     trainer.fit(model, train_loader, val_loader, ckpt_path=collapse.resume_path())
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from collapsetune import session
from collapsetune.integrations import _probe

__all__ = ["CollapseCallback"]

_FILE = "lightning.ckpt"


class CollapseCallback(pl.Callback):
    """Reports `metrics` and collapse metrics on `probe` after every validation.

    Args:
        metrics: Names the LightningModule logs (`self.log("val/loss", ...)`), or a mapping
            {name in the report: name logged}.
        probe: A batch the collapse metrics are computed on (moved to the module's device).
        collapse: `collapse(module, probe) -> {name: float}`. Default: `token_metrics` of the
            argmax tokens of `module(probe)`, logits (B, T, V) or (B, V), for a language model.

    Example:
        >>> CollapseCallback(metrics=["val/loss"], probe=torch.zeros(2, 4, dtype=torch.long)).metrics
        {'val/loss': 'val/loss'}
    """

    def __init__(self, metrics: Mapping[str, str] | list[str] | tuple[str, ...] = ("val/loss",),
                 probe: Any = None, collapse: _probe.Collapse | None = None) -> None:
        if probe is None and collapse is None:
            raise ValueError("CollapseCallback needs a probe batch (or a collapse function of the module)")
        self.metrics = _probe.as_names(metrics)
        self.probe = probe
        self.collapse = collapse or _argmax_tokens
        self._restored: Path | None = None
        self._configured: list[tuple[list[dict[str, Any]], Any]] = []  # per optimizer: its groups' settings, scheduler

    def resume_path(self) -> str | None:
        """The trial's checkpoint as a file for `trainer.fit(ckpt_path=...)`; None to start fresh."""
        checkpoint = session.get_checkpoint()
        if checkpoint is None:
            return None
        self._restored = _probe.unpack(checkpoint["lightning"], "collapsetune-lightning-")
        return str(self._restored / _FILE)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Optimizers are built from this trial's config; the checkpoint is not restored yet.
        schedulers = {id(c.scheduler.optimizer): c.scheduler for c in trainer.lr_scheduler_configs}
        self._configured = [([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
                             schedulers.get(id(opt))) for opt in trainer.optimizers]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restored is None:  # a fresh start: nothing was restored over the config
            return
        for opt, (settings, scheduler) in zip(trainer.optimizers, self._configured, strict=True):
            lrs = [s.get("initial_lr", s["lr"]) for s in settings]
            for group, configured in zip(opt.param_groups, settings, strict=True):
                group.update({k: v for k, v in configured.items() if k not in ("lr", "initial_lr")})
            _probe.rebase_lrs(opt, scheduler, lrs)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        report = _probe.named(trainer.callback_metrics, self.metrics, "trainer.callback_metrics")
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            report.update(self.collapse(pl_module, _to(self.probe, pl_module.device)))
        pl_module.train(was_training)
        checkpoint = None
        if _probe.in_trial():
            with tempfile.TemporaryDirectory(prefix="collapsetune-lightning-") as folder:
                trainer.save_checkpoint(Path(folder) / _FILE)
                checkpoint = {"lightning": _probe.pack(Path(folder) / _FILE)}
        session.report(report, checkpoint=checkpoint)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        _probe.remove(self._restored)
        self._restored = None


def _argmax_tokens(module: torch.nn.Module, probe: torch.Tensor) -> dict[str, float]:
    logits = module(probe)
    tokens = logits.argmax(-1)  # (B, T) or (B,)
    return _probe.token_metrics(tokens if tokens.dim() == 2 else tokens.unsqueeze(0))


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch
