"""Our dataset configs inherit mmseg's (``mmseg::`` bases) and differ from
them only in label checks and non-persistent training workers; their SAM
variants differ only in the square test input."""
import os.path as osp

import mmseg
import pytest
from mmengine.config import Config

from helpers import REPO

MMSEG_DATASETS = osp.join(
    osp.dirname(mmseg.__file__), '.mim', 'configs', '_base_', 'datasets')
OURS = osp.join(REPO, 'configs', '_base_', 'datasets')
KEYS = ('dataset_type', 'data_root', 'crop_size', 'train_pipeline',
        'test_pipeline', 'train_dataloader', 'val_dataloader',
        'test_dataloader', 'val_evaluator', 'test_evaluator')
NUM_CLASSES = {
    'ade20k.py': 150,
    'pascal_voc12.py': 21,
    'cityscapes_1024x1024.py': 19
}
SAM_VARIANTS = {
    'ade20k.py': ('ade20k_sam-512x512.py', (512, 512)),
    'pascal_voc12.py': ('pascal_voc12_sam-512x512.py', (512, 512)),
    'cityscapes_1024x1024.py': ('cityscapes_sam-1024x1024.py', (1024, 1024))
}


def without_scope(cfg):
    """``cfg`` without the ``_scope_`` keys mmengine adds to what it reads
    from ``mmseg::`` files."""
    if isinstance(cfg, dict):
        return {k: without_scope(v) for k, v in cfg.items() if k != '_scope_'}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(without_scope(v) for v in cfg)
    return cfg


@pytest.mark.parametrize('name', sorted(SAM_VARIANTS))
def test_configs_equal_mmseg_but_for_the_checks(name):
    mmseg_file = osp.join(MMSEG_DATASETS, name)
    if not osp.isfile(mmseg_file):
        pytest.skip('this mmseg install ships no configs')
    theirs = without_scope(Config.fromfile(mmseg_file).to_dict())
    ours = without_scope(Config.fromfile(osp.join(OURS, name)).to_dict())
    # the two deliberate differences, applied to mmseg's file
    check = dict(type='CheckSegLabels', num_classes=NUM_CLASSES[name])

    def checked(pipeline):
        out = []
        for step in pipeline:
            out.append(step)
            if step['type'] == 'LoadAnnotations':
                out.append(check)
        return out

    for key in ('train_pipeline', 'test_pipeline'):
        theirs[key] = checked(theirs[key])
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        theirs[key]['dataset']['pipeline'] = checked(
            theirs[key]['dataset']['pipeline'])
    assert theirs['train_dataloader']['persistent_workers'] is True
    theirs['train_dataloader']['persistent_workers'] = False
    for key in KEYS:
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize('name', sorted(SAM_VARIANTS))
def test_sam_variants_change_only_the_test_resize(name):
    variant, size = SAM_VARIANTS[name]
    base = Config.fromfile(osp.join(OURS, name))
    sam = Config.fromfile(osp.join(OURS, variant))
    resize = dict(type='Resize', scale=size, keep_ratio=True)
    expected = [
        resize if t['type'] == 'Resize' else t for t in base.test_pipeline
    ]
    assert sam.test_pipeline == expected
    for key in ('val_dataloader', 'test_dataloader'):
        loader = sam[key].to_dict()
        assert loader['dataset'].pop('pipeline') == expected
        reference = base[key].to_dict()
        reference['dataset'].pop('pipeline')
        assert loader == reference
    for key in ('train_dataloader', 'train_pipeline', 'val_evaluator'):
        assert sam[key] == base[key]
