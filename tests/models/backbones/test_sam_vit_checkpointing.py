"""Activation checkpointing of SAMViT's blocks (``with_cp=True``): every
block (block 0 included) is checkpointed, loss (task + loss_moe) and
gradients equal the plain backbone's, the recorded MoE loss is the first
pass's, and the activations kept for backward shrink."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS

from mmseg_convlora.models.utils import recompute
from helpers import TINY_IMG_SIZE, fake_batch, tiny_model_cfg

SIZE = TINY_IMG_SIZE
ADAPTERS = {
    'lora': dict(type='LoRA', rank=3, alpha=32),
    'convlora_grouped': dict(type='ConvLoRA', dispatch='grouped'),
    'convlora_dense': dict(type='ConvLoRA', dispatch='dense'),
}


def build(ckpt, adapter, with_cp):
    cfg = tiny_model_cfg(ckpt, adapter=adapter)
    cfg['backbone']['with_cp'] = with_cp
    torch.manual_seed(0)  # same A / expert weights for both models
    model = MODELS.build(ConfigDict(cfg))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a trained-looking state: B, gates non-zero
        trained = ('lora_B', 'w_gate', 'w_noise')
        for name, p in model.named_parameters():
            if p.requires_grad and name.endswith(trained):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.train()


def step(model):
    torch.manual_seed(5)  # the gate noise of this step
    losses = model.loss(*fake_batch())
    loss, _ = model.parse_losses(losses)
    layers = [m for m in model.modules() if hasattr(m, 'last_moe_loss')]
    recorded = [m.last_moe_loss for m in layers]
    routes = [m.last_expert_ids.clone() for m in layers]
    loss.backward()
    # backward recomputed the blocks; the records are still the first pass's
    assert all(m.last_moe_loss is r for m, r in zip(layers, recorded))
    assert all(
        torch.equal(m.last_expert_ids, r) for m, r in zip(layers, routes))
    grads = {
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.grad is not None
    }
    return {k: v.detach() for k, v in losses.items()}, grads, routes


@pytest.mark.parametrize('name', list(ADAPTERS))
def test_checkpointed_equals_plain(tiny_sam_file, name):
    ckpt = tiny_sam_file[0]
    plain_losses, plain_grads, plain_routes = step(
        build(ckpt, ADAPTERS[name], with_cp=False))
    cp_losses, cp_grads, cp_routes = step(
        build(ckpt, ADAPTERS[name], with_cp=True))
    assert plain_losses.keys() == cp_losses.keys()
    assert ('loss_moe' in cp_losses) == name.startswith('convlora')
    for key in plain_losses:
        torch.testing.assert_close(cp_losses[key], plain_losses[key], msg=key)
    for a, b in zip(plain_routes, cp_routes):
        assert torch.equal(a, b)
    assert plain_grads.keys() == cp_grads.keys()
    encoder_grads = [n for n in cp_grads if '.encoder.blocks.0.' in n]
    assert encoder_grads, 'block 0 adapter parameters get gradients'
    if name.startswith('convlora'):
        assert any('w_gate' in n for n in cp_grads), 'gate trains (loss_moe)'
    for n in plain_grads:
        torch.testing.assert_close(cp_grads[n], plain_grads[n], msg=n)


def count_checkpoint_calls(monkeypatch):
    calls = []
    real = recompute.cp.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append(fn)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(recompute.cp, 'checkpoint', counting)
    return calls


def test_every_block_is_checkpointed_only_when_training(
        tiny_sam_file, monkeypatch):
    calls = count_checkpoint_calls(monkeypatch)
    model = build(tiny_sam_file[0], ADAPTERS['lora'], with_cp=True)
    depth = len(model.backbone.encoder.blocks)
    x = torch.randn(1, 3, SIZE, SIZE)
    model.backbone(x)
    assert calls == list(model.backbone.encoder.blocks)  # block 0 too
    assert depth == 2
    calls.clear()
    with torch.no_grad():
        model.backbone(x)
    model.eval()
    model.backbone(x)
    assert calls == []
    # CAD: the encoder runs without autograd, nothing to checkpoint
    cad = build(
        tiny_sam_file[0],
        dict(type='CAD', channels=32, input_size=64),
        with_cp=True)
    cad.backbone(x)
    assert calls == []


def saved_bytes(model):
    """Bytes autograd keeps for backward outside checkpointed regions."""
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.backbone(torch.randn(2, 3, SIZE, SIZE))
    return sum(total)


@pytest.mark.parametrize('name', ['lora', 'convlora_grouped'])
def test_checkpointing_keeps_fewer_activations(tiny_sam_file, name):
    plain = saved_bytes(build(tiny_sam_file[0], ADAPTERS[name], False))
    ckpt = saved_bytes(build(tiny_sam_file[0], ADAPTERS[name], True))
    assert ckpt < 0.25 * plain, (ckpt, plain)
