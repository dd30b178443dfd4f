"""Wrapper for the built-in ``mop_clip`` trainable: config dict in, metrics dict out.

Trains only the sub-prompt offsets of a MoP-CLIP model on cached frozen features (the
default: sklearn digits with CLIP's geometry, see docs/mop_clip.md). No Ray import; the
loop, divergence and checkpoint round trip are ``collapsetune.wrapper.TorchWrapper``'s.

Example:
    >>> m = MopClip({"K": 4, "steps_per_report": 5, "max_iterations": 2})
    >>> sorted(k for k in m.step() if k.startswith("collapse/"))[:2]
    ['collapse/assign_entropy', 'collapse/assign_max_share']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from collapsetune import metrics as pm  # benchmarks/model_cost.py times these calls as pm.*
from collapsetune import plots
from collapsetune.configs import check_fields
from collapsetune.data import DIGITS, FeatureSet, load_features
from collapsetune.devices import check_device_fields
from collapsetune.models import MopClip as MopClipModel
from collapsetune.models import MopClipConfig, tau_at
from collapsetune.wrapper import TorchWrapper

__all__ = ["MopClip", "MopClipTrainConfig"]

SUBPROMPT_IMAGES = "subprompt_images.png"
SUBPROMPT_SIMILARITY = "subprompt_similarity.png"


@dataclass(frozen=True)
class MopClipTrainConfig:
    """Every knob of the ``mop_clip`` trainable; names are Tune and MLflow params."""

    max_iterations: int = 20  # reports the sweep asks for; horizon of the tau schedule
    seed: int = 0
    threads: int = 1  # torch intra-op threads; 1 so trials share cores fairly
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU Ray gave this trial if any, else cpu
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: autocast (fp16 on a GPU only)
    # data
    features: str = DIGITS  # "digits" or a .npz features file (docs/mop_clip.md)
    feature_cone: float | None = None  # digits only: image-cone weight (None = builder default)
    feature_gap: float | None = None  # digits only: modality-gap weight
    feature_pca_dim: int | None = None  # digits only: PCA directions kept
    val_fraction: float = 0.2  # stratified, fixed by seed
    # model (collapsetune.models.MopClipConfig)
    K: int = 8
    sim_scale: float = 50.0
    tau_start: float = 1.0
    tau_end: float = 0.05
    tau_schedule: Literal["linear", "cosine"] = "linear"
    assignment: Literal["soft", "hard"] = "soft"
    class_pool: Literal["max", "logsumexp"] = "max"
    temp_cls: float = 0.07
    lambda_mixture: float = 0.5
    diversity_loss_weight: float = 0.0
    entropy_loss_weight: float = 0.0
    offset_reg_weight: float = 0.001
    init_std: float = 0.01
    # optimisation
    lr: float = 5e-4  # Adam, constant (the seed's 5e-4)
    batch_size: int = 128
    steps_per_report: int = 50

    def __post_init__(self) -> None:
        check_fields(self)
        check_device_fields(self.device, self.precision)
        for name in ("max_iterations", "threads", "batch_size", "steps_per_report"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        digits = self.digits_options()
        if digits and self.features != DIGITS:
            raise ValueError(f"{sorted(f'feature_{k}' for k in digits)} only apply to the built-in "
                             f"{DIGITS!r} features, not to the file {self.features}")
        if min(digits.get("cone", 0.0), digits.get("gap", 0.0)) < 0:
            raise ValueError(f"feature_cone and feature_gap must be >= 0, got {self.feature_cone}, {self.feature_gap}")
        if not 2 <= digits.get("pca_dim", 2) <= 62:
            raise ValueError(f"feature_pca_dim must be in [2, 62] (digits have 64 pixels), got {self.feature_pca_dim}")
        self.model_config(num_classes=1, dim=1)  # K, sim_scale, tau_*, the loss weights, init_std

    def digits_options(self) -> dict[str, float]:
        """The feature_* keys that are set, as ``build_digits_features`` arguments."""
        options = {"cone": self.feature_cone, "gap": self.feature_gap, "pca_dim": self.feature_pca_dim}
        return {k: v for k, v in options.items() if v is not None}

    def model_config(self, num_classes: int, dim: int) -> MopClipConfig:
        names = [f.name for f in dataclasses.fields(MopClipConfig)]
        return MopClipConfig(num_classes=num_classes, dim=dim,
                             **{n: getattr(self, n) for n in names if hasattr(self, n) and n not in ("num_classes", "dim")})


def _split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / val indices, fixed by seed."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = max(1, int(round(fraction * len(idx)))) if len(idx) > 1 else 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class MopClip(TorchWrapper):
    """MoP-CLIP prompt learner on cached features, reporting loss, accuracy and collapse metrics.

    Example:
        >>> m = MopClip({"tau_end": 0.05, "max_iterations": 10})  # doctest: +SKIP
        >>> m.step()["collapse/subprompt_cos_max"]  # doctest: +SKIP
        0.97
    """

    config_class = MopClipTrainConfig  # lets `collapsetune validate` check keys before any trial
    reported_metrics = ("train/loss", "val/loss", "val/accuracy", "collapse/assign_max_share",
                        "collapse/assign_entropy", "collapse/dead_subprompts", "collapse/subprompt_cos_max",
                        "collapse/subprompt_cos_mean", "train/tau")  # the cosines need K >= 2

    # Knobs a PBT copy may change without building the wrapper again: the model reads them at
    # each forward (K and init_std shape it; the features, split and seed are its data).
    retunable = ("lr", "tau_start", "tau_end", "tau_schedule", "assignment", "class_pool", "temp_cls",
                 "lambda_mixture", "diversity_loss_weight", "entropy_loss_weight", "offset_reg_weight",
                 "sim_scale", "batch_size")

    def build(self, cfg: MopClipTrainConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
        fs: FeatureSet = load_features(cfg.features, **cfg.digits_options())
        self.class_names = [str(n) for n in fs.class_names]
        self.images = fs.images
        train, val = _split(fs.labels, cfg.val_fraction, cfg.seed)
        x, y = torch.from_numpy(fs.features), torch.from_numpy(fs.labels)
        self.train_idx = train
        self.x_train, self.y_train = x[train], y[train]  # (N, D), (N,)
        self.x_val, self.y_val = x[val], y[val]

        model = MopClipModel(cfg.model_config(fs.num_classes, fs.dim), torch.from_numpy(fs.class_embeddings))
        return model, torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def retune(self, cfg: MopClipTrainConfig) -> None:
        """A PBT copy's knobs on the kept wrapper: the model's loss settings and Adam's lr."""
        self.model.cfg = cfg.model_config(self.model.cfg.num_classes, self.model.cfg.dim)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr

    def tau(self) -> float:
        c = self.cfg
        return tau_at(self.steps, self.total_steps, c.tau_start, c.tau_end, c.tau_schedule)

    def train_loss(self) -> torch.Tensor:
        idx = torch.randint(len(self.y_train), (self.cfg.batch_size,), generator=self.generator)
        loss, _ = self.model.loss(self.x_train[idx], self.y_train[idx], self.tau())
        return loss

    def evaluate(self) -> dict[str, float]:
        """Val loss and accuracy; collapse metrics from the training images' hard assignments."""
        model = self.model
        val_loss, _ = model.loss(self.x_val, self.y_val, self.tau())
        prompts = model.prompts()  # (C, K, D)
        assign = pm.hard_assignments(self.x_train, self.y_train, prompts)  # (N,)
        k = model.cfg.K
        out = {
            "val/loss": val_loss.item(),
            "val/accuracy": (model.predict(self.x_val) == self.y_val).float().mean().item(),
            "collapse/assign_max_share": pm.assign_max_share(assign, self.y_train, k),
            "collapse/assign_entropy": pm.assign_entropy(assign, self.y_train, k),
            "collapse/dead_subprompts": pm.dead_subprompts(assign, self.y_train, k),
        }
        if k >= 2:  # cosine between sub-prompts needs a pair
            out["collapse/subprompt_cos_max"] = pm.subprompt_cos_max(prompts)
            out["collapse/subprompt_cos_mean"] = pm.subprompt_cos_mean(prompts)
        return out | {"train/tau": self.tau()}  # the annealed temperature now; tau_end is its end

    def write_artifacts(self, directory: str) -> None:
        """Draws both pictures. CollapseTrainable calls this on the reports worth a picture
        (the verdict's, the last; the one a trial is cut on with draw_cut_trials), once per trial."""
        note = f" - report {self.reports}, step {self.steps}"
        with torch.no_grad():
            prompts = self.model.prompts()
            if self.images is not None:
                x = F.normalize(self.x_train, dim=-1)
                own = torch.einsum("nd,nkd->nk", x, prompts[self.y_train])  # (N, K)
                score, assign = own.max(dim=-1)
                plots.subprompt_image_grid(
                    self.images[self.train_idx], self.y_train.cpu().numpy(), assign.cpu().numpy(), score.cpu().numpy(),
                    self.model.cfg.K, self.class_names, Path(directory) / SUBPROMPT_IMAGES, note=note)
            cos = pm.subprompt_cosines(prompts).cpu().numpy()
        plots.similarity_heatmap(cos, self.class_names, Path(directory) / SUBPROMPT_SIMILARITY, note=note)
