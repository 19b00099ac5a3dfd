"""The Conv-LoRA paper's other PEFT baselines (BitFit, Adapter, VPT, SSF,
SAM-Adapter) and their composition with Conv-LoRA: ViT-H parameter counts
against the paper's Table 1 / Table 12 (meta device), start state,
gradients reaching exactly the adapter (plus the decoder), VPT's windowed
attention against an explicit token-concatenation reference, and adapters
composing in either order."""
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from segment_anything.modeling.image_encoder import (add_decomposed_rel_pos,
                                                     window_partition,
                                                     window_unpartition)

import mmseg_convlora  # noqa: F401
from mmseg_convlora.engine.hooks.trainable_checkpoint_hook import \
    trainable_state_keys
from mmseg_convlora.models.adapters import (ConvLoRALinear, PromptedAttention,
                                            token_linear)
from helpers import REPO
from helpers import build_meta_segmentor as build_meta
from helpers import build_tiny_model, fake_batch

SIZE = 128
DECODER_ONLY = 3_505_536  # SAM decoder, binary head

# Table 1 of the Conv-LoRA paper (ViT-H, binary head, decoder included)
PAPER = {
    'bitfit': ('BitFit', 3.96e6, 3_957_888),
    'adapter': ('HoulsbyAdapter', 3.92e6, 3_915_264),
    'vpt': ('VPT', 4.00e6, 3_997_056),
    'ssf': ('SSF', 4.42e6, 4_409_216),
    'sam_adapter': ('SAMAdapter', 3.98e6, 3_980_576),
    'convlora_vpt': ('ConvLoRA+VPT', 4.23e6, 4_224_896),  # Table 12
}


@pytest.fixture(scope='module')
def ckpt(tiny_sam_file):
    return tiny_sam_file[0]


def build(ckpt, adapter=None, with_cp=False, seed=0):
    torch.manual_seed(seed)
    return build_tiny_model(ckpt, adapter, with_cp)


def embedding(model, x):
    model.eval()
    with torch.no_grad():
        return model.backbone(x)[0]


def total_loss(model, x, samples):
    losses = model.loss(x, samples)
    return sum(v for k, v in losses.items() if 'loss' in k), losses


# ---------------------------------------------------------------------- #
@pytest.mark.parametrize('method', sorted(PAPER))
def test_vit_h_trainable_count_matches_paper(method):
    """The shipped configs, built on the meta device with SAM ViT-H."""
    _, paper, exact = PAPER[method]
    cfg = Config.fromfile(f'{REPO}/configs/{method}/sbu.py')
    adapter = cfg.model.backbone.adapter
    adapter = [a.to_dict() for a in adapter] if isinstance(
        adapter, list) else adapter.to_dict()
    model = build_meta('vit_h', adapter)
    counts = model.parameter_counts()
    assert counts['trainable'] == exact
    assert abs(counts['trainable'] / paper - 1) < 0.01
    # adapters add trainable parameters only; nothing frozen is duplicated
    plain = build_meta('vit_h').parameter_counts()
    assert counts['total'] - plain['total'] == \
        counts['trainable'] - DECODER_ONLY - (
            452_352 if method == 'bitfit' else 0)
    for other in ('polyp', 'camouflage'):
        other_cfg = Config.fromfile(f'{REPO}/configs/{method}/{other}.py')
        assert other_cfg.model.backbone.adapter == cfg.model.backbone.adapter


# ---------------------------------------------------------------------- #
START_AS_SAM = [
    dict(type='BitFit'),
    dict(type='HoulsbyAdapter', hidden_dim=3),
    dict(type='SSF', init_std=0.0),
    dict(type='SAMAdapter', scale_factor=4, zero_init=True),
]
NOT_SAM = [
    dict(type='SSF'),  # SSF's own init, N(1, .02) / N(0, .02)
    dict(type='VPT', num_tokens=3),  # prompts attend from the start
    dict(type='SAMAdapter', scale_factor=4),  # EVP init: non-zero prompts
]


@pytest.mark.parametrize('adapter', START_AS_SAM, ids=lambda a: a['type'])
def test_starts_as_pretrained_sam(ckpt, adapter):
    x, _ = fake_batch()
    ref = embedding(build(ckpt), x)
    assert torch.equal(embedding(build(ckpt, adapter), x), ref)


