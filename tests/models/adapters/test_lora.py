"""LoRA: identity at init, merge/unmerge, on-the-fly merged eval, frozen
weights untouched, target selection errors, one optimizer step, bf16."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmseg_convlora  # noqa: F401
from mmseg_convlora.models.adapters import LoRA, LoRALinear
from helpers import build_tiny_model, build_tiny_sam, fake_batch

SIZE = 128


def randomize_lora(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'lora_B' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


# ---------------------------------------------------------------------- #
def test_lora_wraps_every_qkv_and_starts_as_sam(tiny_ckpt):
    plain = build_tiny_model(tiny_ckpt)
    model = build_tiny_model(tiny_ckpt, dict(type='LoRA'))
    enc = model.backbone.encoder
    assert all(isinstance(b.attn.qkv, LoRALinear) for b in enc.blocks)
    assert not isinstance(enc.blocks[0].attn.proj, LoRALinear)
    # Frozen weights keep SAM's keys; adapter keys appear exactly once.
    keys = list(model.state_dict())
    assert 'backbone.encoder.blocks.0.attn.qkv.weight' in keys
    assert keys.count('backbone.encoder.blocks.0.attn.qkv.lora_A') == 1
    assert not any(k.startswith('backbone.adapters') for k in keys)
    x = torch.randn(2, 3, SIZE, SIZE)
    sam = build_tiny_sam()
    for mode in (False, True):
        plain.train(mode)
        model.train(mode)
        with torch.no_grad():
            ref = plain.backbone(x)[0]
            out = model.backbone(x)[0]
            torch.testing.assert_close(
                sam.image_encoder(x), out, rtol=0, atol=1e-6)
        assert torch.equal(out, ref)
        with torch.no_grad():
            assert torch.equal(
                model.decode_head(model.backbone(x)),
                plain.decode_head(plain.backbone(x)))


def test_lora_linear_math_and_merge():
    torch.manual_seed(0)
    base = nn.Linear(16, 48)
    w0, b0 = base.weight.detach().clone(), base.bias.detach().clone()
    base.requires_grad_(False)
    layer = LoRALinear(base, rank=3, alpha=32)
    assert layer.lora_A.shape == (3, 16) and layer.lora_B.shape == (48, 3)
    assert torch.count_nonzero(layer.lora_B) == 0
    assert layer.scaling == pytest.approx(32 / 3)
    with torch.no_grad():
        layer.lora_B.normal_(0, 0.1)
    x = torch.randn(4, 5, 6, 16)
    expected = x @ w0.t() + b0 + (32 / 3) * (x @ layer.lora_A.t()) \
        @ layer.lora_B.t()

    layer.train()
    train_out = layer(x)
    torch.testing.assert_close(train_out, expected)
    for _ in range(3):  # train/eval switches never touch the frozen weight
        layer.eval()
        eval_out = layer(x)
        layer.train()
        layer(x)
    assert torch.equal(layer.weight, w0) and torch.equal(layer.bias, b0)
    torch.testing.assert_close(eval_out, train_out)

    # Eval uses a single F.linear with the merged weight and still lets
    # gradients reach A and B.
    layer.eval()
    layer(x).sum().backward()
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None

    layer.merge()
    assert layer.merged and not torch.equal(layer.weight, w0)
    torch.testing.assert_close(
        layer.weight, w0 + layer.scaling * layer.lora_B @ layer.lora_A)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), train_out)
    layer.merge()  # idempotent
    layer.unmerge()
    assert not layer.merged
    torch.testing.assert_close(layer.weight, w0, rtol=0, atol=1e-6)

    layer.merge()
    layer.train()
    with pytest.raises(RuntimeError, match='unmerge'):
        layer(x)


def test_lora_adapter_merge_equals_unmerged(tiny_ckpt):
    model = build_tiny_model(tiny_ckpt, dict(type='LoRA'))
    randomize_lora(model)
    model.eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    weights = [
        b.attn.qkv.weight.clone() for b in model.backbone.encoder.blocks
    ]
    with torch.no_grad():
        unmerged = model.backbone(x)[0]
        adapter = model.backbone.adapters[0]
        adapter.merge()
        merged = model.backbone(x)[0]
        adapter.unmerge()
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    model.train()
    with torch.no_grad():
        torch.testing.assert_close(
            model.backbone(x)[0], unmerged, rtol=1e-5, atol=1e-5)
    for blk, w in zip(model.backbone.encoder.blocks, weights):
        torch.testing.assert_close(blk.attn.qkv.weight, w, rtol=0, atol=1e-6)


def test_lora_targets_and_errors():
    sam = build_tiny_sam()
    enc = copy.deepcopy(sam.image_encoder).requires_grad_(False)
    adapter = LoRA(
        rank=2, targets=[r'blocks\.\d+\.attn\.proj', r'blocks\.0\.mlp\.lin1'])
    layers = adapter.apply_to(enc)
    assert len(layers) == 3
    assert isinstance(enc.blocks[1].attn.proj, LoRALinear)
    assert isinstance(enc.blocks[0].mlp.lin1, LoRALinear)
    assert not isinstance(enc.blocks[1].mlp.lin1, LoRALinear)
    assert not isinstance(enc.blocks[0].attn.qkv, LoRALinear)
    # proj is Linear(C, C): 2 r C parameters.
    assert sum(p.numel() for m in layers[:1] for p in m.parameters()
               if p.requires_grad) == 2 * 2 * 32

    enc = copy.deepcopy(sam.image_encoder)
    with pytest.raises(ValueError, match='qkvv. matches no module'):
        LoRA(targets=r'blocks\.\d+\.attn\.qkvv').apply_to(enc)
    with pytest.raises(ValueError, match='Attention.*only nn.Linear'):
        LoRA(targets=r'blocks\.\d+\.attn').apply_to(enc)
    with pytest.raises(ValueError, match='not a valid regular expression'):
        LoRA(targets='blocks(').apply_to(enc)
    with pytest.raises(ValueError, match='rank'):
        LoRA(rank=0)
    LoRA().apply_to(enc)
    with pytest.raises(ValueError, match='already wrapped'):
        LoRA().apply_to(enc)


def test_lora_one_step_changes_only_intended_params(tiny_ckpt):
    torch.manual_seed(0)
    model = build_tiny_model(tiny_ckpt, dict(type='LoRA'))
    randomize_lora(model)  # so that A gets a gradient in the first step
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n
            for n in trainable if n.startswith('backbone.')} == {
                f'backbone.encoder.blocks.{i}.attn.qkv.lora_{ab}'
                for i in range(2)
                for ab in 'AB'
            }
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=1e-3)
    loss, _ = model.parse_losses(model.loss(*fake_batch()))
    loss.backward()
    opt.step()
    for n, p in model.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), n
        else:
            assert p.grad is None, n
            assert torch.equal(p, before[n]), n


def test_lora_bf16_autocast_forward_backward(tiny_ckpt):
    model = build_tiny_model(tiny_ckpt, dict(type='LoRA'))
    randomize_lora(model)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss, _ = model.parse_losses(model.loss(*fake_batch()))
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if 'lora_' in n]
    assert grads and all(
        g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = model.backbone(torch.randn(1, 3, SIZE, SIZE))[0]
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize('dropout', [0.0, 0.5])
def test_lora_training_path_is_one_fused_gemm_with_exact_gradients(dropout):
    """Training runs the fused GEMM; its output and the gradients of x, A
    and B equal the three-step formula (float64, same dropout mask)."""
    torch.manual_seed(0)
    base = nn.Linear(16, 48).double().requires_grad_(False)
    layer = LoRALinear(base, rank=3, alpha=32, dropout=dropout).train()
    with torch.no_grad():
        layer.lora_B.normal_(0, 0.1)
    x = torch.randn(4, 5, 6, 16, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    out = layer(x)
    fused = out.grad_fn.next_functions[0][0]  # under the reshape
    assert type(fused).__name__ == '_FusedLoRALinearBackward'
    torch.manual_seed(1)  # the same dropout mask
    expected = base(x) + layer.scaling * F.linear(
        F.linear(layer.lora_dropout(x), layer.lora_A), layer.lora_B)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    params = [x, layer.lora_A, layer.lora_B]
    got = torch.autograd.grad(out, params, grad)
    want = torch.autograd.grad(expected, params, grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # F.linear's dtype
        assert layer.float()(x.float()).dtype == torch.bfloat16
