from __future__ import annotations

import math

import pytest
import torch

from collapsetune.regularizers import (
    REGULARIZERS,
    ConfidencePenalty,
    LabelSmoothingCE,
    MaxSup,
    OutputL2,
    VocabDiversityBonus,
    create,
)

LOGITS = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]
TARGETS = torch.tensor([0, 2])


def logits():
    return torch.tensor(LOGITS, requires_grad=True)


def softmax_rows():
    out = []
    for row in LOGITS:
        e = [math.exp(v) for v in row]
        out.append([v / sum(e) for v in e])
    return out


def test_label_smoothing_ce_value_and_grad_by_hand():
    eps, z = 0.1, logits()
    loss = LabelSmoothingCE(eps)(z, TARGETS)
    p = softmax_rows()
    expected, grad = 0.0, []
    for i, t in enumerate(TARGETS.tolist()):
        q = [(1 - eps) * (j == t) + eps / 3 for j in range(3)]
        expected += -sum(q[j] * math.log(p[i][j]) for j in range(3)) / 2
        grad.append([(p[i][j] - q[j]) / 2 for j in range(3)])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    torch.testing.assert_close(z.grad, torch.tensor(grad))


def test_label_smoothing_zero_is_plain_ce():
    z = torch.tensor(LOGITS)
    torch.testing.assert_close(LabelSmoothingCE(0.0)(z, TARGETS),
                               torch.nn.functional.cross_entropy(z, TARGETS))


def test_maxsup_value_grad_and_linear_ramp():
    ms = MaxSup(0.1, 0.3)
    assert ms.lam == pytest.approx(0.1)
    ms.set_progress(0.5)
    assert ms.lam == pytest.approx(0.2)
    z = logits()
    loss = ms(z, TARGETS)
    p = softmax_rows()
    ce = -(math.log(p[0][0]) + math.log(p[1][2])) / 2
    reg = ((2.0 - 1 / 3) + (1.5 - 2 / 3)) / 2  # top-1 minus mean logit, row-averaged
    assert loss.item() == pytest.approx(ce + 0.2 * reg, rel=1e-5)
    loss.backward()
    onehot_t = [[1, 0, 0], [0, 0, 1]]
    top1 = [[1, 0, 0], [0, 1, 0]]
    grad = [[(p[i][j] - onehot_t[i][j]) / 2 + 0.2 * (top1[i][j] - 1 / 3) / 2 for j in range(3)]
            for i in range(2)]
    torch.testing.assert_close(z.grad, torch.tensor(grad))
    ms.set_progress(2.0)  # clamped
    assert ms.lam == pytest.approx(0.3)


def test_confidence_penalty_value_and_grad_by_hand():
    beta, z = 0.5, logits()
    loss = ConfidencePenalty(beta)(z, TARGETS)
    p = softmax_rows()
    ent = [-sum(pi * math.log(pi) for pi in row) for row in p]
    assert loss.item() == pytest.approx(-beta * sum(ent) / 2, rel=1e-5)
    loss.backward()
    # dH/dz_j = -p_j (log p_j + H)
    grad = [[-beta / 2 * -p[i][j] * (math.log(p[i][j]) + ent[i]) for j in range(3)]
            for i in range(2)]
    torch.testing.assert_close(z.grad, torch.tensor(grad))


def test_vocab_diversity_bonus_value_and_grad():
    w, z = 0.3, logits()
    loss = VocabDiversityBonus(w)(z, TARGETS)
    p = softmax_rows()
    m = [(p[0][j] + p[1][j]) / 2 for j in range(3)]
    h = -sum(mj * math.log(mj) for mj in m)
    assert loss.item() == pytest.approx(-w * h, rel=1e-5)
    loss.backward()
    # dH/dm_k = -(log m_k + 1); dm_k/dz_ij = p_ij (δ_jk - p_ik) / 2
    grad = [[-w * sum(-(math.log(m[k]) + 1) * p[i][j] * ((j == k) - p[i][k]) / 2
                      for k in range(3)) for j in range(3)] for i in range(2)]
    torch.testing.assert_close(z.grad, torch.tensor(grad))


def test_vocab_diversity_is_max_for_uniform_batch_usage():
    spread = VocabDiversityBonus(1.0)(torch.eye(4) * 20, None)
    same = VocabDiversityBonus(1.0)(torch.tensor([[20.0, 0, 0, 0]] * 4), None)
    assert spread.item() == pytest.approx(-math.log(4), rel=1e-4)
    assert same.item() > spread.item()


def test_output_l2_value_and_grad():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0]], requires_grad=True)
    loss = OutputL2(0.1)(w)
    assert loss.item() == pytest.approx(0.1 * 5.25)
    loss.backward()
    torch.testing.assert_close(w.grad, 0.2 * w.detach())


@pytest.mark.parametrize("name,kwargs,arg", [
    ("label_smoothing", {"smoothing": -0.1}, "smoothing"),
    ("maxsup", {"lam_start": -1.0}, "lam_start"),
    ("maxsup", {"lam_end": -1.0}, "lam_end"),
    ("confidence_penalty", {"beta": -1.0}, "beta"),
    ("vocab_bonus", {"weight": -1e-3}, "weight"),
    ("output_l2", {"weight": -2}, "weight"),
])
def test_regularizer_rejects_negative_weight(name, kwargs, arg):
    with pytest.raises(ValueError, match=rf"{arg} must be >= 0, got -"):
        create(name, **kwargs)


def test_label_smoothing_rejects_above_one():
    with pytest.raises(ValueError, match="smoothing must be <= 1"):
        LabelSmoothingCE(1.5)


def test_create_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'maxsupp'.*confidence_penalty.*maxsup"):
        create("maxsupp")


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_every_registered_regularizer_forward_backward(name):
    kwargs = {"label_smoothing": {"smoothing": 0.1}, "maxsup": {},
              "confidence_penalty": {"beta": 0.1}, "vocab_bonus": {"weight": 0.1},
              "output_l2": {"weight": 0.1}}[name]
    reg = create(name, **kwargs)
    z = torch.randn(6, 5, requires_grad=True)
    out = reg(z) if name == "output_l2" else reg(z, torch.randint(0, 5, (6,)))
    assert out.dim() == 0 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