@pytest.mark.parametrize('adapter', NOT_SAM, ids=lambda a: str(a))
def test_documented_start_state_differs_from_sam(ckpt, adapter):
    x, _ = fake_batch()
    ref = embedding(build(ckpt), x)
    out = embedding(build(ckpt, adapter), x)
    assert not torch.allclose(out, ref, atol=1e-4)
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------------- #
OWN = {
    'BitFit':
    lambda n: n.startswith('backbone.encoder.') and n.endswith('.bias'),
    'HoulsbyAdapter':
    lambda n: n.startswith('backbone.adapters.0.'),
    'SSF':
    lambda n: n.startswith('backbone.adapters.0.'),
    'SAMAdapter':
    lambda n: n.startswith('backbone.adapters.0.'),
    'VPT':
    lambda n: re.fullmatch(r'backbone\.encoder\.blocks\.\d+\.attn\.'
                           r'prompt', n) is not None,
}
GRAD_CFGS = [
    dict(type='BitFit'),
    dict(type='HoulsbyAdapter', hidden_dim=3),
    dict(type='SSF'),
    dict(type='SAMAdapter', scale_factor=4),
    dict(type='VPT', num_tokens=3),
]


@pytest.mark.parametrize('adapter', GRAD_CFGS, ids=lambda a: a['type'])
def test_gradients_reach_exactly_adapter_and_decoder(ckpt, adapter):
    decoder = {n for n, p in build(ckpt).named_parameters() if p.requires_grad}
    assert all(n.startswith('decode_head.') for n in decoder)
    model = build(ckpt, adapter)
    model.train()
    own = OWN[adapter['type']]
    names = dict(model.named_parameters())
    trainable = {n for n, p in names.items() if p.requires_grad}
    adapter_names = {n for n in names if own(n)}
    assert adapter_names and trainable == decoder | adapter_names
    x, samples = fake_batch()
    loss, _ = total_loss(model, x, samples)
    loss.backward()
    with_grad = {n for n, p in names.items() if p.grad is not None}
    assert with_grad == trainable
    if adapter['type'] == 'HoulsbyAdapter':
        # zero up-projections: at step 0 only they get a non-zero gradient
        moving = {n for n in adapter_names if names[n].grad.abs().sum() > 0}
        assert moving == {n for n in adapter_names if '.up.' in n}
    else:
        assert all(names[n].grad.abs().sum() > 0 for n in adapter_names)
    # trainable-only checkpoints keep exactly these (plus nothing frozen)
    keys = trainable_state_keys(model)
    assert trainable <= keys
    assert not any(
        k.startswith('backbone.encoder.') and k.endswith(('qkv.weight',
                                                          'lin1.weight'))
        for k in keys)
    # the frozen weights stay frozen after an optimizer step
    frozen = {
        n: p.detach().clone()
        for n, p in names.items() if not p.requires_grad
    }
    torch.optim.SGD([names[n] for n in trainable], lr=0.1).step()
    assert all(torch.equal(names[n], v) for n, v in frozen.items())


def test_bitfit_trains_every_vit_bias(ckpt):
    model = build(ckpt, dict(type='BitFit'))
    enc = model.backbone.encoder
    biases = {n for n, _ in enc.named_parameters() if n.endswith('bias')}
    assert set(model.backbone.adapters[0].parameter_names) == biases
    C, depth = 32, 2
    assert sum(p.numel() for n, p in enc.named_parameters()
               if p.requires_grad) == depth * 11 * C + C + 2 * 32


# ---------------------------------------------------------------------- #
def naive_prompted_block(block, prompt, x):
    """Deep VPT written out: per attention window, the prompt tokens are
    concatenated to the token sequence, attention runs over all of them
    (SAM's relative position bias between image tokens only) and the
    prompts' outputs are dropped. A Python loop over windows."""
    attn = block.attn
    heads = attn.num_heads
    shortcut = x
    xn = block.norm1(x)
    H, W = x.shape[1:3]
    if block.window_size > 0:
        xn, pad_hw = window_partition(xn, block.window_size)
    outs = []
    p = block.norm1(prompt)
    n = p.shape[0]
    for win in xn:
        h, w, C = win.shape
        L = h * w
        seq = torch.cat([win.reshape(L, C), p])  # (L + n, C)
        qkv = F.linear(seq, attn.qkv.weight, attn.qkv.bias)
        q, k, v = qkv.reshape(L + n, 3, heads, -1).permute(1, 2, 0, 3)
        logits = (q * attn.scale) @ k.transpose(-2, -1)  # (heads, L+n, L+n)
        img = add_decomposed_rel_pos(logits[:, :L, :L].contiguous(), q[:, :L],
                                     attn.rel_pos_h, attn.rel_pos_w, (h, w),
                                     (h, w))
        logits = torch.cat(
            [torch.cat([img, logits[:, :L, L:]], dim=-1), logits[:, L:]],
            dim=1)
        out = (logits.softmax(-1) @ v)[:, :L]  # drop the prompts' outputs
        out = out.permute(1, 0, 2).reshape(h, w, C)
        outs.append(F.linear(out, attn.proj.weight, attn.proj.bias))
    y = torch.stack(outs)
    if block.window_size > 0:
        y = window_unpartition(y, block.window_size, pad_hw, (H, W))
    y = shortcut + y
    return y + block.mlp(block.norm2(y))


