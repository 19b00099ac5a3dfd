"""Trainable parameters of the mmseg composition configs, by formula.

Conv-LoRA (r = 3, M = 8 experts) on a Linear(C_in, C_out) trains
r (C_in + C_out) + 2 r M (gate, noise) + M (9 r^2 + r) (3x3 expert convs)
= r (C_in + C_out) + 720; LoRA trains r (C_in + C_out). Everything else
trainable is the neck's and the heads' (mmseg's, all trainable) or the
multi-class SAM decoder's (3,505,536 + 256 (N - 1) + 257 (K + 1)).
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from helpers import REPO

R, CONV_LORA_EXTRA = 3, 2 * 3 * 8 + 8 * (9 * 3 * 3 + 3)


def sam_decoder(num_queries, num_classes):
    return 3_505_536 + 256 * (num_queries - 1) + 257 * (num_classes + 1)


def build(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name)).model
    cfg.sam_checkpoint = None
    if cfg.backbone.type == 'PEFTBackbone':
        cfg.backbone.backbone.init_cfg = None
        return MODELS.build(cfg)  # mmseg's backbones cannot be meta-built
    with torch.device('meta'):
        return MODELS.build(cfg)


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def total(module):
    return sum(p.numel() for p in module.parameters())


def heads_and_neck(model):
    parts = [model.decode_head]
    for name in ('neck', 'auxiliary_head'):
        if getattr(model, name, None) is not None:
            parts.append(getattr(model, name))
    return sum(total(p) for p in parts)


@pytest.mark.parametrize('name,backbone', [
    ('sam_upernet/convlora_sam-vit-b_upernet_ade20k-512x512.py', 12 *
     (R * (768 + 3 * 768) + CONV_LORA_EXTRA)),
    ('peft_backbones/convlora_segformer-mit-b0_ade20k-512x512.py',
     sum(2 * 3 * (R * 2 * c + CONV_LORA_EXTRA) for c in (32, 64, 160, 256))),
    ('peft_backbones/lora_vit-b16_upernet_ade20k-512x512.py', 12 * 2 * R *
     (768 + 768)),
])
def test_mmseg_heads_on_adapted_backbones(name, backbone):
    model = build(name)
    assert trainable(model.backbone) == backbone
    assert model.parameter_counts()['trainable'] == \
        backbone + heads_and_neck(model)


@pytest.mark.parametrize('name,num_classes', [
    ('sam_multiclass/convlora_sam-vit-b_ade20k-512x512.py', 150),
    ('sam_multiclass/convlora_sam-vit-b_voc12-512x512.py', 21),
    ('sam_multiclass/convlora_sam-vit-b_cityscapes-1024x1024.py', 19),
])
def test_multiclass_sam_head(name, num_classes):
    model = build(name)
    backbone = 12 * (R * (768 + 3 * 768) + CONV_LORA_EXTRA)
    assert model.parameter_counts()['trainable'] == \
        backbone + sam_decoder(100, num_classes)
