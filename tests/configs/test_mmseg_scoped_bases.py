"""Configs with ``mmseg::`` (and ``mmpretrain::``) package-scoped bases load
and build with this plugin's parts, as in mmseg's own projects."""
import importlib.util
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS

from helpers import REPO


def write_config(tmp_path, text):
    path = tmp_path / 'user_config.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def fake_ade(root):
    """One ADE20K-style image and annotation under ``root``."""
    for folder, name, array in (('images/validation', 'a.jpg',
                                 np.zeros((16, 16, 3), np.uint8)),
                                ('annotations/validation', 'a.png',
                                 np.full((16, 16), 3, np.uint8))):
        path = osp.join(root, folder, name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        assert cv2.imwrite(path, array)


def test_mmseg_scope_resolves():
    """``mmseg::`` needs ``pkg_resources`` (mmengine 0.10), which setuptools
    81 dropped; requirements.txt pins setuptools below 81."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', 'ade20k.py'))
    assert cfg.dataset_type == 'ADE20KDataset'
    with open(osp.join(REPO, 'requirements.txt')) as f:
        assert 'setuptools<81' in f.read().split()


def test_user_config_with_mmseg_bases_and_our_model(tmp_path):
    """mmseg's dataset and schedule bases with our SAM model base."""
    models = osp.join(REPO, 'configs', '_base_', 'models')
    cfg = write_config(
        tmp_path, f"""
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_20k.py',
    '{models}/sam_vit-b_multiclass.py',
]
custom_imports = dict(imports=['mmseg_convlora'], allow_failed_imports=False)
model = dict(
    sam_checkpoint=None,
    data_preprocessor=dict(size=(512, 512)),
    backbone=dict(img_size=512, adapter=dict(type='LoRA', rank=2)),
    decode_head=dict(num_classes=150, out_channels=150, img_size=512,
                     loss_decode=dict(num_classes=150)))
""")
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'SAMSegmentor'
    assert model.parameter_counts()['trainable'] > 0
    fake_ade(str(tmp_path / 'ade'))
    dataset = DATASETS.build(
        dict(cfg.val_dataloader.dataset, data_root=str(tmp_path / 'ade')))
    sample = dataset[0]
    assert sample['data_samples'].gt_sem_seg.data.unique().tolist() == [2]


def test_mmseg_model_config_with_our_adapter(tmp_path):
    """A whole mmseg model config (``mmseg::``) with LoRA on its backbone."""
    cfg = write_config(
        tmp_path, """
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmseg_convlora'], allow_failed_imports=False)
""")
    cfg.model.backbone = dict(
        type='PEFTBackbone',
        backbone=dict(cfg.model.backbone, init_cfg=None),
        adapter=dict(type='LoRA', rank=2, targets=r'.*attn\.attn\.q_proj'))
    model = MODELS.build(cfg.model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any('lora' in n for n in trainable)
    assert all(not n.startswith('backbone.') or 'lora' in n for n in trainable)


@pytest.mark.skipif(
    importlib.util.find_spec('mmpretrain') is None,
    reason='mmpretrain is not installed (not a requirement)')
def test_user_config_with_mmpretrain_base(tmp_path):
    cfg = write_config(
        tmp_path, """
_base_ = ['mmpretrain::_base_/models/resnet18.py']
custom_imports = dict(imports=['mmseg_convlora'], allow_failed_imports=False)
""")
    assert cfg.model.backbone.type == 'ResNet'