@pytest.mark.parametrize('grid', [8, 6])  # 6: windows need zero padding
def test_vpt_equals_explicit_prompt_tokens(ckpt, grid):
    model = build(ckpt, dict(type='VPT', num_tokens=4))
    enc = model.backbone.encoder
    assert enc.blocks[0].window_size > 0 and enc.blocks[1].window_size == 0
    x = torch.randn(
        2, grid, grid, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for block in enc.blocks:  # one windowed, one global block
            assert isinstance(block.attn, PromptedAttention)
            ref = naive_prompted_block(block, block.attn.prompt, x)
            assert torch.allclose(block(x), ref, atol=1e-5)


def test_vpt_keeps_sam_keys_and_refuses_twice(ckpt):
    plain = build(ckpt)
    model = build(ckpt, dict(type='VPT', num_tokens=2))
    keys = set(model.state_dict())
    assert set(plain.state_dict()) <= keys
    assert keys - set(plain.state_dict()) == {
        'backbone.encoder.blocks.0.attn.prompt',
        'backbone.encoder.blocks.1.attn.prompt'
    }
    with pytest.raises(ValueError, match='already has prompts'):
        build(ckpt, [dict(type='VPT'), dict(type='VPT')])


def test_token_linear_on_conv_lora_skips_experts_and_routing():
    lin = torch.nn.Linear(8, 24)
    layer = ConvLoRALinear(lin, rank=3, num_experts=4)
    torch.nn.init.normal_(layer.lora_B)
    layer.eval()
    layer(torch.randn(2, 4, 4, 8))
    ids = layer.last_expert_ids.clone()
    p = torch.randn(5, 8)
    out = token_linear(layer, p)
    expected = lin(p) + layer.scaling * (p @ layer.lora_A.t()) @ \
        layer.lora_B.t()
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(layer.last_expert_ids, ids)
    # a hook on the layer (a hook-based adapter on qkv) acts on the prompts
    # too: the layer is called as a module, in its plain low-rank mode
    seen = []
    layer.register_forward_hook(
        lambda mod, args, out: seen.append(mod._plain) or out * 2)
    torch.testing.assert_close(token_linear(layer, p), 2 * out)
    assert seen == [True] and not layer._plain


# ---------------------------------------------------------------------- #
def _copy_params(src, dst):
    """Copy parameters by name, mapping adapter indices by adapter type."""
    src_types = [type(a).__name__ for a in src.backbone.adapters]
    dst_types = [type(a).__name__ for a in dst.backbone.adapters]
    dst_params = dict(dst.named_parameters())
    with torch.no_grad():
        for name, p in src.named_parameters():
            m = re.match(r'backbone\.adapters\.(\d+)\.(.*)', name)
            if m:
                i = dst_types.index(src_types[int(m.group(1))])
                name = f'backbone.adapters.{i}.{m.group(2)}'
            dst_params[name].copy_(p)


def _randomize(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and not name.startswith('decode_head'):
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize(
    'pair', [
        [dict(type='SSF', init_std=0.0),
         dict(type='ConvLoRA')],
        [
            dict(type='HoulsbyAdapter', hidden_dim=2),
            dict(type='VPT', num_tokens=2)
        ],
        [dict(type='SAMAdapter', scale_factor=4),
         dict(type='LoRA')],
        [dict(type='BitFit'), dict(type='LoRA')],
    ],
    ids=lambda p: '+'.join(a['type'] for a in p))
def test_adapters_compose_in_either_order(ckpt, pair):
    """A hook-based adapter listed before one that replaces the module it
    hooks (LoRA/Conv-LoRA replace qkv, VPT replaces attn) still acts on it:
    both orders compute the same function."""
    a = build(ckpt, pair)
    b = build(ckpt, pair[::-1])
    _randomize(a)
    _copy_params(a, b)
    x, _ = fake_batch()
    out_a, out_b = embedding(a, x), embedding(b, x)
    assert torch.allclose(out_a, out_b, atol=1e-5)
    assert not torch.allclose(out_a, embedding(build(ckpt), x), atol=1e-3)
    for model in (a, b):
        for adp in model.backbone.adapters:
            for name, mod in getattr(adp, 'hooked_modules', dict)().items():
                assert mod is model.backbone.encoder.get_submodule(name)


# ---------------------------------------------------------------------- #
CONV_LORA_VPT = [
    dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8),
    dict(type='VPT', num_tokens=5)
]


def test_conv_lora_plus_vpt_builds_and_trains(ckpt):
    model = build(ckpt, CONV_LORA_VPT)
    enc = model.backbone.encoder
    for block in enc.blocks:
        assert isinstance(block.attn, PromptedAttention)
        assert isinstance(block.attn.qkv, ConvLoRALinear)
    # the same modules and keys whichever order the config lists them in
    other = build(ckpt, CONV_LORA_VPT[::-1])
    assert set(model.state_dict()) == set(other.state_dict())
    single = [
        build(ckpt, a).parameter_counts()['trainable'] for a in CONV_LORA_VPT
    ]
    assert model.parameter_counts()['trainable'] == \
        sum(single) - DECODER_ONLY_TINY(ckpt)
    model.train()
    names = dict(model.named_parameters())
    start = {n: p.detach().clone() for n, p in names.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=1e-2)
    x, samples = fake_batch(2)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss, parts = total_loss(model, x, samples)
        assert 'loss_moe' in parts
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for n, p in names.items():
        changed = not torch.equal(p, start[n])
        if not p.requires_grad:
            assert not changed, n
        elif n.endswith(('.prompt', '.lora_B', '.lora_A')):
            assert changed, n
    routing = model.backbone.adapters[0].last_routing()
    assert set(routing) == {'blocks.0.attn.qkv', 'blocks.1.attn.qkv'}
    # windowed block 0: 4 windows x 2 images routed on their own
    assert routing['blocks.0.attn.qkv']['expert_ids'].shape == (8, 1)
    assert routing['blocks.1.attn.qkv']['expert_ids'].shape == (2, 1)


def DECODER_ONLY_TINY(ckpt):
    return build(ckpt).parameter_counts()['trainable']


def test_sam_adapter_with_activation_checkpointing(ckpt):
    """The block pre-hooks run again when with_cp recomputes the blocks."""
    grads = []
    for with_cp in (False, True):
        model = build(
            ckpt, dict(type='SAMAdapter', scale_factor=4), with_cp=with_cp)
        model.train()
        x, samples = fake_batch()
        loss, _ = total_loss(model, x, samples)
        loss.backward()
        grads.append({
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        })
    assert set(grads[0]) == set(grads[1])
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-6), n


def test_module_replacing_adapters_are_applied_first(ckpt):
    """With the hook-based adapter listed first, its hooks sit on the
    modules that replaced the originals before any forward pass, and the
    encoder's forward re-attaches nothing after the first one."""
    model = build(ckpt, [
        dict(type='SSF', init_std=0.0),
        dict(type='HoulsbyAdapter', hidden_dim=2),
        dict(type='LoRA'),
        dict(type='VPT', num_tokens=2)
    ])
    encoder = model.backbone.encoder
    for adp in model.backbone.adapters[:2]:
        hooked = adp.hooked_modules()
        assert hooked
        for name, mod in hooked.items():
            assert mod is encoder.get_submodule(name)
    # config order: checkpoint keys
    assert [type(a).__name__ for a in model.backbone.adapters] == \
        ['SSF', 'HoulsbyAdapter', 'LoRA', 'VPT']
    patch_embed_hooks = len(encoder.patch_embed._forward_pre_hooks)
    x, _ = fake_batch(1)
    embedding(model, x)
    assert len(encoder.patch_embed._forward_pre_hooks) < patch_embed_hooks
    embedding(model, x)
    assert len(encoder.patch_embed._forward_pre_hooks) < patch_embed_hooks
