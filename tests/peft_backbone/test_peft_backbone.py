"""PEFTBackbone: LoRA / Conv-LoRA on mmseg's ViT, SegFormer (MiT) and Swin.

At zero init the adapted backbone computes exactly what the backbone does
(with nn.MultiheadAttention swapped for LinearMultiheadAttention; the
original within float rounding), trainable counts follow the per-layer
formulas, gradients reach exactly the adapter parameters, pretrained
weights land at construction, and every way to train nothing is refused.
"""
import copy
import re

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from mmseg_convlora.models.adapters import ConvLoRALinear, LoRALinear
from mmseg_convlora.models.utils.peft_checkpoint import (peft_signature,
                                                         trainable_state_keys)
from mmseg_convlora.peft_backbone import replace_multihead_attention

VIT = dict(
    type='VisionTransformer',
    img_size=(32, 48),
    patch_size=8,
    embed_dims=16,
    num_layers=2,
    num_heads=2,
    mlp_ratio=2,
    out_indices=(0, 1),
    drop_path_rate=0.1)
MIT = dict(
    type='MixVisionTransformer',
    embed_dims=8,
    num_layers=[1] * 4,
    num_heads=[1, 1, 2, 2],
    patch_sizes=[7, 3, 3, 3],
    sr_ratios=[8, 4, 2, 1],
    mlp_ratio=2,
    drop_path_rate=0.1)
SWIN = dict(
    type='SwinTransformer',
    pretrain_img_size=32,
    embed_dims=8,
    patch_size=4,
    window_size=3,
    mlp_ratio=2,
    depths=(1, 1),
    num_heads=(1, 2),
    strides=(4, 2),
    out_indices=(0, 1),
    drop_path_rate=0.1)
# Every Linear layer of each backbone (attention after the replacement)
TARGETS = dict(
    vit=(VIT, r'layers\.\d+\.(attn\.attn\.(q|k|v|out)_proj|'
         r'ffn\.layers\.(0\.0|1))'),
    mit=(MIT, r'layers\.\d+\.1\.\d+\.attn\.attn\.(q|k|v|out)_proj'),
    swin=(SWIN, r'stages\.\d+\.(blocks\.\d+\.(attn\.w_msa\.(qkv|proj)|'
          r'ffn\.layers\.(0\.0|1))|downsample\.reduction)'))
R, M = 3, 8
CONV_LORA_EXTRA = 2 * R * M + M * (9 * R * R + R)  # gate, noise, experts
NORM_BIAS = r'.*(norm|ln)\d*\.bias'  # BitFit on the LayerNorm biases
X = torch.randn(2, 3, 40, 52)


def plain(backbone_cfg, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(backbone_cfg))
    model.init_weights()
    model.eval()
    return model


def peft(backbone_cfg, adapter, seed=0, **kwargs):
    torch.manual_seed(seed)
    return MODELS.build(
        dict(
            type='PEFTBackbone',
            backbone=copy.deepcopy(backbone_cfg),
            adapter=adapter,
            **kwargs))


def run(model, x=X):
    out = model(x)
    if hasattr(model, 'aux_losses'):
        model.aux_losses()
    return out


@pytest.mark.parametrize('kind', ['vit', 'mit', 'swin'])
@pytest.mark.parametrize('adapter', ['LoRA', 'ConvLoRA'])
def test_zero_init_equals_plain_backbone(kind, adapter):
    cfg, targets = TARGETS[kind]
    reference = plain(cfg)
    linear_attention = plain(cfg)
    replace_multihead_attention(linear_attention)
    model = peft(cfg, dict(type=adapter, targets=targets))
    for training in (True, False):  # train: Conv-LoRA's gate noise
        model.train(training)
        with torch.no_grad():
            outs = run(model)
            exact = linear_attention(X)
            close = reference(X)
        for out, a, b in zip(outs, exact, close):
            assert torch.equal(out, a)
            torch.testing.assert_close(out, b)


