import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

from mmseg_convlora.datasets.trans10k import Trans10KDataset
from mmseg_convlora.datasets.transforms.trans10k_loading import (
    LoadTrans10KAnnotations, decode_trans10k_mask)

S = 16
BLACK, RED, WHITE = (0, 0, 0), (255, 0, 0), (255, 255, 255)


def _ids_v1(seed):
    ids = np.zeros((S, S), np.uint8)
    ids[:, S // 2:] = 2
    ids[seed % S, :S // 2] = 1
    ids[:4, :4] = 1
    return ids


def _ids_v2(seed):
    ids = np.zeros((S, S), np.uint8)
    ids[:, 8:] = (seed % 11) + 1
    ids[:2, :2] = 11
    return ids


def _write_img(path, size=(S, S)):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.RandomState(0).randint(0, 255, size + (3, ), np.uint8)
    Image.fromarray(arr).save(path)


def _write_v1_mask(path, ids, mode='RGBA'):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((S, S, 3), np.uint8)
    for cid, color in ((0, BLACK), (1, RED), (2, WHITE)):
        rgb[ids == cid] = color
    img = Image.fromarray(rgb)
    if mode == 'RGBA':
        img = img.convert('RGBA')
    img.save(path)


def _write_v2_mask(path, ids, mode='L'):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == 'P':
        # Indices are the ids; colours deliberately unlike the ids.
        img = Image.frombytes('P', (S, S), ids.tobytes())
        img.putpalette([(i * 37 + c * 91) % 256 for i in range(256)
                        for c in range(3)])
    else:
        img = Image.fromarray(ids)
    assert img.mode == mode
    img.save(path)


@pytest.fixture
def v1_root(tmp_path):
    root = tmp_path / 'Trans10K'
    for i, name in enumerate(['b', 'a', 'c']):
        _write_img(root / 'train' / 'images' / f'{name}.jpg')
        _write_v1_mask(
            root / 'train' / 'masks' / f'{name}_mask.png',
            _ids_v1(i),
            mode='RGBA' if i % 2 else 'RGB')
    for sub in ('easy', 'hard'):
        _write_img(root / 'validation' / sub / 'images' / f'{sub}1.jpg')
        _write_v1_mask(
            root / 'validation' / sub / 'masks' / f'{sub}1_mask.png',
            _ids_v1(5))
    return root


@pytest.fixture
def v2_root(tmp_path):
    root = tmp_path / 'Trans10K_cls12'
    for i, name in enumerate(['x', 'y']):
        _write_img(root / 'train' / 'images' / f'{name}.jpg')
        _write_v2_mask(
            root / 'train' / 'masks_12' / f'{name}_mask.png',
            _ids_v2(i),
            mode='P' if i else 'L')
    return root


def _pipeline(**kwargs):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadTrans10KAnnotations', **kwargs),
        dict(type='PackSegInputs')
    ]


def setup_module():
    init_default_scope('mmseg')


# ---------------------------------------------------------------- listing
def test_v1_lists_pairs_sorted(v1_root):
    ds = Trans10KDataset(data_root=str(v1_root), split='train')
    assert len(ds) == 3
    names = [d['img_path'].split('/')[-1] for d in ds]
    assert names == ['a.jpg', 'b.jpg', 'c.jpg']
    info = ds.get_data_info(0)
    assert info['seg_map_path'].endswith('train/masks/a_mask.png')
    assert info['trans10k_version'] == 'v1' and info['subset'] is None
    assert ds.metainfo['classes'] == ('background', 'things', 'stuff')
    assert len(ds.metainfo['palette']) == 3


def test_v1_easy_hard_subsets(v1_root):
    ds = Trans10KDataset(data_root=str(v1_root), split='validation')
    assert [d['subset'] for d in ds] == ['easy', 'hard']
    ds = Trans10KDataset(
        data_root=str(v1_root), split='validation', subsets=['hard'])
    assert len(ds) == 1 and ds.get_data_info(0)['img_path'].endswith(
        'validation/hard/images/hard1.jpg')
    with pytest.raises(ValueError, match='medium'):
        Trans10KDataset(
            data_root=str(v1_root), split='validation', subsets=['medium'])


def test_data_prefix_points_at_folders(v1_root):
    ds = Trans10KDataset(
        data_root=str(v1_root),
        data_prefix=dict(
            img_path='validation/easy/images',
            seg_map_path='validation/easy/masks'))
    assert len(ds) == 1


def test_v2_metainfo_and_listing(v2_root):
    ds = Trans10KDataset(version='v2', data_root=str(v2_root), split='train')
    assert len(ds) == 2
    classes = ds.metainfo['classes']
    assert len(classes) == 12 and classes[0] == 'background'
    assert classes[1] == 'shelf' and classes[-1] == 'storage box'
    assert len(ds.metainfo['palette']) == 12
    assert ds.get_data_info(0)['seg_map_path'].endswith(
        'train/masks_12/x_mask.png')
    # the class-level default is untouched by the v2 instance
    assert len(Trans10KDataset.METAINFO['classes']) == 3


def test_v2_class_subset_gives_label_map(v2_root):
    ds = Trans10KDataset(
        version='v2',
        data_root=str(v2_root),
        metainfo=dict(classes=('background', 'cup', 'storage box')),
        pipeline=_pipeline())
    assert ds.label_map[7] == 1 and ds.label_map[11] == 2
    assert ds.label_map[1] == 255
    seg = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    ids = _ids_v2(0)
    assert (seg[ids == 11] == 2).all()
    assert (seg[ids == 1] == 255).all()


# ------------------------------------------------------------- decoding
def test_v1_pipeline_decodes_colours(v1_root):
    ds = Trans10KDataset(
        data_root=str(v1_root), split='train', pipeline=_pipeline())
    for i, stem_seed in enumerate([1, 0, 2]):  # a, b, c were written 1, 0, 2
        seg = ds[i]['data_samples'].gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(seg, _ids_v1(stem_seed))


def test_v2_pipeline_decodes_values_l_and_p(v2_root):
    ds = Trans10KDataset(
        version='v2',
        data_root=str(v2_root),
        split='train',
        pipeline=_pipeline())
    for i in range(2):
        seg = ds[i]['data_samples'].gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(seg, _ids_v2(i))


def test_decode_function_direct():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = RED
    rgb[0, 1] = (0, 0, 255)
    rgb[1, 2] = WHITE
    np.testing.assert_array_equal(
        decode_trans10k_mask(rgb, 'v1'), [[1, 1, 0], [0, 0, 2]])
    grey = np.array([[0, 11], [255, 3]], np.uint8)
    np.testing.assert_array_equal(decode_trans10k_mask(grey, 'v2'), grey)
    with pytest.raises(ValueError, match='version'):
        decode_trans10k_mask(grey, 'v3')


def test_v1_unknown_colour_refused_with_filename(v1_root):
    bad = v1_root / 'train' / 'masks' / 'b_mask.png'
    arr = np.array(Image.open(bad).convert('RGB'))
    arr[3, 3] = (128, 0, 0)  # an anti-aliased edge, say
    Image.fromarray(arr).save(bad)
    ds = Trans10KDataset(
        data_root=str(v1_root), split='train', pipeline=_pipeline())
    with pytest.raises(ValueError) as err:
        ds[1]
    assert 'b_mask.png' in str(err.value)
    assert '(128, 0, 0)' in str(err.value)


def test_v2_unknown_value_refused_with_filename(v2_root):
    bad = v2_root / 'train' / 'masks_12' / 'y_mask.png'
    ids = _ids_v2(1)
    ids[0, 5] = 12
    ids[1, 5] = 200
    _write_v2_mask(bad, ids)
    ds = Trans10KDataset(
        version='v2', data_root=str(v2_root), pipeline=_pipeline())
    with pytest.raises(ValueError) as err:
        ds[1]
    assert 'y_mask.png' in str(err.value)
    assert '[12, 200]' in str(err.value)


def test_v2_colour_mask_refused(tmp_path):
    path = tmp_path / 'm_mask.png'
    rgb = np.zeros((S, S, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(path)
    t = LoadTrans10KAnnotations(version='v2')
    with pytest.raises(ValueError, match='m_mask.png.*colour'):
        t(dict(seg_map_path=str(path), seg_fields=[]))


def test_v2_ignore_255_kept(tmp_path):
    path = tmp_path / 'm_mask.png'
    ids = _ids_v2(0)
    ids[5:7] = 255
    _write_v2_mask(path, ids)
    out = LoadTrans10KAnnotations(version='v2')(
        dict(seg_map_path=str(path), seg_fields=[]))
    np.testing.assert_array_equal(out['gt_seg_map'], ids)
    assert out['seg_fields'] == ['gt_seg_map']


def test_size_mismatch_names_both_files(v1_root):
    img = v1_root / 'train' / 'images' / 'a.jpg'
    _write_img(img, size=(S, S + 4))
    with pytest.raises(ValueError) as err:  # from the headers, when built
        Trans10KDataset(
            data_root=str(v1_root), split='train', pipeline=_pipeline())
    assert 'a_mask.png' in str(err.value) and 'a.jpg' in str(err.value)
    # without a loaded image, the size is read from the image header
    t = LoadTrans10KAnnotations(version='v1')
    with pytest.raises(ValueError, match='a.jpg'):
        t(
            dict(
                img_path=str(img),
                seg_map_path=str(v1_root / 'train' / 'masks' / 'a_mask.png'),
                seg_fields=[]))


def test_transform_needs_version():
    with pytest.raises(ValueError, match='version'):
        LoadTrans10KAnnotations(version='v9')
    with pytest.raises(ValueError, match='trans10k_version'):
        LoadTrans10KAnnotations()(dict(seg_map_path='x.png'))


# ---------------------------------------------------------------- errors
def test_missing_root_is_clear(tmp_path):
    missing = tmp_path / 'nope'
    with pytest.raises(FileNotFoundError) as err:
        Trans10KDataset(data_root=str(missing))
    msg = str(err.value)
    assert str(missing) in msg and 'masks/xxx_mask.png' in msg


def test_empty_or_wrong_folder_is_clear(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError) as err:
        Trans10KDataset(data_root=str(tmp_path / 'empty'), split='train')
    assert str(tmp_path / 'empty' / 'train') in str(err.value)
    assert 'layout' in str(err.value)
    # images folder without images
    (tmp_path / 'e2' / 'train' / 'images').mkdir(parents=True)
    (tmp_path / 'e2' / 'train' / 'masks').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='No \\*.jpg images'):
        Trans10KDataset(data_root=str(tmp_path / 'e2'))


def test_v2_layout_on_v1_folder_is_refused(v1_root):
    with pytest.raises(FileNotFoundError, match='masks_12'):
        Trans10KDataset(version='v2', data_root=str(v1_root), split='train')


def test_image_without_mask_is_refused(v1_root):
    (v1_root / 'train' / 'masks' / 'c_mask.png').unlink()
    with pytest.raises(FileNotFoundError, match='c_mask.png'):
        Trans10KDataset(data_root=str(v1_root), split='train')


def test_bad_arguments():
    with pytest.raises(ValueError, match='v3'):
        Trans10KDataset(version='v3', data_root='x')
    with pytest.raises(ValueError, match='reduce_zero_label'):
        Trans10KDataset(data_root='x', reduce_zero_label=True)
