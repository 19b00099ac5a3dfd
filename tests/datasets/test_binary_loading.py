import os

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS, TRANSFORMS

from mmseg_convlora.datasets.transforms import binarize_mask


def load(path, ori_shape=None):
    transform = TRANSFORMS.build(dict(type='LoadBinaryAnnotations'))
    results = dict(
        seg_map_path=str(path), seg_fields=[], reduce_zero_label=False)
    if ori_shape is not None:
        results.update(ori_shape=ori_shape, img_path='img.jpg')
    return transform(results)['gt_seg_map']


def test_0_255_mask_becomes_0_1(tmp_path):
    mask = np.zeros((5, 6), np.uint8)
    mask[1:3, 2:5] = 255
    cv2.imwrite(str(tmp_path / 'm.png'), mask)
    out = load(tmp_path / 'm.png')
    assert out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 1}
    assert (out == (mask == 255)).all()


def test_0_1_mask_kept():
    mask = np.array([[0, 1], [1, 0]], np.uint8)
    assert (binarize_mask(mask) == mask).all()


def test_anti_aliased_mask_thresholded_at_half():
    mask = np.zeros((10, 10), np.uint8)
    mask[:, 5:] = 255
    mask[0, 4] = 100  # edge pixels
    mask[1, 4] = 200
    out = binarize_mask(mask)
    assert out[0, 4] == 0 and out[1, 4] == 1
    assert out[:, 5:].all() and not out[2:, :5].any()


def test_non_binary_mask_refused_with_file_name(tmp_path):
    mask = np.zeros((6, 6), np.uint8)
    mask[:2] = 7
    mask[2:4] = 200
    path = tmp_path / 'bad_mask.png'
    cv2.imwrite(str(path), mask)
    with pytest.raises(ValueError) as err:
        load(path)
    assert 'bad_mask.png' in str(err.value)
    assert '7' in str(err.value) and '200' in str(err.value)


def test_class_id_mask_refused():
    with pytest.raises(ValueError, match='class ids'):
        binarize_mask(np.array([[0, 1], [2, 1]], np.uint8), 'ids.png')


def test_gray_stored_as_rgb_and_16_bit(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[:2] = 255
    cv2.imwrite(str(tmp_path / 'rgb.png'), np.stack([mask] * 3, -1))
    assert (load(tmp_path / 'rgb.png') == (mask > 0)).all()
    cv2.imwrite(str(tmp_path / 'm16.png'), mask.astype(np.uint16) * 257)
    assert (load(tmp_path / 'm16.png') == (mask > 0)).all()


def test_colour_mask_refused(tmp_path):
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[:2, :, 2] = 255  # red
    cv2.imwrite(str(tmp_path / 'red.png'), mask)
    with pytest.raises(ValueError, match='red.png'):
        load(tmp_path / 'red.png')


def test_mask_of_other_size_than_image_refused(tmp_path):
    cv2.imwrite(str(tmp_path / 'm.png'), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match='same size'):
        load(tmp_path / 'm.png', ori_shape=(4, 6))


def make_sbu(root, split_dirs, n=3, missing_mask=False):
    for img_dir, mask_dir in split_dirs:
        os.makedirs(root / img_dir)
        os.makedirs(root / mask_dir)
        for i in range(n):
            cv2.imwrite(
                str(root / img_dir / f'{i}.jpg'),
                np.full((8, 8, 3), 100, np.uint8))
            if missing_mask and i == n - 1:
                continue
            m = np.zeros((8, 8), np.uint8)
            m[:4] = 255
            cv2.imwrite(str(root / mask_dir / f'{i}.png'), m)


def sbu_cfg(root, pipeline=()):
    return dict(
        type='SBUShadowDataset',
        data_root=str(root),
        data_prefix=dict(
            img_path='SBU-Test/ShadowImages',
            seg_map_path='SBU-Test/ShadowMasks'),
        pipeline=list(pipeline))


def test_sbu_layout_and_foreground_is_trained_not_ignored(tmp_path):
    make_sbu(tmp_path, [('SBU-Test/ShadowImages', 'SBU-Test/ShadowMasks')])
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadBinaryAnnotations'),
        dict(type='Resize', scale=(16, 16), keep_ratio=False),
        dict(type='PackSegInputs')
    ]
    ds = DATASETS.build(sbu_cfg(tmp_path, pipeline))
    assert len(ds) == 3
    assert ds.metainfo['classes'] == ('non-shadow', 'shadow')
    gt = ds[0]['data_samples'].gt_sem_seg.data
    values = set(gt.unique().tolist())
    assert values == {0, 1}  # 255 (ignore) never appears
    assert (gt[0, :8] == 1).all()


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DATASETS.build(sbu_cfg(tmp_path))
    os.makedirs(tmp_path / 'SBU-Test/ShadowImages')
    with pytest.raises(FileNotFoundError, match='no images found'):
        DATASETS.build(sbu_cfg(tmp_path))


def test_image_without_mask_is_an_error(tmp_path):
    make_sbu(
        tmp_path, [('SBU-Test/ShadowImages', 'SBU-Test/ShadowMasks')],
        missing_mask=True)
    with pytest.raises(FileNotFoundError, match='have no mask'):
        DATASETS.build(sbu_cfg(tmp_path))


