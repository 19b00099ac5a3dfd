"""One mask encoding per dataset (issue 23 item 5) and dark foregrounds
(issue 24 item 5)."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmseg.registry import DATASETS

from helpers import REPO

PIPELINE = Config.fromfile(
    osp.join(REPO, 'configs', '_base_', 'datasets',
             'binary_train_val_test.py')).test_pipeline


def make(root, masks):
    """A dataset folder with one 2x4 image per mask (``{name: rows}``)."""
    os.makedirs(root / 'images', exist_ok=True)
    os.makedirs(root / 'masks', exist_ok=True)
    for name, rows in masks.items():
        mask = np.array(rows, np.uint8)
        cv2.imwrite(
            str(root / 'images' / f'{name}.png'),
            np.zeros(mask.shape + (3, ), np.uint8))
        cv2.imwrite(str(root / 'masks' / f'{name}.png'), mask)


def build(root, **kwargs):
    return DATASETS.build(
        dict(
            type='BinarySegDataset',
            data_root=str(root),
            img_suffix='.png',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=list(PIPELINE),
            **kwargs))


def labels(ds, i):
    return ds[i]['data_samples'].gt_sem_seg.data[0].tolist()


OBJECT_255 = [[0, 255, 255, 0], [0, 0, 0, 0]]
VOID_255 = [[1, 1, 255, 1], [1, 1, 1, 1]]  # 0/1 labels: all object, 1 void


def test_0_1_void_mask_among_0_255_masks_is_refused(tmp_path):
    make(tmp_path, dict(a=OBJECT_255, b=OBJECT_255, c=VOID_255))
    with pytest.raises(ValueError) as err:
        build(tmp_path)
    msg = str(err.value)
    assert 'c.png' in msg and ('a.png' in msg or 'b.png' in msg)
    assert 'mask_encoding' in msg
    # declared, the dataset reads every mask the one way
    ds = build(tmp_path, mask_encoding='0-255')
    assert labels(ds, 2) == [[0, 0, 1, 0], [0, 0, 0, 0]]


def test_0_1_mask_among_0_255_masks_is_refused(tmp_path):
    make(tmp_path, dict(a=OBJECT_255, b=[[0, 1, 1, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"b.png.*0/1.*a.png"):
        build(tmp_path)


def test_encoding_decided_from_all_masks(tmp_path):
    """{1, 255} alone looks like 0/255; beside 0/1 masks it is 0/1 with 255
    void."""
    make(tmp_path, dict(a=[[0, 1, 1, 0], [0, 0, 0, 0]], b=VOID_255))
    ds = build(tmp_path)
    assert labels(ds, 1) == [[1, 1, 255, 1], [1, 1, 1, 1]]
    assert ds.get_data_info(1)['mask_encoding'] == '0-1'


def test_only_ambiguous_masks_are_refused(tmp_path):
    make(tmp_path, dict(a=VOID_255, b=[[0, 1, 255, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match='ambiguous.*mask_encoding'):
        build(tmp_path)


# ------------------------------------------------ dark foreground
MEMBRANES = [[0, 255, 255, 255], [255, 255, 0, 255]]  # object = 0 (dark)


def test_invert_masks_makes_the_dark_value_the_object(tmp_path):
    make(tmp_path, dict(a=MEMBRANES))
    ds = build(tmp_path, invert_masks=True)
    assert labels(ds, 0) == [[1, 0, 0, 0], [0, 0, 1, 0]]


def test_foreground_covering_most_of_every_mask_is_warned(
        tmp_path, capture_log):
    make(tmp_path, dict(a=MEMBRANES, b=MEMBRANES))
    log = capture_log(MMLogger.get_current_instance())
    build(tmp_path)
    assert 'every mask' in log.text() and 'invert_masks=True' in log.text()
    log.records.clear()
    build(tmp_path, invert_masks=True)
    assert 'every mask' not in log.text()
    make(tmp_path, dict(c=OBJECT_255))  # one mask with little foreground
    build(tmp_path)
    assert 'every mask' not in log.text()
