"""``fused_lora_linear`` equals ``x W^T + b + s u B^T`` written out, with
the same gradients, and gives frozen inputs no gradient."""
import pytest
import torch

from mmseg_convlora.models.utils.fused_lora_linear import fused_lora_linear


def written_out(x, u, weight, bias, lora_B, s):
    out = x @ weight.t() + s * (u @ lora_B.t())
    return out if bias is None else out + bias


def tensors(c, out_features, r=3, t=10, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*shape, generator=g, dtype=dtype)
        for shape in ((t, c), (t, r), (out_features, c), (out_features, ),
                      (out_features, r))
    ]


# 12 + 3 + 1 = 16: no padding column; the others are padded.
@pytest.mark.parametrize('c,out_features,r', [(8, 24, 3), (12, 5, 3),
                                              (7, 9, 1), (30, 4, 6)])
@pytest.mark.parametrize('with_bias', [True, False])
def test_values_and_gradients_match_the_formula(c, out_features, r, with_bias):
    x, u, weight, bias, lora_B = tensors(c, out_features, r)
    bias = bias if with_bias else None
    inputs = [
        t.requires_grad_() for t in (x, u, weight, bias, lora_B)
        if t is not None
    ]
    out = fused_lora_linear(x, u, weight, bias, lora_B, 2.5)
    expected = written_out(x, u, weight, bias, lora_B, 2.5)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(expected, inputs, grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    x, u, weight, bias, lora_B = [
        t.requires_grad_() for t in tensors(5, 6, 2, t=4)
    ]
    assert torch.autograd.gradcheck(lambda *a: fused_lora_linear(*a, 0.7),
                                    (x, u, weight, bias, lora_B))


def test_frozen_weight_gets_no_gradient_and_float32_rounding():
    x, u, weight, bias, lora_B = tensors(768, 96, 3, t=50, dtype=torch.float32)
    x.requires_grad_()
    lora_B.requires_grad_()
    out = fused_lora_linear(x, u, weight, bias, lora_B, 32 / 3)
    out.square().sum().backward()
    assert weight.grad is None and bias.grad is None and u.grad is None
    assert x.grad.shape == x.shape and lora_B.grad.shape == lora_B.shape
    # No less accurate in float32 than the three-step formula.
    args = [t.detach() for t in (x, u, weight, bias, lora_B)]
    exact = written_out(*(t.double() for t in args), 32 / 3)
    plain_error = (written_out(*args, 32 / 3).double() - exact).abs().max()
    fused_error = (out.detach().double() - exact).abs().max()
    assert 0 < fused_error <= 1.5 * plain_error


def test_only_u_needs_gradient():
    """The first block's input does not require grad: no joint GEMM."""
    x, u, weight, bias, lora_B = tensors(8, 12)
    u.requires_grad_()
    out = fused_lora_linear(x, u, weight, bias, lora_B, 3.0)
    grad = torch.randn_like(out)
    (got, ) = torch.autograd.grad(out, [u], grad)
    torch.testing.assert_close(got, 3.0 * grad @ lora_B)
