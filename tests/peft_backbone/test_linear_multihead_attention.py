"""LinearMultiheadAttention: nn.MultiheadAttention's results with called
projection layers, nn.MultiheadAttention's checkpoints loading into it."""
import pytest
import torch
import torch.nn as nn

from mmseg_convlora.models.adapters import LoRALinear, inject_linear_adapters
from mmseg_convlora.peft_backbone import (LinearMultiheadAttention,
                                          replace_multihead_attention)


def pair(seed=0, **kwargs):
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(16, 4, **kwargs)
    with torch.no_grad():  # non-zero biases
        for name, p in mha.named_parameters():
            if 'bias' in name:
                p.normal_()
    return mha, LinearMultiheadAttention.from_multihead_attention(mha)


@pytest.mark.parametrize('batch_first', [False, True])
@pytest.mark.parametrize('training', [False, True])
def test_equals_torch_attention(batch_first, training):
    mha, ours = pair(batch_first=batch_first)
    mha.train(training)
    ours.train(training)
    shape_q, shape_kv = ((2, 7, 16), (2, 5, 16)) if batch_first else \
        ((7, 2, 16), (5, 2, 16))
    q, kv = torch.randn(shape_q), torch.randn(shape_kv)
    # self-attention (ViT) and reduced keys/values (SegFormer)
    for key in (q, kv):
        expected = mha(q, key, key)[0]
        out, weights = ours(q, key, key)
        assert weights is None
        torch.testing.assert_close(out, expected)


def test_masks_and_separate_kv_dims():
    mha, ours = pair()
    q, kv = torch.randn(7, 2, 16), torch.randn(5, 2, 16)
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[0, 3:] = True  # True: key ignored
    blocked = torch.rand(7, 5) > 0.7
    blocked[:, 0] = False  # every query keeps one key
    torch.testing.assert_close(
        ours(q, kv, kv, key_padding_mask=padding, attn_mask=blocked)[0],
        mha(q, kv, kv, key_padding_mask=padding, attn_mask=blocked)[0])
    additive = torch.randn(7, 5)
    torch.testing.assert_close(
        ours(q, kv, kv, attn_mask=additive)[0],
        mha(q, kv, kv, attn_mask=additive)[0])
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, kdim=8, vdim=6)
    ours = LinearMultiheadAttention.from_multihead_attention(mha)
    k, v = torch.randn(5, 2, 8), torch.randn(5, 2, 6)
    torch.testing.assert_close(ours(q, k, v)[0], mha(q, k, v)[0])


def test_loads_torch_layout_and_keeps_frozen_flags():
    mha, _ = pair()
    mha.requires_grad_(False)
    ours = LinearMultiheadAttention(16, 4)
    ours.load_state_dict(mha.state_dict())  # strict: every key lands
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    assert torch.equal(ours.q_proj.weight, w_q)
    assert torch.equal(ours.k_proj.weight, w_k)
    assert torch.equal(ours.v_proj.weight, w_v)
    assert torch.equal(ours.v_proj.bias, mha.in_proj_bias[32:])
    assert torch.equal(ours.out_proj.weight, mha.out_proj.weight)
    assert set(ours.state_dict()) == {
        f'{p}_proj.{w}'
        for p in ('q', 'k', 'v', 'out')
        for w in ('weight', 'bias')
    }
    copied = LinearMultiheadAttention.from_multihead_attention(mha)
    assert not any(p.requires_grad for p in copied.parameters())


def test_projections_are_called_so_lora_trains():
    """LoRA on out_proj of nn.MultiheadAttention is refused (never called);
    after the replacement its update reaches the output."""
    model = nn.Sequential(nn.MultiheadAttention(16, 4))
    with pytest.raises(ValueError, match='never calls its forward'):
        inject_linear_adapters(model, r'0\.out_proj', LoRALinear, 'LoRA')
    assert replace_multihead_attention(model) == ['0']
    layers = inject_linear_adapters(model, r'0\.(q|out)_proj', LoRALinear,
                                    'LoRA')
    assert list(layers) == ['0.q_proj', '0.out_proj']
    x = torch.randn(7, 2, 16)
    model[0](x, x, x)[0].sum().backward()
    for layer in layers.values():
        assert layer.lora_B.grad.abs().sum() > 0


def test_refuses_bias_kv():
    with pytest.raises(ValueError, match='add_bias_kv'):
        LinearMultiheadAttention.from_multihead_attention(
            nn.MultiheadAttention(16, 4, add_bias_kv=True))