def test_trainable_counts_by_formula():
    # LoRA on q and v of the ViT: 2 layers x 2 x r (16 + 16)
    vit = peft(
        VIT,
        dict(
            type='LoRA',
            rank=4,
            targets=r'layers\.\d+\.attn\.attn\.(q|v)_proj'))
    assert sum(p.numel() for p in vit.parameters()
               if p.requires_grad) == 2 * 2 * 4 * (16 + 16)
    # Conv-LoRA on q, k, v, out of each MiT stage (C = 8, 8, 16, 16): per
    # Linear(C, C) r (C + C) plus the gate, noise and expert parameters
    mit = peft(MIT, dict(type='ConvLoRA', targets=TARGETS['mit'][1]))
    expected = sum(4 * (R * 2 * c + CONV_LORA_EXTRA) for c in (8, 8, 16, 16))
    assert sum(p.numel() for p in mit.parameters()
               if p.requires_grad) == expected
    # Swin: qkv (C -> 3C), proj, FFN C -> 2C -> C, merging 4C -> 2C
    swin = peft(SWIN, dict(type='LoRA', rank=2, targets=TARGETS['swin'][1]))
    layers = [(32, 16)] + [
        pair for c in (8, 16)
        for pair in [(c, 3 * c), (c, c), (c, 2 * c), (2 * c, c)]
    ]
    assert sum(p.numel() for p in swin.parameters() if p.requires_grad) == \
        sum(2 * (i + o) for i, o in layers)
    assert len([m for m in swin.modules() if isinstance(m, LoRALinear)]) == 9


@pytest.mark.parametrize('kind', ['vit', 'mit', 'swin'])
def test_gradients_reach_exactly_the_adapters(kind):
    cfg, targets = TARGETS[kind]
    model = peft(cfg, [
        dict(type='ConvLoRA', targets=targets, dispatch='dense'),
        dict(type='BitFit', targets=NORM_BIAS)
    ])
    model.train()
    layers = [m for m in model.modules() if isinstance(m, ConvLoRALinear)]
    with torch.no_grad():  # a trained-looking B: A gets gradient too
        for layer in layers:
            layer.lora_B.normal_()
    outs = model(X[:1])  # dense dispatch: one image
    loss = sum(o.square().mean() for o in outs)
    (loss + model.aux_losses()['loss_moe']).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable
    adapter_params = {'lora_A', 'lora_B', 'w_gate', 'w_noise'}
    for name in trainable:
        leaf = name.split('.')[-1]
        assert leaf in adapter_params or '.experts.' in name or \
            re.fullmatch(NORM_BIAS, name.split('.', 1)[1]), name
    assert len(trainable) > len(layers) * 4
    assert all(layer.lora_A.grad.abs().sum() > 0 for layer in layers)


def test_pretrained_weights_land_at_construction(tmp_path):
    source = plain(VIT, seed=1)
    path = str(tmp_path / 'vit.pth')
    torch.save(dict(state_dict=source.state_dict()), path)
    cfg = dict(VIT, init_cfg=dict(type='Pretrained', checkpoint=path))
    lora = dict(type='LoRA', targets=r'layers\.0\.ffn\.layers\.1')
    model = peft(cfg, lora)
    # model.pretrained of mmseg configs (EncoderDecoder passes it on)
    shorthand = peft(VIT, lora, pretrained=path)
    assert torch.equal(shorthand.backbone.layers[1].attn.attn.k_proj.weight,
                       source.layers[1].attn.attn.in_proj_weight[16:32])
    with pytest.raises(ValueError, match='keep one of them'):
        peft(cfg, lora, pretrained=path)
    in_proj = source.layers[1].attn.attn.in_proj_weight
    attn = model.backbone.layers[1].attn.attn
    assert torch.equal(attn.k_proj.weight, in_proj[16:32])
    model.eval()
    with torch.no_grad():
        for a, b in zip(model(X), source(X)):
            torch.testing.assert_close(a, b)

    # The runner's init_weights (through the parent) changes nothing.
    class Parent(BaseModule):

        def __init__(self, child):
            super().__init__()
            self.child = child

    before = {k: v.clone() for k, v in model.state_dict().items()}
    Parent(model).init_weights()
    assert all(
        torch.equal(before[k], v) for k, v in model.state_dict().items())
    # A checkpoint in mmseg's layout (fused in_proj) loads into it.
    missing, unexpected = model.backbone.load_state_dict(
        plain(VIT, seed=2).state_dict(), strict=False)
    assert not unexpected
    assert {k.rsplit('.', 1)[1] for k in missing} == {'lora_A', 'lora_B'}


