"""More cases where the efficient Conv-LoRA dispatch ('grouped', 'dense')
must equal the straightforward one ('loop'): a whole tiny SAM in training
(windowed + global blocks, random routing, MoE loss and every gradient),
under bfloat16 autocast, and degenerate routings (one sample; every sample
on one expert)."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_convlora.models.adapters import ConvLoRALinear
from helpers import TINY_IMG_SIZE, tiny_model_cfg

S = TINY_IMG_SIZE


def model_step(ckpt, dispatch, autocast=False):
    torch.manual_seed(0)
    model = MODELS.build(
        ConfigDict(
            tiny_model_cfg(
                ckpt, adapter=dict(type='ConvLoRA', dispatch=dispatch))))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(
                ('lora_B', 'w_gate', 'w_noise')) or ('.experts.' in name and
                                                     name.endswith('bias')):
                p.copy_(torch.randn(p.shape, generator=g))
    model.train()
    g = torch.Generator().manual_seed(2)
    inputs = torch.randn(2, 3, S, S, generator=g)
    samples = []
    for _ in range(2):
        s = SegDataSample(
            gt_sem_seg=PixelData(
                data=(torch.rand(1, S, S, generator=g) > 0.5).long()))
        s.set_metainfo(
            dict(img_shape=(S, S), pad_shape=(S, S), ori_shape=(S, S)))
        samples.append(s)
    torch.manual_seed(3)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
    loss.backward()
    layers = model.backbone.adapters[0].layers
    routes = [layer.last_expert_ids for layer in layers]
    grads = {
        n: p.grad
        for n, p in model.named_parameters() if p.grad is not None
    }
    return losses, routes, grads


@pytest.mark.parametrize('autocast', [False, True])
def test_whole_model_dispatch_equivalence(tiny_sam_file, autocast):
    ref_losses, ref_routes, ref_grads = model_step(tiny_sam_file[0], 'loop',
                                                   autocast)
    used = torch.cat([r.flatten() for r in ref_routes]).unique()
    assert len(used) > 3  # random routing over many experts
    assert ref_routes[0].shape[0] == 2 * 4  # windows routed one by one
    tol = dict(rtol=2e-2, atol=2e-3) if autocast else {}
    for dispatch in ('grouped', 'dense'):
        losses, routes, grads = model_step(tiny_sam_file[0], dispatch,
                                           autocast)
        for a, b in zip(routes, ref_routes):
            assert torch.equal(a, b)
        for k in ref_losses:
            torch.testing.assert_close(losses[k], ref_losses[k], **tol, msg=k)
        expert_grads = {n for n in ref_grads if '.experts.' in n}
        for n, g in ref_grads.items():
            other = grads.get(n)
            if other is None:  # grouped: unused experts get no gradient
                assert dispatch == 'grouped' and n in expert_grads
                assert torch.count_nonzero(g) == 0
                continue
            torch.testing.assert_close(other, g, **tol, msg=n)


def make_layer():
    torch.manual_seed(0)
    layer = ConvLoRALinear(nn.Linear(8, 24).requires_grad_(False))
    with torch.no_grad():
        layer.lora_B.normal_()
        for conv in layer.experts:
            conv.bias.normal_()
    return layer


@pytest.mark.parametrize('case', ['one_sample', 'one_expert'])
def test_degenerate_routings(case):
    ref = make_layer()
    if case == 'one_expert':
        with torch.no_grad():  # every sample to expert 7 (scale 8)
            ref.w_gate.zero_()
            ref.w_gate[:, 7] = 100.0
            ref.lora_A.abs_()
    n = 1 if case == 'one_sample' else 6
    x0 = torch.rand(n, 5, 6, 8)
    results = {}
    for dispatch in ('loop', 'grouped', 'dense'):
        layer = copy.deepcopy(ref)
        layer.dispatch = dispatch
        layer.train()
        x = x0.clone().requires_grad_(True)
        torch.manual_seed(1)
        out = layer(x)
        (out.square().mean() + layer.last_moe_loss).backward()
        results[dispatch] = (out, layer.last_moe_loss, x.grad,
                             layer.lora_A.grad, layer.last_expert_ids)
    if case == 'one_expert':
        assert results['loop'][4].unique().tolist() == [7]
    for dispatch in ('grouped', 'dense'):
        for a, b in zip(results[dispatch], results['loop']):
            torch.testing.assert_close(a, b)


def test_dispatch_rule_matches_which_experts_get_gradients():
    # The layer's rule (what DDP's find_unused_parameters follows) against
    # what a training step does: with every sample on expert 7, 'grouped'
    # and 'loop' leave experts 0-6 without a gradient, 'dense' gives them
    # an exact zero one.
    ref = make_layer()
    with torch.no_grad():
        ref.w_gate.zero_()
        ref.w_gate[:, 7] = 100.0
        ref.lora_A.abs_()
    for dispatch, device, resolved in [('auto', 'cpu', 'grouped'),
                                       ('auto', 'cuda', 'dense'),
                                       ('grouped', 'cuda', 'grouped'),
                                       ('dense', 'cpu', 'dense'),
                                       ('loop', 'cpu', 'loop')]:
        layer = copy.deepcopy(ref)
        layer.dispatch = dispatch
        assert layer.dispatch_on(device) == resolved
        assert layer.dispatch_on(torch.device(device)) == resolved
        skips = layer.may_leave_experts_without_grad(device)
        assert skips == (resolved != 'dense')
        if device != 'cpu':
            continue
        layer.train()
        torch.manual_seed(1)
        layer(torch.rand(3, 5, 6, 8)).sum().backward()
        grads = [conv.weight.grad for conv in layer.experts]
        assert grads[7] is not None and grads[7].abs().sum() > 0
        assert any(g is None for g in grads[:7]) == skips
        if not skips:
            assert all(torch.count_nonzero(g) == 0 for g in grads[:7])
    # frozen experts can never be left out of DDP's reduction
    layer = copy.deepcopy(ref)
    layer.dispatch = 'grouped'
    layer.experts.requires_grad_(False)
    assert not layer.may_leave_experts_without_grad('cpu')
