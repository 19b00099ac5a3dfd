"""Conv-LoRA: identity at init, the closed form of every expert scale,
per-window routing, the MoE loss, gate gradients, efficient vs reference
dispatch, one optimizer step, activation checkpointing, bf16."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import (window_partition,
                                                     window_unpartition)

import mmseg_convlora  # noqa: F401
from mmseg_convlora.models.adapters import (ConvLoRA, ConvLoRALinear,
                                            cv_squared, moe_balance_loss)
from helpers import build_tiny_model, build_tiny_sam, fake_batch

SIZE = 128
R, M = 3, 8


def randomize(layers, seed=1, gate_std=0.0):
    """Non-zero B, expert biases (and gate weights): a trained-looking state.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers:
            layer.lora_B.copy_(
                torch.randn(layer.lora_B.shape, generator=g) * 0.1)
            for conv in layer.experts:
                conv.bias.copy_(
                    torch.randn(conv.bias.shape, generator=g) * 0.1)
            if gate_std:
                layer.w_gate.copy_(
                    torch.randn(layer.w_gate.shape, generator=g) * gate_std)
                layer.w_noise.copy_(
                    torch.randn(layer.w_noise.shape, generator=g) * gate_std)


def make_layer(c=8, seed=0, **kwargs):
    torch.manual_seed(seed)
    base = nn.Linear(c, 3 * c).requires_grad_(False)
    return ConvLoRALinear(base, rank=R, alpha=32, num_experts=M, **kwargs)


# The Conv-LoRA expert in closed form (bicubic upsampling by its scale, 3x3
# conv, exact GELU, bicubic back to the input size), written independently
# of the implementation.
def closed_expert(z, scale, weight, bias):
    h, w = z.shape[-2:]
    if scale > 1:
        z = F.interpolate(
            z, scale_factor=scale, mode='bicubic', align_corners=False)
    y = F.gelu(
        F.conv2d(z, weight, bias, stride=1, padding=1), approximate='none')
    if scale > 1:
        y = F.interpolate(y, size=(h, w), mode='bicubic', align_corners=False)
    return y


def closed_form(layer, x, experts, weights=None):
    """y = W x + b + s B (z + sum_j g_j E_j(z)) per sample, expert ids
    (an int or a list per sample) and weights g_j (default 1) given."""
    outs = []
    for n, chosen in enumerate(experts):
        chosen = [chosen] if isinstance(chosen, int) else chosen
        g = [1.0] * len(chosen) if weights is None else weights[n]
        z = torch.einsum('hwc,rc->rhw', x[n], layer.lora_A)[None]
        mix = 0
        for e, g_e in zip(chosen, g):
            conv = layer.experts[e]
            mix = mix + g_e * closed_expert(z, e + 1, conv.weight, conv.bias)
        z = z + mix
        delta = torch.einsum('rhw,or->hwo', z[0], layer.lora_B)
        outs.append(x[n] @ layer.weight.t() + layer.bias + (32 / 3) * delta)
    return torch.stack(outs)


# ---------------------------------------------------------------------- #
def test_conv_lora_starts_as_sam(tiny_ckpt):
    plain = build_tiny_model(tiny_ckpt)
    model = build_tiny_model(tiny_ckpt, dict(type='ConvLoRA'))
    enc = model.backbone.encoder
    assert all(isinstance(b.attn.qkv, ConvLoRALinear) for b in enc.blocks)
    keys = list(model.state_dict())
    assert keys.count('backbone.encoder.blocks.0.attn.qkv.w_gate') == 1
    assert 'backbone.encoder.blocks.0.attn.qkv.weight' in keys
    x = torch.randn(2, 3, SIZE, SIZE)
    sam = build_tiny_sam()
    for mode in (True, False):  # train mode: noisy routing, still identity
        plain.train(mode)
        model.train(mode)
        with torch.no_grad():
            out = model.backbone(x)[0]
            assert torch.equal(out, plain.backbone(x)[0])
            torch.testing.assert_close(
                out, sam.image_encoder(x), rtol=0, atol=1e-6)
            assert torch.equal(
                model.decode_head(model.backbone(x)),
                plain.decode_head(plain.backbone(x)))


def test_parameters_per_layer():
    layer = make_layer(c=32)
    n = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert n == 4 * R * 32 + 2 * R * M + M * (9 * R * R + R)
    assert 2 * R * M + M * (9 * R * R + R) == 720
    assert all(torch.count_nonzero(c.bias) == 0 for c in layer.experts)
    assert torch.count_nonzero(layer.w_gate) == 0
    assert torch.count_nonzero(layer.w_noise) == 0
    assert torch.count_nonzero(layer.lora_B) == 0


