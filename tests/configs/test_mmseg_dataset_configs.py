"""The dataset configs written out from mmseg's equal mmseg's own files
but for label checks and non-persistent training workers, and their SAM
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


@pytest.mark.parametrize('name', sorted(SAM_VARIANTS))
def test_written_out_configs_equal_mmseg(name):
    mmseg_file = osp.join(MMSEG_DATASETS, name)
    if not osp.isfile(mmseg_file):
        pytest.skip('this mmseg install ships no configs')
    theirs, ours = Config.fromfile(mmseg_file), Config.fromfile(
        osp.join(OURS, name))
    theirs = theirs.to_dict()
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
    base, sam = Config.fromfile(osp.join(OURS, name)), Config.fromfile(
        osp.join(OURS, variant))
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