def test_missing_pretrained_file_names_the_fix(tmp_path):
    cfg = dict(
        MIT,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'mit_b0.pth')))
    with pytest.raises(FileNotFoundError, match='mit_b0.pth.*init_cfg=None'):
        peft(cfg, dict(type='LoRA', targets=TARGETS['mit'][1]))


def test_refusals():
    with pytest.raises(
            ValueError, match="VPT works on the blocks of SAM's ViT"):
        peft(VIT, dict(type='VPT'))
    with pytest.raises(ValueError, match='at least one adapter'):
        peft(VIT, [])
    with pytest.raises(ValueError, match='model.backbone.backbone.init_cfg'):
        peft(VIT, dict(type='LoRA'), init_cfg=dict(type='Pretrained'))
    beit = dict(
        type='BEiT',
        img_size=32,
        patch_size=8,
        embed_dims=16,
        num_layers=1,
        num_heads=2,
        mlp_ratio=2,
        out_indices=(0, ))
    with pytest.raises(ValueError, match='not for BEiT.*Use LoRA'):
        peft(beit, dict(type='ConvLoRA', targets=r'layers\.0\.attn\.qkv'))
    assert peft(beit, dict(type='LoRA', targets=r'layers\.0\.attn\.qkv'))


class UsesWeightDirectly(BaseModule):
    """A backbone whose Linear layer's forward is never called."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)

    def forward(self, x):
        return (nn.functional.conv2d(x, self.proj.weight[..., None, None]), )


def test_adapters_whose_layer_is_never_called_are_refused():
    MODELS.register_module(
        name='_UsesWeightDirectly', module=UsesWeightDirectly, force=True)
    model = peft(
        dict(type='_UsesWeightDirectly'), dict(type='LoRA', targets='proj'))
    with pytest.raises(RuntimeError, match=r"\['proj'\] were not called"):
        model(X)


def test_uncollected_moe_loss_is_refused():
    model = peft(MIT, dict(type='ConvLoRA', targets=TARGETS['mit'][1]))
    model.train()
    model(X)
    assert set(model.aux_losses()) == {'loss_moe'}
    model(X)
    with pytest.raises(RuntimeError, match='never collected.*SAMSegmentor'):
        model(X)  # under mmseg's EncoderDecoder loss_moe would be lost
    model.eval()
    model(X)  # inference has nothing to collect


def test_checkpoint_keys_and_signature():
    model = MODELS.build(
        dict(
            type='SAMSegmentor',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(
                type='PEFTBackbone',
                backbone=copy.deepcopy(MIT),
                adapter=dict(type='LoRA', targets=TARGETS['mit'][1])),
            decode_head=dict(
                type='SegformerHead',
                in_channels=[8, 8, 16, 16],
                in_index=[0, 1, 2, 3],
                channels=8,
                num_classes=3)))
    keys = trainable_state_keys(model)
    assert {
        k
        for k in keys if k.startswith('backbone.')
    } == {
        f'backbone.backbone.layers.{s}.1.0.attn.attn.{p}_proj.lora_{ab}'
        for s in range(4)
        for p in 'qkv'
        for ab in 'AB'
    } | {
        f'backbone.backbone.layers.{s}.1.0.attn.attn.out_proj.lora_{ab}'
        for s in range(4)
        for ab in 'AB'
    }
    assert all(k.startswith(('backbone.', 'decode_head.')) for k in keys)
    sig = peft_signature(model)
    assert sig['arch'] == 'MixVisionTransformer'
    assert sig['adapters'] == ['LoRA']


def test_deepcopy_and_pickle_keep_the_token_grids():
    import pickle
    model = peft(SWIN, dict(type='ConvLoRA', targets=TARGETS['swin'][1]))
    model.train()
    (sum(o.sum() for o in run(model)) +
     model.aux_losses().get('loss_moe', 0)).backward()
    model.eval()
    clones = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
    other_size = torch.randn(1, 3, 28, 44)  # other grids: hooks must move
    with torch.no_grad():
        expected = model(other_size)
        for clone in clones:
            for a, b in zip(clone(other_size), expected):
                assert torch.equal(a, b)
