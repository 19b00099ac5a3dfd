"""``LoadImageFromFile(color_type='unchanged')`` + ``CheckImage``: images as
mmcv's default loading gives them (8-bit BGR), 16-bit images scaled by one
rule per dataset (issue 23 item 6), EXIF orientation as viewers show it."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import MMLogger
from mmseg.registry import DATASETS
from PIL import Image

from helpers import REPO

LOAD = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage')
]
PIPELINE = Config.fromfile(
    osp.join(REPO, 'configs', '_base_', 'datasets',
             'binary_train_val_test.py')).test_pipeline


def load(path, **kwargs):
    steps = [LOAD[0], dict(LOAD[1], **kwargs)]
    return Compose(steps)(dict(img_path=str(path)))['img']


def opencv_colour(path):
    """OpenCV's colour reading (mmcv's default) of the stored pixels."""
    return cv2.imread(
        str(path),
        cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION)


def write_images(root):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    colour = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    files = dict(
        gray=Image.fromarray(gray, 'L'),
        gray_alpha=Image.fromarray(np.dstack([gray, gray[::-1]]), 'LA'),
        rgba=Image.fromarray(np.dstack([colour, gray]), 'RGBA'),
        palette=Image.fromarray(colour).convert('P'),
        one_bit=Image.fromarray(gray > 128))
    paths = {}
    for name, pil in files.items():
        paths[name] = str(root / f'{name}.png')
        pil.save(paths[name])
    paths['jpeg'] = str(root / 'photo.jpg')
    cv2.imwrite(paths['jpeg'], colour)
    return paths


@pytest.mark.parametrize(
    'name', ['gray', 'gray_alpha', 'rgba', 'palette', 'one_bit', 'jpeg'])
def test_8_bit_images_as_opencv_reads_them_in_colour(tmp_path, name):
    path = write_images(tmp_path)[name]
    img = load(path)
    assert img.dtype == np.uint8 and img.shape == (6, 7, 3)
    assert (img == opencv_colour(path)).all()


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_apply_shows_the_image_as_viewers_do(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    rgb = cv2.GaussianBlur(
        rng.integers(0, 256, (6, 10, 3), dtype=np.uint8), (3, 3), 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / 'e.jpg'
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=100)
    assert (load(path) == opencv_colour(path)).all()  # 'ignore'
    shown = load(path, exif_orientation='apply')
    assert (shown == cv2.imread(str(path), cv2.IMREAD_COLOR)).all()


def test_float_image_refused(tmp_path):
    path = tmp_path / 'float.tiff'
    Image.fromarray(np.random.rand(8, 8).astype(np.float32), 'F').save(path)
    with pytest.raises(ValueError, match='floating-point') as err:
        load(path)
    assert str(path) in str(err.value)


# ------------------------------------------------ 16-bit: one rule
FRAME = (np.arange(32, dtype=np.uint16).reshape(4, 8) * 132)  # max 4092


def make_16_bit(root, frames):
    os.makedirs(root / 'images', exist_ok=True)
    os.makedirs(root / 'masks', exist_ok=True)
    for name, frame in frames.items():
        cv2.imwrite(str(root / 'images' / f'{name}.png'), frame)
        cv2.imwrite(
            str(root / 'masks' / f'{name}.png'),
            np.zeros(frame.shape, np.uint8))


def build(root, **kwargs):
    return DATASETS.build(
        dict(
            type='BinarySegDataset',
            data_root=str(root),
            img_suffix='.png',
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            pipeline=[t for t in PIPELINE if 'Image' in t['type']],
            **kwargs))


def test_dark_16_bit_frame_scaled_like_the_bright_one(tmp_path, capture_log):
    """12-bit frames without sBIT: a frame at 1/5 of the light keeps 1/5 of
    the values (not stretched to its own maximum)."""
    make_16_bit(tmp_path, dict(bright=FRAME, dark=FRAME // 5))
    log = capture_log(MMLogger.get_current_instance())
    ds = build(tmp_path)
    bright, dark = (ds[i]['img'][..., 0].astype(float) for i in (0, 1))
    expected = np.rint((FRAME // 5) * (255 / 4095))
    assert (ds[1]['img'][..., 0] == expected).all()
    assert dark.mean() == pytest.approx(bright.mean() / 5, rel=0.02)
    text = log.text()
    assert text.count('12-bit') == 1 and 'bit_depth' in text
    # a configured depth is used as it is
    ds = build(tmp_path, bit_depth=16)
    assert (ds[0]['img'][..., 0] == np.rint(FRAME * (255 / 65535))).all()


def test_16_bit_image_without_a_dataset_uses_its_own_range(
        tmp_path, capture_log):
    cv2.imwrite(str(tmp_path / 'x.png'), FRAME // 5)
    log = capture_log(MMLogger.get_current_instance())
    img = load(tmp_path / 'x.png')
    assert img[..., 0].max() == round(818 * 255 / 1023)  # 10 bits
    assert 'its own maximum' in log.text()
    assert (load(tmp_path / 'x.png', bit_depth=12)[..., 0] == np.rint(
        (FRAME // 5) * (255 / 4095))).all()
