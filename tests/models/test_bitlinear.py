from __future__ import annotations

import torch
import torch.nn.functional as F

from collapsetune.models import BitLinear, absmax_int8, absmean_ternary


def test_absmean_ternary_matches_formula():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    s = 1.0 / w.abs().mean()
    expected = (w * s).round().clamp(-1, 1) / s
    q = absmean_ternary(w)
    torch.testing.assert_close(q, expected)
    assert set((q * s).round().unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_absmax_int8_matches_formula_per_token():
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1))
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True)
    expected = (x * s).round().clamp(-128, 127) / s
    torch.testing.assert_close(absmax_int8(x), expected)
    # The largest entry of each token maps exactly onto the int8 grid's end.
    torch.testing.assert_close(absmax_int8(x).abs().amax(-1), x.abs().amax(-1))


def test_quantisers_handle_zeros():
    assert torch.isfinite(absmean_ternary(torch.zeros(4, 4))).all()
    assert torch.isfinite(absmax_int8(torch.zeros(2, 4))).all()


def test_bitlinear_forward_equals_quantised_linear():
    layer = BitLinear(16, 8)
    x = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(2))
    xn = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)
    expected = F.linear(absmax_int8(xn), absmean_ternary(layer.weight))
    torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-5)


def test_bitlinear_ste_gradients_reach_weight_and_input():
    layer = BitLinear(16, 8)
    x = torch.randn(2, 4, 16, requires_grad=True)
    layer(x).pow(2).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bitlinear_ste_weight_gradient_is_identity_through_quantiser():
    # With STE, dL/dW equals the gradient of F.linear w.r.t. its (quantised) weight.
    layer = BitLinear(4, 3)
    x = torch.randn(5, 4)
    layer(x).sum().backward()
    xn = absmax_int8(layer.norm(x))
    expected = torch.ones(5, 3).T @ xn  # d(sum(xn @ W.T))/dW
    torch.testing.assert_close(layer.weight.grad, expected, rtol=1e-4, atol=1e-5)