# --------------------------------------- mask encodings and void pixels
def write_mask(path, mask):
    cv2.imwrite(str(path), mask)
    return str(path)


def load_with(path, **kwargs):
    transform = TRANSFORMS.build(dict(type='LoadBinaryAnnotations', **kwargs))
    return transform(
        dict(seg_map_path=str(path), seg_fields=[],
             reduce_zero_label=False))['gt_seg_map']


VOID_MASK = np.array([[0, 1, 255], [1, 1, 0]], np.uint8)


def test_0_1_mask_with_255_void_loads_object_and_ignore(tmp_path):
    """mmseg's convention (0/1 labels, 255 = void): object stays 1, void
    becomes the ignore index, whether the dataset or the transform
    declares the encoding."""
    path = write_mask(tmp_path / 'void.png', VOID_MASK)
    expected = [[0, 1, 255], [1, 1, 0]]
    assert load_with(path, mask_encoding='0-1').tolist() == expected
    transform = TRANSFORMS.build(dict(type='LoadBinaryAnnotations'))
    results = transform(
        dict(
            seg_map_path=path,
            seg_fields=[],
            reduce_zero_label=False,
            mask_encoding='0-1'))
    assert results['gt_seg_map'].tolist() == expected


def test_ambiguous_0_1_255_mask_names_file_and_option(tmp_path):
    path = write_mask(tmp_path / 'ambiguous.png', VOID_MASK)
    with pytest.raises(ValueError) as err:
        load_with(path)
    msg = str(err.value)
    assert 'ambiguous.png' in msg and 'ambiguous' in msg
    assert 'mask_encoding' in msg and "'0-1'" in msg and "'0-255'" in msg
    # declared as a 0/255 mask, the stray 1s are background
    assert load_with(
        path, mask_encoding='0-255').tolist() == [[0, 0, 1], [0, 0, 0]]


def test_0_255_mask_with_255_declared_void(tmp_path):
    path = write_mask(tmp_path / 'm.png', np.array([[0, 255]], np.uint8))
    assert load_with(path).tolist() == [[0, 1]]  # default: 255 = object
    assert load_with(path, mask_encoding='0-1').tolist() == [[0, 255]]


def test_other_void_value_in_a_0_255_mask(tmp_path):
    path = write_mask(tmp_path / 'm.png',
                      np.array([[0, 128, 255, 255]], np.uint8))
    assert load_with(path, void_value=128).tolist() == [[0, 255, 1, 1]]


def test_0_1_encoding_refuses_other_values(tmp_path):
    path = write_mask(tmp_path / 'ids.png', np.array([[0, 1, 2]], np.uint8))
    with pytest.raises(ValueError, match=r"ids.png.*'0-1'"):
        load_with(path, mask_encoding='0-1')


def test_jpeg_rgb_masks_keep_loading_as_before(tmp_path):
    """Lossy RGB JPEG 0/255 masks (values spread around 0 and 255, as in
    the polyp benchmarks) are thresholded at half scale."""
    mask = np.zeros((64, 80), np.uint8)
    cv2.circle(mask, (40, 32), 20, 255, -1)
    path = str(tmp_path / 'polyp.jpg')
    cv2.imwrite(path, np.stack([mask] * 3, -1), [cv2.IMWRITE_JPEG_QUALITY, 75])
    stored = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert len(np.unique(stored)) > 10  # really noisy
    out = load_with(path)
    assert set(np.unique(out)) == {0, 1}
    assert (out == (mask > 127)).mean() > 0.99


def test_dataset_passes_its_mask_encoding_to_the_loader(tmp_path):
    make_sbu(
        tmp_path, [('SBU-Test/ShadowImages', 'SBU-Test/ShadowMasks')], n=1)
    cv2.imwrite(
        str(tmp_path / 'SBU-Test/ShadowMasks/0.png'),
        np.tile(np.array([0, 1, 255, 1], np.uint8), (8, 2)))
    cfg = sbu_cfg(tmp_path, [dict(type='LoadBinaryAnnotations')])
    with pytest.raises(ValueError, match='ambiguous'):
        DATASETS.build(cfg)[0]
    ds = DATASETS.build(dict(cfg, mask_encoding='0-1'))
    assert ds[0]['gt_seg_map'][0, :4].tolist() == [0, 1, 255, 1]
    with pytest.raises(ValueError, match='mask_encoding'):
        DATASETS.build(dict(cfg, mask_encoding='0/1'))


# ------------------------------------------------- files not picked up
def test_unused_files_are_counted_when_the_dataset_is_built(
        tmp_path, capture_log):
    from mmengine.logging import MMLogger
    make_sbu(tmp_path, [('SBU-Test/ShadowImages', 'SBU-Test/ShadowMasks')])
    img_dir = tmp_path / 'SBU-Test/ShadowImages'
    cv2.imwrite(str(img_dir / 'other.png'), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(
        str(tmp_path / 'SBU-Test/ShadowMasks/orphan.png'),
        np.zeros((8, 8), np.uint8))
    log = capture_log(MMLogger.get_current_instance())
    ds = DATASETS.build(sbu_cfg(tmp_path))
    assert len(ds) == 3
    text = log.text()
    assert '1 file(s) in' in text and 'other.png' in text
    assert '1 mask(s) in' in text and 'orphan.png' in text
    assert 'without an image' in text and 'img_suffix' in text