@pytest.mark.parametrize('dispatch', ['grouped', 'dense', 'loop'])
@pytest.mark.parametrize('expert', range(M))
def test_forced_route_matches_closed_form(expert, dispatch):
    layer = make_layer(dispatch=dispatch)
    randomize([layer])
    with torch.no_grad():
        layer.lora_A.abs_()
        layer.w_gate.zero_()
        layer.w_gate[0, expert] = 1.0  # p[0] > 0 for positive inputs
    layer.eval()
    x = torch.rand(3, 5, 7, 8)  # non-square maps catch h/w mix-ups
    with torch.no_grad():
        out = layer(x)
        expected = closed_form(layer, x, [expert] * 3)
    assert layer.last_expert_ids.tolist() == [[expert]] * 3
    assert layer.last_grid == (5, 7)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # The expert really contributes (B and the conv are non-trivial).
    assert not torch.allclose(out, x @ layer.weight.t() + layer.bias)


@pytest.mark.parametrize('multiply_gate', [False, True])
def test_top2_sums_the_chosen_experts(multiply_gate):
    """k > 1: the paper's sum (gate-weighted if asked), not the reference
    dispatcher's log-sum-exp."""
    layer = make_layer(top_k=2, multiply_gate=multiply_gate)
    randomize([layer])
    with torch.no_grad():
        layer.lora_A.abs_()
        layer.w_gate.zero_()
        layer.w_gate[0, 5] = 2.0  # p[0] > 0: expert 5 first, then 2
        layer.w_gate[0, 2] = 1.0
    layer.eval()
    x = torch.rand(3, 5, 7, 8)
    with torch.no_grad():
        out = layer(x)
        p0 = torch.einsum('nhwc,c->n', x, layer.lora_A[0]) / 35
        gates = torch.stack([2 * p0, p0], 1).softmax(1).tolist()
        expected = closed_form(layer, x, [[5, 2]] * 3,
                               gates if multiply_gate else None)
        # AutoGluon's dispatcher: log(sum_j g_j exp(E_j(z))).
        z = torch.einsum('nhwc,rc->nrhw', x, layer.lora_A)
        e5, e2 = (
            closed_expert(z, e + 1, layer.experts[e].weight,
                          layer.experts[e].bias) for e in (5, 2))
        g = torch.tensor(gates).view(3, 2, 1, 1, 1) if multiply_gate \
            else torch.ones(3, 2, 1, 1, 1)
        soft_max = torch.log(g[:, 0] * e5.exp() + g[:, 1] * e2.exp())
        log_sum_exp = x @ layer.weight.t() + layer.bias + (32 / 3) * (
            torch.einsum('nrhw,or->nhwo', z + soft_max, layer.lora_B))
    assert layer.last_expert_ids.tolist() == [[5, 2]] * 3
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, log_sum_exp, rtol=1e-3, atol=1e-3)


