"""Conv-LoRA on (N, L, C) token sequences with a declared grid: the map
tokens as the (N, h, w, C) path, prefix tokens on the plain LoRA path."""
import pytest
import torch
import torch.nn as nn

from mmseg_convlora.models.adapters import ConvLoRALinear

R, M = 3, 8


def trained_layer(c=8, seed=0, dispatch='grouped'):
    """A layer with non-zero B, expert biases and gate (trained-looking)."""
    torch.manual_seed(seed)
    layer = ConvLoRALinear(
        nn.Linear(c, 2 * c).requires_grad_(False),
        rank=R,
        alpha=32,
        num_experts=M,
        dispatch=dispatch)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g))
        layer.w_gate.copy_(torch.randn(layer.w_gate.shape, generator=g))
        for conv in layer.experts:
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * .1)
    return layer.eval()


@pytest.mark.parametrize('dispatch', ['grouped', 'dense', 'loop'])
def test_sequence_equals_maps_and_prefix_gets_lora(dispatch):
    layer = trained_layer(dispatch=dispatch)
    N, h, w, C = 3, 5, 7, 8  # non-square grid: catches h/w mix-ups
    maps = torch.randn(N, h, w, C)
    cls_token = torch.randn(N, 1, C)
    seq = torch.cat([cls_token, maps.reshape(N, h * w, C)], dim=1)
    with torch.no_grad():
        expected_maps = layer(maps)
        ids = layer.last_expert_ids.clone()
        layer.set_token_grid((h, w), num_prefix_tokens=1)
        out = layer(seq)
    assert out.shape == (N, 1 + h * w, 2 * C)
    # The gate pools over the map tokens only: same routing as the maps.
    assert torch.equal(layer.last_expert_ids, ids)
    assert layer.last_grid == (h, w)
    torch.testing.assert_close(out[:, 1:].reshape(N, h, w, -1), expected_maps)
    # class token: W x + b + (alpha / r) B A x, no expert term
    x = cls_token[:, 0]
    lora = x @ layer.lora_A.t() @ layer.lora_B.t() * (32 / R)
    torch.testing.assert_close(out[:, 0],
                               x @ layer.weight.t() + layer.bias + lora)


def test_sequence_without_prefix_and_gradients():
    layer = trained_layer().train()
    N, h, w, C = 2, 4, 6, 8
    seq = torch.randn(N, h * w, C, requires_grad=True)
    layer.set_token_grid((h, w))
    torch.manual_seed(3)  # same gate noise in both passes
    out = layer(seq)
    torch.manual_seed(3)
    ref = layer(seq.detach().view(N, h, w, C))
    torch.testing.assert_close(out.view(N, h, w, -1), ref)
    out.square().sum().backward()
    assert layer.lora_A.grad.abs().sum() > 0
    assert layer.lora_B.grad.abs().sum() > 0
    assert seq.grad is not None
    assert layer.weight.grad is None


def test_unknown_or_wrong_grid_is_refused():
    layer = trained_layer()
    with pytest.raises(ValueError, match='does not know its h x w grid'):
        layer(torch.randn(2, 12, 8))
    layer.set_token_grid((3, 4), num_prefix_tokens=1)
    with pytest.raises(ValueError, match='grid is 3x4 with 1 prefix token'):
        layer(torch.randn(2, 12, 8))  # 12 tokens, 13 expected
    layer.set_token_grid(None)
    with pytest.raises(ValueError, match='does not know its h x w grid'):
        layer(torch.randn(2, 13, 8))
