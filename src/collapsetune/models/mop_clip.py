"""Mixture-of-Prompts CLIP (MoP-CLIP) on cached frozen features (seeds/001).

Each class c has K sub-prompts around its frozen text embedding t_c:
``p[c, k] = normalize(t_c + offset[c, k])``; only the offsets are learned. Training is
soft EM: the E-step assigns each image to its true class's sub-prompts with
``gamma = softmax(sims / tau)`` (detached), the M-step pulls sub-prompts toward the images
they own (``-sum(gamma * sims)``) next to a classification cross-entropy whose class score
pools the class's sub-prompts. tau is annealed from ``tau_start`` to ``tau_end``; a low
``tau_end`` lets one sub-prompt take every image while the others stay where they started,
which is the collapse the regularizers (diversity, assignment entropy) are there to stop.

Example:
    >>> cfg = MopClipConfig(num_classes=3, dim=8, K=4)
    >>> model = MopClip(cfg, torch.randn(3, 8))
    >>> loss, parts = model.loss(torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1]), tau=0.5)
    >>> loss.backward(); sorted(parts)[:2]
    ['classification', 'diversity']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MopClip", "MopClipConfig", "tau_at"]


@dataclass(frozen=True)
class MopClipConfig:
    """Model hyperparameters; names follow the seed's code (em_tau_* -> tau_*).

    Example:
        >>> MopClipConfig(num_classes=10, dim=32, K=8, tau_end=0.3).sim_scale
        50.0
    """

    num_classes: int  # C
    dim: int  # D, of image features and class text embeddings
    K: int = 8  # sub-prompts per class
    sim_scale: float = 50.0  # sims = sim_scale * cos; the seed's CLIP-style 50
    tau_start: float = 1.0  # E-step temperature at step 0
    tau_end: float = 0.05  # ... at the last step; the seed's collapsing value
    tau_schedule: Literal["linear", "cosine"] = "linear"
    assignment: Literal["soft", "hard"] = "soft"  # hard: one-hot argmax gamma
    class_pool: Literal["max", "logsumexp"] = "max"  # class score from its K sims; seed: max
    temp_cls: float = 0.07  # class logits = pooled sims / temp_cls (seed)
    lambda_mixture: float = 0.5  # loss = l * mixture + (1 - l) * classification (seed)
    diversity_loss_weight: float = 0.0  # mean squared same-class sub-prompt cosine; 0 = off
    entropy_loss_weight: float = 0.0  # maximise assignment entropy (soft only); 0 = off
    offset_reg_weight: float = 0.001  # weight * mean(offset**2); the seed's 0.001
    init_std: float = 0.01  # offsets ~ N(0, init_std**2); seed: 0.01 in D = 512

    def __post_init__(self) -> None:
        for name in ("num_classes", "dim", "K"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sim_scale", "tau_start", "tau_end", "temp_cls"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("diversity_loss_weight", "entropy_loss_weight", "offset_reg_weight", "init_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.lambda_mixture <= 1.0:
            raise ValueError(f"lambda_mixture must be in [0, 1], got {self.lambda_mixture}")
        choices = {"tau_schedule": ("linear", "cosine"), "assignment": ("soft", "hard"),
                   "class_pool": ("max", "logsumexp")}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {getattr(self, name)!r}")
        if self.assignment == "hard" and self.entropy_loss_weight > 0:
            # A one-hot gamma has no entropy to raise: the term would silently do nothing.
            raise ValueError("entropy_loss_weight needs assignment: soft, got assignment: hard "
                             f"with entropy_loss_weight={self.entropy_loss_weight}")


def tau_at(step: int, total: int, start: float, end: float, schedule: str = "linear") -> float:
    """E-step temperature after ``step`` of ``total`` steps: ``start`` at 0, ``end`` from ``total`` on.

    Example:
        >>> tau_at(0, 100, 1.0, 0.05), tau_at(100, 100, 1.0, 0.05)
        (1.0, 0.05)
    """
    frac = min(1.0, max(0.0, step / max(1, total)))
    if schedule == "cosine":
        frac = 0.5 * (1.0 - math.cos(math.pi * frac))
    elif schedule != "linear":
        raise ValueError(f"tau_schedule must be 'linear' or 'cosine', got {schedule!r}")
    return end if frac >= 1.0 else start + (end - start) * frac  # exact end, no rounding drift


class MopClip(nn.Module):
    """K learned sub-prompts per class around frozen class text embeddings.

    Args:
        cfg: Hyperparameters.
        class_embeddings: (C, D) frozen text embeddings t_c (normalised here).

    Example:
        >>> model = MopClip(MopClipConfig(num_classes=2, dim=4, K=3), torch.randn(2, 4))
        >>> model.prompts().shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, cfg: MopClipConfig, class_embeddings: torch.Tensor) -> None:
        super().__init__()
        if tuple(class_embeddings.shape) != (cfg.num_classes, cfg.dim):
            raise ValueError(f"class_embeddings must have shape (C, D) = ({cfg.num_classes}, {cfg.dim}), "
                             f"got {tuple(class_embeddings.shape)}")
        self.cfg = cfg
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1))  # (C, D)
        self.offsets = nn.Parameter(torch.randn(cfg.num_classes, cfg.K, cfg.dim) * cfg.init_std)  # (C, K, D)

    def prompts(self) -> torch.Tensor:
        """(C, K, D) unit sub-prompt vectors."""
        return F.normalize(self.class_embeddings[:, None, :] + self.offsets, dim=-1, eps=1e-6)

    def sims(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, K) scaled cosine of every image with every sub-prompt."""
        x = F.normalize(features.float(), dim=-1)  # (B, D)
        return self.cfg.sim_scale * torch.einsum("bd,ckd->bck", x, self.prompts())

    def class_logits(self, sims: torch.Tensor) -> torch.Tensor:
        """(B, C) class logits from (B, C, K) sims: max or log-sum-exp over K, over temp_cls."""
        pooled = sims.max(dim=-1).values if self.cfg.class_pool == "max" else sims.logsumexp(dim=-1)
        return pooled / self.cfg.temp_cls

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) predicted classes."""
        return self.class_logits(self.sims(features)).argmax(dim=-1)

    def loss(self, features: torch.Tensor, labels: torch.Tensor, tau: float
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """The M-step loss on a batch at E-step temperature ``tau``.

        Returns:
            (scalar loss, the value of each term as floats).
        """
        cfg = self.cfg
        sims = self.sims(features)  # (B, C, K)
        own = sims[torch.arange(len(labels), device=labels.device), labels]  # (B, K): the true class's sub-prompts
        gamma = assignments(own, tau, cfg.assignment)  # (B, K), detached E-step
        mixture = -(gamma * own).sum(dim=-1).mean()
        classification = F.cross_entropy(self.class_logits(sims), labels)
        loss = cfg.lambda_mixture * mixture + (1.0 - cfg.lambda_mixture) * classification
        parts = {"mixture": mixture.item(), "classification": classification.item()}

        diversity = diversity_loss(self.prompts()[labels.unique()])
        parts["diversity"] = diversity.item()
        if cfg.diversity_loss_weight > 0:
            loss = loss + cfg.diversity_loss_weight * diversity
        if cfg.assignment == "soft":
            # On the non-detached softmax: entropy of the detached gamma has no gradient and
            # changes nothing (the probe found exactly that).
            entropy = assignment_entropy(own, tau)
            parts["entropy"] = entropy.item()
            if cfg.entropy_loss_weight > 0:
                loss = loss - cfg.entropy_loss_weight * entropy
        if cfg.offset_reg_weight > 0:
            reg = cfg.offset_reg_weight * self.offsets.pow(2).mean()
            parts["offset_reg"] = reg.item()
            loss = loss + reg
        return loss, parts


def assignments(own_sims: torch.Tensor, tau: float, kind: str = "soft") -> torch.Tensor:
    """(B, K) detached E-step responsibilities over a class's sub-prompts."""
    if kind == "hard":
        return F.one_hot(own_sims.argmax(dim=-1), own_sims.shape[-1]).to(own_sims.dtype)
    return F.softmax(own_sims.detach() / tau, dim=-1)


def assignment_entropy(own_sims: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean entropy (nats) of ``softmax(own_sims / tau)``, differentiable."""
    logq = F.log_softmax(own_sims / tau, dim=-1)  # (B, K)
    return -(logq.exp() * logq).sum(dim=-1).mean()


def diversity_loss(prompts: torch.Tensor) -> torch.Tensor:
    """Mean squared pairwise cosine between a class's sub-prompts (seeds/001's formula).

    Args:
        prompts: (U, K, D) unit sub-prompts of the classes in the batch.

    Returns:
        Scalar; 0 when K == 1 (no pairs).
    """
    k = prompts.shape[1]
    if k < 2:
        return prompts.sum() * 0.0  # keeps the graph: every parameter still gets a (zero) grad
    cos = prompts @ prompts.transpose(1, 2)  # (U, K, K)
    i, j = torch.triu_indices(k, k, offset=1)
    return cos[:, i, j].pow(2).mean()
