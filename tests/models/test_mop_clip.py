"""MoP-CLIP model: forward/backward, each loss term against a hand computation, tau schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from collapsetune.models.mop_clip import MopClip, MopClipConfig, diversity_loss, tau_at


def _model(**kw) -> MopClip:
    torch.manual_seed(0)
    cfg = MopClipConfig(num_classes=3, dim=6, **{"K": 4, **kw})
    return MopClip(cfg, torch.randn(3, 6))


@pytest.mark.parametrize("kw", [
    {}, {"diversity_loss_weight": 0.1, "entropy_loss_weight": 0.01},
    {"assignment": "hard"}, {"class_pool": "logsumexp"}, {"K": 1, "diversity_loss_weight": 1.0},
])
def test_mop_clip_backward_every_parameter_finite_grad(kw):
    model = _model(**kw)
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss, parts = model.loss(x, y, tau=0.5)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(math.isfinite(v) for v in parts.values())


def test_mop_clip_prompts_are_unit_and_shaped():
    p = _model().prompts()
    assert p.shape == (3, 4, 6)
    torch.testing.assert_close(p.norm(dim=-1), torch.ones(3, 4))


@torch.no_grad()
def _hand_terms(model: MopClip, x: torch.Tensor, y: torch.Tensor, tau: float) -> dict[str, float]:
    """The loss terms written out with loops over the batch, as in the issue."""
    cfg = model.cfg
    t = F.normalize(model.class_embeddings, dim=-1)
    mixture, cls, ent = 0.0, 0.0, 0.0
    for b in range(len(y)):
        xb = F.normalize(x[b], dim=0)
        sims = torch.stack([torch.stack([cfg.sim_scale * (xb @ F.normalize(t[c] + model.offsets[c, k], dim=0))
                                         for k in range(cfg.K)]) for c in range(cfg.num_classes)])  # (C, K)
        own = sims[y[b]]
        gamma = torch.softmax(own / tau, dim=0)
        mixture -= float((gamma * own).sum())
        ent -= float((gamma * gamma.log()).sum())
        logits = sims.max(dim=1).values / cfg.temp_cls
        cls -= float(torch.log_softmax(logits, dim=0)[y[b]])
    n = len(y)
    p = model.prompts()
    div, pairs = 0.0, 0
    for c in y.unique().tolist():
        for i in range(cfg.K):
            for j in range(i + 1, cfg.K):
                div += float(p[c, i] @ p[c, j]) ** 2
                pairs += 1
    return {"mixture": mixture / n, "classification": cls / n, "entropy": ent / n,
            "diversity": div / pairs, "offset_reg": cfg.offset_reg_weight * float((model.offsets ** 2).mean())}


def test_mop_clip_loss_terms_match_hand_computation():
    model = _model(diversity_loss_weight=0.3, entropy_loss_weight=0.02, sim_scale=5.0)
    with torch.no_grad():
        model.offsets.normal_(0, 0.3)
    x, y = torch.randn(5, 6), torch.tensor([0, 2, 2, 0, 0])  # class 1 absent: not in diversity
    loss, parts = model.loss(x, y, tau=0.7)
    hand = _hand_terms(model, x, y, 0.7)
    for key, value in hand.items():
        assert parts[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    total = (0.5 * hand["mixture"] + 0.5 * hand["classification"] + 0.3 * hand["diversity"]
             - 0.02 * hand["entropy"] + hand["offset_reg"])
    assert loss.item() == pytest.approx(total, rel=1e-4)


def test_mop_clip_entropy_term_has_a_gradient_on_offsets():
    # The entropy is on the non-detached softmax: on the detached gamma it would change nothing.
    base = _model(offset_reg_weight=0.0, lambda_mixture=0.0)
    with_ent = _model(offset_reg_weight=0.0, lambda_mixture=0.0, entropy_loss_weight=1.0)
    x, y = torch.randn(6, 6), torch.tensor([0, 1, 2, 0, 1, 2])
    for m in (base, with_ent):
        m.loss(x, y, tau=0.5)[0].backward()
    assert not torch.allclose(base.offsets.grad, with_ent.offsets.grad)


def test_mop_clip_hard_assignment_mixture_is_max_own_sim():
    model = _model(assignment="hard")
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 1])
    _, parts = model.loss(x, y, tau=1.0)
    own = model.sims(x)[torch.arange(4), y]
    assert parts["mixture"] == pytest.approx(-own.max(dim=1).values.mean().item(), rel=1e-5)
    assert "entropy" not in parts


def test_mop_clip_logsumexp_pool():
    model = _model(class_pool="logsumexp")
    sims = torch.randn(2, 3, 4)
    torch.testing.assert_close(model.class_logits(sims), sims.logsumexp(-1) / 0.07)


def test_diversity_loss_identical_prompts_is_one_orthogonal_is_zero():
    same = F.normalize(torch.ones(2, 3, 4), dim=-1)
    assert diversity_loss(same).item() == pytest.approx(1.0)
    assert diversity_loss(torch.eye(4)[None]).item() == pytest.approx(0.0)


def test_tau_schedule_end_points():
    for schedule in ("linear", "cosine"):
        assert tau_at(0, 100, 1.0, 0.05, schedule) == pytest.approx(1.0)
        assert tau_at(100, 100, 1.0, 0.05, schedule) == pytest.approx(0.05)
        assert tau_at(500, 100, 1.0, 0.05, schedule) == pytest.approx(0.05)
    assert tau_at(50, 100, 1.0, 0.0 + 0.2, "linear") == pytest.approx(0.6)
    assert tau_at(25, 100, 1.0, 0.2, "cosine") > tau_at(25, 100, 1.0, 0.2, "linear")  # cosine starts slow
    with pytest.raises(ValueError, match="tau_schedule"):
        tau_at(1, 10, 1.0, 0.1, "step")


@pytest.mark.parametrize("kw, match", [
    ({"K": 0}, "K must be >= 1"), ({"tau_end": 0.0}, "tau_end must be > 0"),
    ({"class_pool": "mean"}, "class_pool must be one of"),
    ({"assignment": "hard", "entropy_loss_weight": 0.1}, "needs assignment: soft"),
    ({"lambda_mixture": 1.5}, "lambda_mixture"),
])
def test_mop_clip_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        MopClipConfig(num_classes=2, dim=3, **kw)


def test_mop_clip_rejects_wrong_class_embedding_shape():
    with pytest.raises(ValueError, match=r"\(C, D\) = \(2, 3\)"):
        MopClip(MopClipConfig(num_classes=2, dim=3), torch.randn(3, 3))
