"""What both callbacks share: collapse metrics of a model's tokens on a probe set, and a
framework's checkpoint (a file or a folder) carried as plain bytes in a trial's checkpoint."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from collapsetune import session
from collapsetune.metrics import distinct_n, repetition, unigram_entropy, unique_tokens

# What token_metrics reports: a rule or an objective may name any of them.
TOKEN_METRICS = ("collapse/unique_tokens", "collapse/distinct_2", "collapse/entropy", "collapse/repetition")

Collapse = Callable[[torch.nn.Module, Any], Mapping[str, float]]


@torch.no_grad()
def token_metrics(tokens: torch.Tensor) -> dict[str, float]:
    """Collapse metrics of token ids (B, T), one sequence per probe row: distinct tokens in
    all, distinct bigrams / bigrams, unigram entropy in bits, and the share of tokens that
    repeat one of the 4 before them (`collapsetune.metrics`).

    Example:
        >>> token_metrics(torch.tensor([[5, 5, 5, 5], [5, 5, 5, 5]]))["collapse/unique_tokens"]
        1.0
    """
    if tokens.dim() != 2:
        raise ValueError(f"token_metrics takes token ids (B, T), got shape {tuple(tokens.shape)}")
    return dict(zip(TOKEN_METRICS, (unique_tokens(tokens), distinct_n(tokens, 2), unigram_entropy(tokens),
                                    repetition(tokens)), strict=True))


def named(found: Mapping[str, Any], names: Mapping[str, str], where: str) -> dict[str, float]:
    """{our name: float(found[their name])}; a KeyError that lists what `where` has."""
    missing = [theirs for theirs in names.values() if theirs not in found]
    if missing:
        raise KeyError(f"metric(s) {missing} not in {where}; it has {sorted(found)}")
    return {ours: float(found[theirs]) for ours, theirs in names.items()}


def as_names(metrics: Mapping[str, str] | tuple[str, ...] | list[str]) -> dict[str, str]:
    """A list of names means the same name in the report as in the framework."""
    return dict(metrics) if isinstance(metrics, Mapping) else {m: m for m in metrics}


def in_trial() -> bool:
    """Whether reports go to a collapsetune trial (outside one, a checkpoint is not worth making)."""
    return session._current() is not None


def pack(path: Path) -> dict[str, bytes]:
    """A checkpoint file, or every file of a checkpoint folder, as {relative path: bytes}."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def unpack(files: Mapping[str, bytes], prefix: str) -> Path:
    """`files` (from pack) written into a new temporary folder; the folder's path."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    for rel, data in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder


def remove(folder: Path | None) -> None:
    if folder is not None and folder.is_dir():
        for f in sorted(folder.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else os.rmdir(f)
        os.rmdir(folder)


def rebase_lrs(optimizer: torch.optim.Optimizer, scheduler: Any, lrs: list[float]) -> None:
    """Put `optimizer` (and its lr `scheduler`, if any) on the base learning rates `lrs`, one
    per param group, at the point of the schedule it was restored at: a restored framework
    checkpoint brings the donor's lrs under PBT, where the copy's configured ones must count
    (as in the class kit). A group's current lr is scaled by new base / old base, so a
    schedule part way through stays there; restoring a trial's own checkpoint changes nothing.
    """
    groups = optimizer.param_groups
    if len(lrs) != len(groups):
        raise ValueError(f"rebase_lrs needs one lr per param group ({len(groups)}), got {len(lrs)}")
    bases = list(scheduler.base_lrs) if scheduler is not None else [g.get("initial_lr", g["lr"]) for g in groups]
    for group, old, new in zip(groups, bases, lrs, strict=True):
        group["lr"] = group["lr"] * new / old if old else new
        if "initial_lr" in group:  # where torch's schedulers keep the base lr
            group["initial_lr"] = new
    if scheduler is not None:
        scheduler.base_lrs = list(lrs)
