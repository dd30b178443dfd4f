from __future__ import annotations

import math

import pytest
import torch

from collapsetune.decoding import (
    DecodingConfig,
    generate,
    sample_next,
    top_k_filter,
    top_p_filter,
)

# Row 0 probabilities 0.5, 0.3, 0.15, 0.05; row 1 has its maximum at index 2.
PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.6, 0.1]])
LOGITS = PROBS.log()
NEG = float("-inf")


def test_greedy_picks_argmax():
    assert sample_next(LOGITS, "greedy").tolist() == [0, 2]


def test_top_k_filter_keeps_k_largest():
    out = top_k_filter(LOGITS, 2)
    assert torch.isinf(out[0, 2:]).all() and torch.isfinite(out[0, :2]).all()
    assert torch.isfinite(out[1, 1:3]).all() and torch.isinf(out[1, [0, 3]]).all()
    assert torch.equal(top_k_filter(LOGITS, 0), LOGITS)


@pytest.mark.parametrize("p,kept", [(0.5, 1), (0.51, 2), (0.8, 2), (0.81, 3), (0.96, 4),
                                    (0.01, 1)])
def test_top_p_keeps_exactly_the_nucleus(p, kept):
    out = top_p_filter(LOGITS[:1], p)
    assert torch.isfinite(out[0]).sum().item() == kept
    assert torch.isfinite(out[0, :kept]).all()  # the kept ones are the most probable


def test_top_p_works_on_unsorted_rows():
    out = top_p_filter(LOGITS[1:], 0.7)  # 0.6 then 0.2 -> 0.8 >= 0.7
    assert torch.isfinite(out[0]).tolist() == [False, True, True, False]


def test_sampling_only_draws_allowed_tokens():
    g = torch.Generator().manual_seed(0)
    logits = LOGITS[:1].expand(500, 4)
    k = sample_next(logits, "top_k", top_k=2, generator=g)
    assert set(k.tolist()) == {0, 1}
    p = sample_next(logits, "top_p", top_p=0.81, generator=g)
    assert set(p.tolist()) == {0, 1, 2}
    t = sample_next(logits, "temperature", temperature=0.01, generator=g)
    assert set(t.tolist()) == {0}


def test_decoding_config_validates():
    for bad in [dict(strategy="beam"), dict(temperature=0.0), dict(top_k=-1),
                dict(top_p=0.0), dict(top_p=1.5), dict(strategy="top_k")]:
        with pytest.raises(ValueError):
            DecodingConfig(**bad)
    assert DecodingConfig("top_p", top_p=0.9).sampling()["strategy"] == "top_p"


def test_generate_appends_tokens_and_crops_context():
    seen = []

    def model_fn(idx):  # always predicts (last token + 1) mod 5
        seen.append(idx.shape[1])
        logits = torch.full((*idx.shape, 5), -10.0)
        nxt = (idx + 1) % 5
        return logits.scatter(-1, nxt.unsqueeze(-1), 10.0)

    out = generate(model_fn, torch.tensor([[0, 1]]), 4, context=3, strategy="greedy")
    assert out.tolist() == [[0, 1, 2, 3, 4, 0]]
    assert max(seen) == 3
    assert not math.isnan(out.float().sum().item())