def test_windowed_blocks_route_each_window():
    # 160 px -> 10x10 grid, window 4 -> zero-padded to 12x12 -> 9 windows.
    sam = build_tiny_sam(img_size=160)
    enc = sam.image_encoder.requires_grad_(False)
    adapter = ConvLoRA(dispatch='grouped')
    layers = adapter.apply_to(enc)
    randomize(layers, gate_std=5.0)
    for layer in layers:
        layer.eval()
    qkv = enc.blocks[0].attn.qkv
    seen = {}
    qkv.register_forward_hook(
        lambda m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        enc(torch.randn(2, 3, 160, 160))
        x, out = seen['x'], seen['out']
        assert x.shape == (2 * 9, 4, 4, 32)
        # The test's own routing: argmax of mean(A x) @ W_g, per window.
        z = torch.einsum('nhwc,rc->nr', x, qkv.lora_A) / 16
        ids = (z @ qkv.w_gate).argmax(1)
        assert ids.tolist() == qkv.last_expert_ids[:, 0].tolist()
        per_image = ids.view(2, 9)
        assert any(len(set(row.tolist())) > 1 for row in per_image), \
            'pick a seed with differently routed windows'
        expected = closed_form(qkv, x, ids.tolist())
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

        # Running the conv on the unpartitioned (padded) grid is different.
        grid = window_unpartition(x, 4, (12, 12), (12, 12))  # (2,12,12,C)
        g_ids = (torch.einsum('nhwc,rc->nr', grid, qkv.lora_A) /
                 144 @ qkv.w_gate).argmax(1)
        wrong = window_partition(closed_form(qkv, grid, g_ids.tolist()), 4)[0]
        assert not torch.allclose(out, wrong, rtol=1e-3, atol=1e-3)
    # Global blocks see the whole grid, one sample per image.
    assert layers[1].last_expert_ids.shape == (2, 1)
    assert layers[1].last_grid == (10, 10)
    routing = adapter.last_routing()
    assert set(routing) == {'blocks.0.attn.qkv', 'blocks.1.attn.qkv'}
    assert routing['blocks.0.attn.qkv']['expert_ids'].shape == (18, 1)


def test_moe_loss_reference_values():
    assert cv_squared(torch.tensor([5.0])) == 0
    counts = torch.tensor([4., 3, 3, 3, 3, 3, 3, 3])
    assert moe_balance_loss(counts, counts).item() == pytest.approx(
        2.56e-4, rel=1e-6)
    one = torch.zeros(M)
    one[2] = 1
    assert moe_balance_loss(one, one).item() == pytest.approx(0.16, rel=1e-6)

    layer = make_layer()
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(1, 4, 4, 8))
    assert layer.last_moe_loss.item() == pytest.approx(0.16, rel=1e-6)

    # Eval, 25 samples: the load is the routing counts.
    layer = make_layer()
    randomize([layer], gate_std=3.0)
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(25, 4, 4, 8))
    counts = torch.bincount(layer.last_expert_ids[:, 0], minlength=M).float()
    torch.testing.assert_close(layer.last_moe_loss,
                               moe_balance_loss(counts, counts))

    # A single expert cannot be unbalanced.
    single = ConvLoRALinear(
        nn.Linear(8, 24).requires_grad_(False), num_experts=1)
    single.train()
    single(torch.randn(4, 3, 3, 8))
    assert single.last_moe_loss.item() == 0


def test_training_load_is_shazeer_estimate():
    layer = make_layer(top_k=2)
    randomize([layer], gate_std=1.0)
    layer.train()
    x = torch.randn(6, 4, 4, 8)
    torch.manual_seed(3)
    layer(x)
    # Independent recomputation with the same noise draw.
    z = torch.einsum('nhwc,rc->nr', x, layer.lora_A) / 16
    clean = z @ layer.w_gate
    std = F.softplus(z @ layer.w_noise) + 0.01
    torch.manual_seed(3)
    noisy = clean + torch.randn_like(clean) * std
    srt = noisy.sort(dim=1, descending=True).values
    top2 = noisy.topk(2, dim=1).indices
    in_top = torch.zeros_like(noisy, dtype=torch.bool).scatter(1, top2, True)
    thr = torch.where(in_top, srt[:, 2:3], srt[:, 1:2])
    normal = torch.distributions.Normal(0.0, 1.0)
    load = normal.cdf((clean - thr) / std).sum(0)
    gates = torch.zeros_like(noisy).scatter(1, top2,
                                            noisy.gather(1, top2).softmax(1))
    expected = 0.01 * (
        gates.sum(0).var() / (gates.sum(0).mean()**2 + 1e-10) + load.var() /
        (load.mean()**2 + 1e-10))
    torch.testing.assert_close(layer.last_moe_loss, expected)
    assert layer.last_expert_ids.tolist() == top2.tolist()


def test_gate_learns_only_from_load_loss(tiny_ckpt):
    layer = make_layer()
    randomize([layer], gate_std=1.0)
    layer.train()
    layer(torch.randn(6, 4, 4, 8)).square().sum().backward()
    for p in (layer.w_gate, layer.w_noise):
        assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert layer.lora_A.grad.abs().sum() > 0
    layer.zero_grad()
    layer(torch.randn(6, 4, 4, 8))
    layer.last_moe_loss.backward()
    assert layer.w_gate.grad.abs().sum() > 0
    assert layer.w_noise.grad.abs().sum() > 0

    # Whole model: task loss alone gives the gates no gradient; with the
    # default zero gate init loss_moe still trains them.
    model = build_tiny_model(tiny_ckpt, dict(type='ConvLoRA'))
    randomize(model.backbone.adapters[0].layers)
    model.train()
    losses = model.loss(*fake_batch())
    assert 'loss_moe' in losses
    task = sum(v for k, v in losses.items() if k != 'loss_moe')
    task.backward(retain_graph=True)
    for layer in model.backbone.adapters[0].layers:
        for p in (layer.w_gate, layer.w_noise):
            assert p.grad is None or torch.count_nonzero(p.grad) == 0
    losses['loss_moe'].backward()
    for layer in model.backbone.adapters[0].layers:
        assert layer.w_gate.grad.abs().sum() > 0


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('top_k,multiply_gate', [(1, False), (1, True),
                                                 (2, False), (3, True)])
