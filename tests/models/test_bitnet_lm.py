from __future__ import annotations

import pytest
import torch

from collapsetune.models import BitLinear, BitNetConfig, BitNetLM

TINY = dict(vocab_size=50, context=12, d_model=16, n_layers=2, n_heads=2)


@pytest.mark.parametrize("linear", ["bit", "float"])
def test_bitnet_lm_forward_backward_every_param_gets_grad(linear):
    torch.manual_seed(0)
    model = BitNetLM(BitNetConfig(**TINY, linear=linear))
    idx = torch.randint(0, 50, (3, 12))
    logits = model(idx)
    assert logits.shape == (3, 12, 50)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(logits).all()


def test_bitnet_lm_uses_bitlinear_except_lm_head():
    model = BitNetLM(BitNetConfig(**TINY))
    n_bit = sum(isinstance(m, BitLinear) for m in model.modules())
    assert n_bit == 4 * TINY["n_layers"]
    assert not isinstance(model.lm_head, BitLinear)
    float_model = BitNetLM(BitNetConfig(**TINY, linear="float"))
    assert not any(isinstance(m, BitLinear) for m in float_model.modules())


def test_bitnet_lm_is_causal():
    torch.manual_seed(0)
    model = BitNetLM(BitNetConfig(**TINY, linear="float")).eval()
    a = torch.randint(0, 50, (1, 12))
    b = a.clone()
    b[0, -1] = (a[0, -1] + 1) % 50
    torch.testing.assert_close(model(a)[:, :-1], model(b)[:, :-1])


def test_bitnet_config_unknown_key_names_it_and_valid_keys():
    with pytest.raises(ValueError, match=r"'d_modle'.*d_model"):
        BitNetConfig.from_dict({"d_modle": 8})


BAD = [{"linear": "int4"}, {"d_model": 10, "n_heads": 3}, {"n_layers": 0}]


@pytest.mark.parametrize("bad", BAD)
def test_bitnet_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        BitNetConfig(**bad)


def test_bitnet_lm_rejects_too_long_sequence():
    model = BitNetLM(BitNetConfig(**TINY))
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 13, dtype=torch.long))
