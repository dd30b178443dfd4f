"""Sub-prompt collapse metrics on hand-made prompts and assignments."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from collapsetune.metrics._prompts import (
    assign_entropy,
    assign_max_share,
    dead_subprompts,
    hard_assignments,
    subprompt_cos_max,
    subprompt_cos_mean,
    subprompt_cosines,
)


def test_identical_prompts_give_cosine_one():
    prompts = torch.ones(3, 4, 5) * torch.arange(1, 4.0)[:, None, None]  # scale does not matter
    assert subprompt_cos_max(prompts) == pytest.approx(1.0)
    assert subprompt_cos_mean(prompts) == pytest.approx(1.0)


def test_orthogonal_prompts_give_cosine_zero():
    prompts = torch.eye(4)[None].repeat(2, 1, 1)  # (2, 4, 4)
    assert subprompt_cos_max(prompts) == pytest.approx(0.0)
    assert subprompt_cos_mean(prompts) == pytest.approx(0.0)


def test_cos_max_is_per_class_max_averaged():
    a = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])  # a pair at cosine 1
    b = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])  # all orthogonal
    prompts = torch.stack([a, b])
    assert subprompt_cos_max(prompts) == pytest.approx(0.5)
    assert subprompt_cos_mean(prompts) == pytest.approx(1 / 6)
    assert subprompt_cosines(prompts).shape == (2, 3, 3)


def test_cosine_needs_two_subprompts():
    with pytest.raises(ValueError, match="K >= 2"):
        subprompt_cos_max(torch.randn(2, 1, 3))


def test_one_subprompt_owning_everything_gives_share_one():
    labels = torch.tensor([0, 0, 0, 1, 1])
    assign = torch.tensor([2, 2, 2, 0, 0])
    assert assign_max_share(assign, labels, 4) == pytest.approx(1.0)
    assert assign_entropy(assign, labels, 4) == pytest.approx(0.0)
    assert dead_subprompts(assign, labels, 4) == pytest.approx(0.75)


def test_balanced_assignments():
    labels = torch.tensor([0, 0, 1, 1])
    assign = torch.tensor([0, 1, 1, 0])
    assert assign_max_share(assign, labels, 2) == pytest.approx(0.5)
    assert assign_entropy(assign, labels, 2) == pytest.approx(1.0)
    assert dead_subprompts(assign, labels, 2) == pytest.approx(0.0)


def test_share_and_entropy_by_hand():
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    assign = torch.tensor([0, 0, 0, 1, 1, 1])  # class 0: 3/4, 1/4; class 1: 0, 1
    assert assign_max_share(assign, labels, 2) == pytest.approx((0.75 + 1.0) / 2)
    h0 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    assert assign_entropy(assign, labels, 2) == pytest.approx(h0 / 2)
    assert dead_subprompts(assign, labels, 2) == pytest.approx(0.25)


def test_assignment_errors():
    with pytest.raises(ValueError, match="same shape"):
        assign_max_share(torch.tensor([0, 1]), torch.tensor([0]), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        assign_max_share(torch.tensor([0, 2]), torch.tensor([0, 0]), 2)


def test_hard_assignments_pick_the_closest_own_subprompt():
    prompts = torch.stack([torch.eye(3)[:2], torch.eye(3)[1:]])  # class 0: e0, e1; class 1: e1, e2
    features = torch.tensor([[0.1, 1.0, 0.0], [0.0, 0.2, 1.0], [1.0, 0.0, 0.1]])
    labels = torch.tensor([0, 1, 0])
    assert hard_assignments(features, labels, prompts).tolist() == [1, 1, 0]
    assert F.normalize(prompts, dim=-1).shape == (2, 2, 3)