def test_efficient_dispatch_matches_loop(training, top_k, multiply_gate):
    ref = make_layer(dispatch='loop', top_k=top_k, multiply_gate=multiply_gate)
    randomize([ref], gate_std=2.0)
    x0 = torch.randn(12, 5, 4, 8)
    results = {}
    for dispatch in ('loop', 'grouped', 'dense'):
        layer = copy.deepcopy(ref)
        layer.dispatch = dispatch
        layer.train(training)
        x = x0.clone().requires_grad_(True)
        torch.manual_seed(7)
        out = layer(x)
        loss = layer.last_moe_loss
        (out.square().mean() + loss).backward()
        grads = {
            n: (p.grad if p.grad is not None else torch.zeros_like(p))
            for n, p in layer.named_parameters() if p.requires_grad
        }
        results[dispatch] = (out, loss, x.grad, grads, layer.last_expert_ids,
                             layer)
    ids = results['loop'][4]
    assert len(ids.unique()) > 2  # random routing, several experts used
    for dispatch in ('grouped', 'dense'):
        out, loss, xg, grads, eids, layer = results[dispatch]
        assert torch.equal(eids, ids)
        torch.testing.assert_close(out, results['loop'][0])
        torch.testing.assert_close(loss, results['loop'][1])
        torch.testing.assert_close(xg, results['loop'][2])
        for n, g in grads.items():
            torch.testing.assert_close(g, results['loop'][3][n], msg=n)
    # Unused experts: zero gradient (dense, DDP-safe) or none (grouped).
    unused = sorted(set(range(M)) - set(ids.flatten().tolist()))
    dense_layer, grouped_layer = results['dense'][5], results['grouped'][5]
    for e in unused:
        assert torch.count_nonzero(dense_layer.experts[e].weight.grad) == 0
        assert grouped_layer.experts[e].weight.grad is None


def test_auto_dispatch_and_args():
    layer = make_layer()
    randomize([layer], gate_std=2.0)
    layer.eval()
    x = torch.randn(5, 4, 4, 8)
    with torch.no_grad():
        out = layer(x)
        layer.dispatch = 'loop'
        torch.testing.assert_close(layer(x), out)
    with pytest.raises(ValueError, match='dispatch'):
        make_layer(dispatch='fast')
    with pytest.raises(ValueError, match='top_k'):
        make_layer(top_k=9)
    with pytest.raises(ValueError, match='rank'):
        ConvLoRA(rank=0)
    with pytest.raises(ValueError, match='does not know its h x w grid'):
        layer(torch.randn(5, 16, 8))  # a sequence needs set_token_grid
    with pytest.raises(ValueError, match=r'\(N, h, w, C\)'):
        layer(torch.randn(16, 8))
    adapter = ConvLoRA()
    adapter.apply_to(build_tiny_sam().image_encoder)
    adapter.set_dispatch('dense')
    assert all(m.dispatch == 'dense' for m in adapter.layers)


def test_conv_lora_one_step_changes_only_intended_params(tiny_ckpt):
    torch.manual_seed(0)
    model = build_tiny_model(tiny_ckpt,
                             dict(type='ConvLoRA', dispatch='dense'))
    layers = model.backbone.adapters[0].layers
    randomize(layers)  # so that A and the experts get a gradient at once
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                           lr=1e-3)
    losses = model.loss(*fake_batch())
    torch.testing.assert_close(losses['loss_moe'],
                               sum(lyr.last_moe_loss for lyr in layers))
    loss, log = model.parse_losses(losses)
    assert 'loss_moe' in log
    loss.backward()
    opt.step()
    used = {(i, e)
            for i, lyr in enumerate(layers)
            for e in lyr.last_expert_ids.flatten().tolist()}
    for n, p in model.named_parameters():
        if n not in trainable:
            assert p.grad is None, n
            assert torch.equal(p, before[n]), n
            continue
        moved = not torch.equal(p, before[n])
        if '.experts.' in n:
            # Experts move iff some window/sample was routed to them.
            blk = int(n.split('blocks.')[1].split('.')[0])
            e = int(n.split('.experts.')[1].split('.')[0])
            assert moved == ((blk, e) in used), n
        else:
            assert moved, n


