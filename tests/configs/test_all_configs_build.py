"""Every config under configs/ builds its model, datasets and evaluator.

A config that is added and cannot be built fails here. Models are built on
the meta device (shapes only), datasets on a tiny fake copy of the layout
the config reads.
"""
import glob
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmseg.registry import DATASETS, METRICS, MODELS
from mmseg_convlora.testing import REPO

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                         recursive=True)
    if f'{os.sep}_base_{os.sep}' not in p)


def config_id(path):
    return osp.relpath(path, osp.join(REPO, 'configs'))


def fake_layout(dataset_cfg, root):
    """Write one image and mask where the dataset config looks."""
    prefix = dataset_cfg.get('data_prefix') or {}
    if dataset_cfg['type'] == 'Trans10KDataset' and not prefix:
        mask_dir = 'masks' if dataset_cfg['version'] == 'v1' else 'masks_12'
        prefix = dict(img_path=osp.join(dataset_cfg['split'], 'images'),
                      seg_map_path=osp.join(dataset_cfg['split'], mask_dir))
        dataset_cfg.setdefault('seg_map_suffix', '_mask.png')
    img_dir = osp.join(root, prefix.get('img_path', ''))
    seg_dir = osp.join(root, prefix.get('seg_map_path', ''))
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(seg_dir, exist_ok=True)
    img_suffix = dataset_cfg.get('img_suffix', '.jpg')
    if not isinstance(img_suffix, str):
        img_suffix = img_suffix[0]
    seg_suffix = dataset_cfg.get('seg_map_suffix', '.png')
    cv2.imwrite(osp.join(img_dir, 'a' + img_suffix),
                np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(osp.join(seg_dir, 'a' + seg_suffix),
                np.zeros((8, 8), np.uint8))


def dataset_cfgs(cfg):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader]['dataset']
        if ds.get('type') == 'ConcatDataset':
            yield from ds['datasets']
        else:
            yield ds


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds(path, tmp_path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model.copy()
    model_cfg['sam_checkpoint'] = None
    for part in ('backbone', 'decode_head'):
        model_cfg[part] = dict(model_cfg[part], checkpoint=None)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    assert model.parameter_counts()['trainable'] > 0
    for i, ds in enumerate(dataset_cfgs(cfg)):
        ds = ds.copy()
        ds['data_root'] = str(tmp_path / f'data{i}')
        fake_layout(ds, ds['data_root'])
        dataset = DATASETS.build(ds)
        assert len(dataset) >= 1
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
        for ev in evaluators:
            METRICS.build(ev)
