"""Representation collapse metrics on hand-made collapsed and diverse embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from collapsetune.metrics import effective_rank, mean_pairwise_cosine, vanishing_singular_values, vendi_score


def _diverse(n: int = 64, d: int = 16) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def _collapsed(n: int = 64, d: int = 16) -> torch.Tensor:
    """Every item on one direction, plus a tiny bit of noise: a collapsed encoder."""
    g = torch.Generator().manual_seed(1)
    scale = torch.rand(n, 1, generator=g) + 1.0
    return scale * torch.randn(1, d, generator=g) + 1e-5 * torch.randn(n, d, generator=g)


def test_effective_rank_known_values():
    assert effective_rank(torch.eye(5)) == pytest.approx(5.0, rel=1e-4)  # equal singular values
    assert effective_rank(torch.ones(8, 4)) == pytest.approx(1.0, rel=1e-4)
    assert effective_rank(torch.zeros(8, 4)) == pytest.approx(1.0, rel=1e-4)
    assert effective_rank(torch.ones(1, 4)) == pytest.approx(1.0, rel=1e-4)  # one item: rank 1
    # singular values 3, 1 -> p = 3/4, 1/4
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel=1e-4)
    assert effective_rank(_collapsed()) < 1.5 < 10 < effective_rank(_diverse())


def test_vendi_score_is_the_kernel_eigenvalue_entropy():
    x = _diverse(20, 8)
    k = torch.nn.functional.normalize(x.double(), dim=1) @ torch.nn.functional.normalize(x.double(), dim=1).T
    lam = torch.linalg.eigvalsh(k / 20).clamp_min(0)
    lam = lam[lam > 0]
    assert vendi_score(x) == pytest.approx(math.exp(-(lam * lam.log()).sum().item()), rel=1e-4)
    assert vendi_score(torch.eye(6)) == pytest.approx(6.0, rel=1e-5)  # orthogonal: N
    assert vendi_score(3 * torch.ones(6, 3)) == pytest.approx(1.0, rel=1e-5)  # scale does not matter
    assert vendi_score(torch.ones(1, 3)) == pytest.approx(1.0, rel=1e-5)
    assert vendi_score(_collapsed()) < 1.5 < 10 < vendi_score(_diverse())


def test_mean_pairwise_cosine_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # cos: 0, 1/sqrt2, 1/sqrt2
    assert mean_pairwise_cosine(x) == pytest.approx(2 / math.sqrt(2) / 3)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    assert mean_pairwise_cosine(_diverse()) < 0.1 < 0.99 < mean_pairwise_cosine(_collapsed())


def test_vanishing_singular_values_counts_dead_dimensions():
    x = _diverse(64, 16)
    assert vanishing_singular_values(x) == 0.0
    x[:, 10:] = 0.0  # six dimensions dead
    assert vanishing_singular_values(x) == 6.0
    assert vanishing_singular_values(torch.ones(5, 4)) == 4.0  # every item the same
    assert vanishing_singular_values(_collapsed()) >= 15  # one direction left (noise 1e-5 < rtol)
    assert vanishing_singular_values(_collapsed(), rtol=1e-7) == 0.0  # the noise counts once rtol is below it


def test_embedding_metrics_reject_bad_input():
    for f in (effective_rank, vendi_score, mean_pairwise_cosine, vanishing_singular_values):
        with pytest.raises(ValueError, match="embeddings holds NaN"):
            f(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
        with pytest.raises(ValueError, match=r"embeddings must be \(N, D\), got shape \(3,\)"):
            f(torch.ones(3))
        with pytest.raises(ValueError, match=r"embeddings needs at least"):
            f(torch.ones(0, 3))
        with pytest.raises(ValueError, match="embeddings must be floating point"):
            f(torch.ones(3, 3, dtype=torch.long))
    for f in (mean_pairwise_cosine, vanishing_singular_values):
        with pytest.raises(ValueError, match=r"at least 2 row\(s\)"):
            f(torch.ones(1, 3))
    for f in (vendi_score, mean_pairwise_cosine):
        with pytest.raises(ValueError, match="1 all-zero row"):
            f(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="rtol must be > 0, got 0"):
        vanishing_singular_values(torch.ones(3, 3), rtol=0)


def test_half_precision_is_computed_in_float32():
    x = _diverse().half()
    assert effective_rank(x) == pytest.approx(effective_rank(x.float()))
    assert mean_pairwise_cosine(x.bfloat16()) == pytest.approx(mean_pairwise_cosine(x.bfloat16().float()))