def test_activation_checkpointing_same_loss_and_grads(tiny_ckpt):
    grads = []
    for with_cp in (False, True):
        torch.manual_seed(0)  # same A and expert weights in both models
        model = build_tiny_model(
            tiny_ckpt,
            dict(type='ConvLoRA', dispatch='dense'),
            with_cp=with_cp)
        randomize(model.backbone.adapters[0].layers, gate_std=2.0)
        model.train()
        torch.manual_seed(5)
        losses = model.loss(*fake_batch())
        loss, _ = model.parse_losses(losses)
        loss.backward()
        grads.append((losses['loss_moe'].detach(), {
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        }))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    assert grads[0][1].keys() == grads[1][1].keys()
    for n in grads[0][1]:
        torch.testing.assert_close(grads[0][1][n], grads[1][1][n], msg=n)


@pytest.mark.parametrize('dispatch', ['grouped', 'dense'])
def test_conv_lora_bf16_autocast_forward_backward(tiny_ckpt, dispatch):
    model = build_tiny_model(tiny_ckpt,
                             dict(type='ConvLoRA', dispatch=dispatch))
    randomize(model.backbone.adapters[0].layers, gate_std=1.0)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(*fake_batch())
        loss, _ = model.parse_losses(losses)
    loss.backward()
    assert losses['loss_moe'].dtype == torch.float32
    grads = [
        p.grad for n, p in model.named_parameters()
        if p.requires_grad and 'encoder' in n and 'experts' not in n
    ]
    assert grads and all(
        g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = model.backbone(torch.randn(1, 3, SIZE, SIZE))[0]
    assert torch.isfinite(out.float()).all()


def test_deepcopy_and_pickle_after_backward(tiny_sam_file):
    """A trained Conv-LoRA model can be copied (mmengine's EMA hook does)
    after a forward/backward; the copy computes the same output."""
    import copy
    import pickle

    from helpers import build_tiny_model, fake_batch
    model = build_tiny_model(tiny_sam_file[0], adapter=dict(type='ConvLoRA'))
    model.train()
    inputs, samples = fake_batch(2)
    losses = model.loss(inputs, samples)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    clone = copy.deepcopy(model)
    restored = pickle.loads(pickle.dumps(model))
    model.eval(), clone.eval(), restored.eval()
    with torch.no_grad():
        ref = model.backbone(inputs)[0]
        torch.testing.assert_close(clone.backbone(inputs)[0], ref)
        torch.testing.assert_close(restored.backbone(inputs)[0], ref)


@pytest.mark.parametrize('size_in,size_out', [((7, 7), (56, 56)),
                                              ((56, 56), (7, 7)),
                                              ((14, 9), (70, 45)),
                                              ((70, 45), (14, 9)),
                                              ((5, 5), (5, 5))])
def test_bicubic_resize_equals_interpolate_with_gradients(size_in, size_out):
    from mmseg_convlora.models.adapters.conv_lora import bicubic_resize
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, *size_in, generator=g, requires_grad=True)
    grad = torch.randn(2, 3, *size_out, generator=g)
    got = bicubic_resize(z, size_out)
    want = F.interpolate(z, size_out, mode='bicubic', align_corners=False)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    (got_grad, ) = torch.autograd.grad(got, z, grad)
    (want_grad, ) = torch.autograd.grad(want, z, grad)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=1e-4)


@pytest.mark.parametrize('shape,scale', [((3, 3, 7, 7), 2), ((2, 3, 14, 9), 5),
                                         ((1, 2, 6, 6), 8)])
def test_upsampled_conv_equals_conv_of_upsampled_map(shape, scale):
    from mmseg_convlora.models.adapters.conv_lora import upsampled_conv3x3
    g = torch.Generator().manual_seed(0)
    z = torch.randn(*shape, generator=g, requires_grad=True)
    c = shape[1]
    weight = torch.randn(c + 1, c, 3, 3, generator=g, requires_grad=True)
    bias = torch.randn(c + 1, generator=g, requires_grad=True)
    got = upsampled_conv3x3(z, weight, bias, scale)
    up = F.interpolate(
        z, scale_factor=scale, mode='bicubic', align_corners=False)
    want = F.conv2d(up, weight, bias, padding=1)
    torch.testing.assert_close(got, want, rtol=0, atol=3e-5)
    grad = torch.randn(want.shape, generator=g)
    got_grads = torch.autograd.grad(got, (z, weight, bias), grad)
    want_grads = torch.autograd.grad(want, (z, weight, bias), grad)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
