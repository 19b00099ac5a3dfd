"""What datasets check when they are built: files in subfolders, orphans
and missing masks (issue 23 item 7), sizes and labels of every split before
training (issue 23, issue 24 item 4), EXIF warnings once per file."""
import logging
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmseg.registry import DATASETS
from PIL import Image
from torch.utils.data import DataLoader

from helpers import REPO, demo_config

PIPELINE = Config.fromfile(
    osp.join(REPO, 'configs', '_base_', 'datasets',
             'binary_train_val_test.py')).test_pipeline


def write_pair(root, rel, size=(8, 8), mask_value=255, mask_size=None):
    """An image ``root/images/<rel>.jpg`` and its mask
    ``root/masks/<rel>.png`` (top half ``mask_value``)."""
    h, w = size
    img = osp.join(root, 'images', rel + '.jpg')
    os.makedirs(osp.dirname(img), exist_ok=True)
    assert cv2.imwrite(img, np.full((h, w, 3), 90, np.uint8))
    mh, mw = mask_size or size
    mask = np.zeros((mh, mw), np.uint8)
    mask[:mh // 2] = mask_value
    path = osp.join(root, 'masks', rel + '.png')
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, mask)
    return img, path


def binary_cfg(root, **kwargs):
    return dict(
        type='BinarySegDataset',
        data_root=str(root),
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        pipeline=list(PIPELINE),
        **kwargs)


# --------------------------------------------------- issue 23 item 7
def test_images_in_subfolders_are_taken_with_their_masks(tmp_path):
    write_pair(tmp_path, 'a')
    write_pair(tmp_path, 'day1/b')
    write_pair(tmp_path, 'day1/night/c')
    ds = DATASETS.build(binary_cfg(tmp_path))
    assert [
        osp.relpath(ds.get_data_info(i)['seg_map_path'], tmp_path / 'masks')
        for i in range(len(ds))
    ] == ['a.png', 'day1/b.png', 'day1/night/c.png']
    assert ds[2]['data_samples'].gt_sem_seg.data.sum() > 0


def test_image_in_a_subfolder_without_mask_is_refused(tmp_path):
    write_pair(tmp_path, 'a')
    _, mask = write_pair(tmp_path, 'day1/b')
    os.remove(mask)
    with pytest.raises(FileNotFoundError, match='day1/b.png'):
        DATASETS.build(binary_cfg(tmp_path))


def multiclass_cfg(root):
    """The multi-class demo's validation dataset on ``root``."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'demo', 'tiny_multiclass.py'))
    ds = cfg.val_dataloader.dataset.to_dict()
    ds.update(
        data_root=str(root),
        data_prefix=dict(img_path='images', seg_map_path='masks'))
    return ds


def test_multiclass_demo_dataset_reports_orphans_and_missing_masks(
        tmp_path, capture_log):
    write_pair(tmp_path, 'a', mask_value=2)
    write_pair(tmp_path, 'b', mask_value=1)
    cv2.imwrite(
        str(tmp_path / 'masks' / 'orphan.png'), np.zeros((8, 8), np.uint8))
    log = capture_log(MMLogger.get_current_instance())
    ds = DATASETS.build(multiclass_cfg(tmp_path))
    assert len(ds) == 2
    assert 'orphan.png' in log.text() and 'without an image' in log.text()
    os.remove(tmp_path / 'masks' / 'b.png')
    with pytest.raises(FileNotFoundError, match='b.png'):
        DATASETS.build(multiclass_cfg(tmp_path))


def test_multiclass_labels_out_of_range_refused_when_built(tmp_path):
    write_pair(tmp_path, 'a', mask_value=2)
    write_pair(tmp_path, 'b', mask_value=7)  # 3 classes
    with pytest.raises(ValueError, match=r"b.png.*\[7\]"):
        DATASETS.build(multiclass_cfg(tmp_path))


# ------------------------- sizes and labels before training (both issues)
def test_mask_one_pixel_off_refused_when_built(tmp_path):
    write_pair(tmp_path, 'a')
    write_pair(tmp_path, 'b', size=(8, 9), mask_size=(8, 8))
    with pytest.raises(ValueError) as err:
        DATASETS.build(binary_cfg(tmp_path))
    msg = str(err.value)
    assert 'b.png' in msg and '8x8' in msg and '9x8' in msg
    assert '1 of 2 masks' in msg and '--resize-masks nearest' in msg


def test_non_binary_mask_refused_when_built(tmp_path):
    write_pair(tmp_path, 'a')
    _, mask = write_pair(tmp_path, 'b')
    cv2.imwrite(mask, np.array([[0, 7, 200, 7]] * 8, np.uint8).repeat(2, 1))
    with pytest.raises(ValueError, match='b.png.*not a binary mask'):
        DATASETS.build(binary_cfg(tmp_path))


def test_bad_validation_mask_stops_training_before_it_starts(
        demo_data, tmp_path):
    data = str(tmp_path / 'data')
    shutil.copytree(demo_data, data)
    mask = osp.join(data, 'val', 'masks',
                    sorted(os.listdir(osp.join(data, 'val', 'masks')))[-1])
    cv2.imwrite(mask, cv2.imread(mask, cv2.IMREAD_UNCHANGED)[:, 1:])
    cfg = demo_config(data, str(tmp_path / 'work'))
    cfg.train_cfg.max_epochs = 1
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=osp.basename(mask)):
        runner.train()
    assert runner.iter == 0


# -------------------------------------------- EXIF: once per file per run
class ToStderr(logging.Handler):
    """Writes records to file descriptor 2, also from dataloader workers."""

    def emit(self, record):
        os.write(2, (record.getMessage() + '\n').encode())


def test_exif_warning_once_per_file_per_run(tmp_path, capfd):
    write_pair(tmp_path, 'a')
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(
        tmp_path / 'images' / 'b.jpg', exif=exif.tobytes())
    write_pair(tmp_path, 'c')
    shutil.copy(tmp_path / 'masks' / 'a.png', tmp_path / 'masks' / 'b.png')
    logger = MMLogger.get_current_instance()
    handler = ToStderr()
    logger.addHandler(handler)
    ds = DATASETS.build(binary_cfg(tmp_path))
    loader = DataLoader(
        ds,
        batch_size=1,
        num_workers=2,
        persistent_workers=False,
        collate_fn=lambda x: x)
    try:
        for _ in range(2):  # fresh workers each epoch
            assert len(list(loader)) == 3
    finally:
        logger.removeHandler(handler)
    out, err = capfd.readouterr()
    assert (out + err).count('b.jpg') == 1
