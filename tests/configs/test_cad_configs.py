"""The CAD configs feed CAD the original image resized straight to its input
size, and the CAD-paper configs train with the reference's loss."""
import ast
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from helpers import REPO

CAD_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'cad', '*.py')))


def parent_of(path):
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == '_base_':
            return osp.normpath(
                osp.join(osp.dirname(path),
                         ast.literal_eval(node.value)[0]))
    raise AssertionError(f'{path} has no _base_')


def with_cad_steps(pipeline, size):
    """The parent's pipeline as the CAD configs must change it."""
    out = [dict(t) for t in pipeline]
    out.insert(2, dict(type='ResizeCADImage', size=size))
    return [
        dict(type='PackCADInputs') if t['type'] == 'PackSegInputs' else t
        for t in out
    ]


def loaders(cfg):
    tests = cfg.test_dataloader
    return [cfg.train_dataloader, cfg.val_dataloader, tests] + list(
        tests.get('extra_sets', []))


@pytest.mark.parametrize(
    'path', CAD_CONFIGS, ids=[osp.basename(p) for p in CAD_CONFIGS])
def test_cad_configs_keep_the_original_image_for_cad(path):
    cfg = Config.fromfile(path)
    size = cfg.model.backbone.adapter.input_size
    for loader in loaders(cfg):
        steps = [t['type'] for t in loader.dataset.pipeline]
        assert steps[:2] == ['LoadImageFromFile', 'CheckImage']
        assert loader.dataset.pipeline[2] == dict(
            type='ResizeCADImage', size=size)
        assert 'PackCADInputs' in steps and 'PackSegInputs' not in steps
    if path.endswith('_cached.py'):
        return
    parent = Config.fromfile(parent_of(path))
    # nothing else changes: the parent's pipelines with the two CAD steps
    assert cfg.train_pipeline == with_cad_steps(parent.train_pipeline, size)
    assert cfg.test_pipeline == with_cad_steps(parent.test_pipeline, size)
    for ours, theirs in zip(loaders(cfg), loaders(parent)):
        assert ours.dataset.pipeline == with_cad_steps(theirs.dataset.pipeline,
                                                       size)
        other = ('dataset', 'extra_sets')
        assert {k: v for k, v in ours.items() if k not in other} == \
            {k: v for k, v in theirs.items() if k not in other}
        assert {k: v for k, v in ours.dataset.items() if k != 'pipeline'} \
            == {k: v for k, v in theirs.dataset.items() if k != 'pipeline'}
    assert len(loaders(cfg)) == len(loaders(parent))


@pytest.mark.parametrize(
    'path', [
        p for p in CAD_CONFIGS
        if 'vit-b' in osp.basename(p) and 'trans10k' not in osp.basename(p)
    ],
    ids=lambda p: osp.basename(p))
def test_cad_paper_configs_use_the_reference_loss(path):
    """BCE + IoU smoothed by 1e-3, no boundary weights."""
    loss = Config.fromfile(path).model.decode_head.loss_decode
    assert loss == dict(
        type='StructureLoss', boundary_weight=0.0, iou_smooth=1e-3)
