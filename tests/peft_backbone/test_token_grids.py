"""Token grids read from mmseg's ViT, SegFormer (MiT) and Swin while they
run, against grids worked out by hand from the conv arithmetic."""
import re

import pytest
import torch
import torch.nn as nn
from mmseg.registry import MODELS

from mmseg_convlora.peft_backbone import (attach_token_grids,
                                          replace_multihead_attention)

# Inputs are 40 x 52 (not square, not a multiple of every stride).
VIT = dict(
    type='VisionTransformer',
    img_size=(40, 52),
    patch_size=8,
    embed_dims=16,
    num_layers=2,
    num_heads=2,
    mlp_ratio=2,
    out_indices=(1, ))
MIT = dict(
    type='MixVisionTransformer',
    embed_dims=8,
    num_layers=[1] * 4,
    num_heads=[1, 1, 2, 2],
    patch_sizes=[7, 3, 3, 3],
    sr_ratios=[8, 4, 2, 1],
    mlp_ratio=2)
SWIN = dict(
    type='SwinTransformer',
    pretrain_img_size=40,
    embed_dims=8,
    patch_size=4,
    window_size=3,
    mlp_ratio=2,
    depths=(1, 1),
    num_heads=(1, 2),
    strides=(4, 2),
    out_indices=(0, 1))


class Recorder:
    """Stands in for a Conv-LoRA layer: keeps the grid it is told."""

    def __init__(self):
        self.grid = None

    def set_token_grid(self, grid, num_prefix_tokens=0):
        self.grid = (tuple(grid), num_prefix_tokens)


def linear_names(backbone):
    return [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear)]


def grids_and_token_counts(cfg, names=None):
    """Grids told to every Linear layer, and the token count each sees."""
    backbone = MODELS.build(cfg)
    backbone.eval()  # mmseg's ViT and Swin train() return None
    replace_multihead_attention(backbone)
    names = names or linear_names(backbone)
    recorders = {n: Recorder() for n in names}
    attach_token_grids(backbone, recorders)
    tokens = {}
    for n in names:
        backbone.get_submodule(n).register_forward_hook(
            lambda m, i, o, n=n: tokens.__setitem__(n, i[0].shape[1]))
    with torch.no_grad():
        backbone(torch.randn(2, 3, 40, 52))
    return {n: r.grid for n, r in recorders.items()}, tokens


@pytest.mark.parametrize('with_cls_token', [True, False])
def test_vit_patch_grid_after_class_token(with_cls_token):
    grids, tokens = grids_and_token_counts(
        dict(VIT, with_cls_token=with_cls_token))
    # patch 8, corner padding: ceil(40 / 8) = 5, ceil(52 / 8) = 7
    prefix = int(with_cls_token)
    assert len(grids) == 12  # q, k, v, out, 2 FFN Linear x 2 layers
    assert set(grids.values()) == {((5, 7), prefix)}
    assert set(tokens.values()) == {prefix + 35}


def test_mit_query_and_reduced_key_grids():
    grids, tokens = grids_and_token_counts(MIT)
    # stage 1: conv 7/4 pad 3: (40 + 6 - 7) // 4 + 1 = 10,
    # (52 + 6 - 7) // 4 + 1 = 13; keys after sr conv 8/8: 1 x 1
    # stage 2: conv 3/2 pad 1 -> 5 x 7; sr 4: 1 x 1
    # stage 3: -> 3 x 4; sr 2: 1 x 2;  stage 4: -> 2 x 2; sr 1: same
    expected = {
        0: ((10, 13), (1, 1)),
        1: ((5, 7), (1, 1)),
        2: ((3, 4), (1, 2)),
        3: ((2, 2), (2, 2))
    }
    for stage, (query, keys) in expected.items():
        prefix = f'layers.{stage}.1.0.attn.attn.'
        assert grids[prefix + 'q_proj'] == (query, 0)
        assert grids[prefix + 'out_proj'] == (query, 0)
        assert grids[prefix + 'k_proj'] == (keys, 0)
        assert grids[prefix + 'v_proj'] == (keys, 0)
    for name, (grid, _) in grids.items():
        assert tokens[name] == grid[0] * grid[1], name


def test_swin_window_block_and_merged_grids():
    grids, tokens = grids_and_token_counts(SWIN)
    # patch 4: 10 x 13; window 3; merging 2/2 with corner padding: 5 x 7
    assert grids['stages.0.blocks.0.attn.w_msa.qkv'] == ((3, 3), 0)
    assert grids['stages.1.blocks.0.attn.w_msa.proj'] == ((3, 3), 0)
    assert grids['stages.0.blocks.0.ffn.layers.0.0'] == ((10, 13), 0)
    assert grids['stages.0.downsample.reduction'] == ((5, 7), 0)
    assert grids['stages.1.blocks.0.ffn.layers.1'] == ((5, 7), 0)
    for name, (grid, _) in grids.items():
        assert tokens[name] == grid[0] * grid[1], name


def test_unknown_layers_and_backbones_are_refused():
    vit = MODELS.build(VIT)
    with pytest.raises(ValueError, match=re.escape("['cls_head']")):
        attach_token_grids(vit, {
            'layers.0.ffn.layers.1': Recorder(),
            'cls_head': Recorder()
        })
    net = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match='not for Sequential.*Use LoRA'):
        attach_token_grids(net, {'0': Recorder()})
    assert attach_token_grids(net, {}) == []
