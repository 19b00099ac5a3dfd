"""tools/dataset_converters: a tiny fake of each official download becomes
the layout the configs read (checked by building the config's datasets on
it and loading a sample through its pipeline), and a folder that is not the
dataset is refused with a message naming what is missing. Polyp and
camouflage run the image_mask_folders.py commands of docs/own_data.md."""
import os
import os.path as osp
import re
import shlex
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

from helpers import REPO, load_tool, run_tool

CONVERTERS = osp.join(REPO, 'tools', 'dataset_converters')


def load_converter(name):
    return load_tool('dataset_converters', name + '.py')


def doc_command(data_dir, src, out):
    """The arguments of the docs/own_data.md command writing ``data_dir``."""
    with open(osp.join(REPO, 'docs', 'own_data.md')) as f:
        blocks = re.findall(r'```shell\n(.*?)```', f.read(), re.S)
    cmd = next(b for b in blocks if f'--out {data_dir}' in b)
    args = shlex.split(cmd.replace('\\\n', ' '))
    assert args[:2] == [
        'python', 'tools/dataset_converters/image_mask_folders.py'
    ]
    return [a.replace('SRC', src).replace(data_dir, out) for a in args[2:]]


def convert(name, src, out):
    if name.startswith('docs:'):
        main = load_converter('image_mask_folders').main
        return main(doc_command(name[5:], src, out))
    return load_converter(name).main([src, '--out', out])


def layout_error():
    sys.path.insert(0, CONVERTERS)
    try:
        import _common
    finally:
        sys.path.remove(CONVERTERS)
    return _common.LayoutError


def write_pair(img_path, mask_path, seed=0, size=(12, 16)):
    """A random image and a 0/255 mask with a foreground square."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.dirname(img_path), exist_ok=True)
    os.makedirs(osp.dirname(mask_path), exist_ok=True)
    img = rng.integers(0, 255, size + (3, ), dtype=np.uint8)
    mask = np.zeros(size, np.uint8)
    mask[2:8, 3:9] = 255
    assert cv2.imwrite(str(img_path), img)
    assert cv2.imwrite(str(mask_path), mask)


def fake_pairs(root,
               img_dir,
               mask_dir,
               stems,
               img_ext='.png',
               mask_fmt='{}.png'):
    for i, stem in enumerate(stems):
        write_pair(
            osp.join(root, img_dir, stem + img_ext),
            osp.join(root, mask_dir, mask_fmt.format(stem)),
            seed=i)


# ---------------------------------------------------------------- fakes
def fake_polyp(root):
    fake_pairs(root, 'TrainDataset/image', 'TrainDataset/mask',
               [f'cju{i:03d}'
                for i in range(10)] + [str(i) for i in range(1, 11)])
    for name in ('Kvasir', 'CVC-ClinicDB', 'CVC-ColonDB', 'ETIS-LaribPolypDB',
                 'CVC-300'):
        fake_pairs(root, f'TestDataset/{name}/images',
                   f'TestDataset/{name}/masks', ['1', '2'])


def fake_camouflage(root):
    fake_pairs(
        root,
        'TrainDataset/Imgs',
        'TrainDataset/GT',
        [f'COD10K-CAM-{i}'
         for i in range(6)] + [f'camourflage_{i:05d}' for i in range(4)],
        img_ext='.jpg')
    os.makedirs(osp.join(root, 'TrainDataset', 'Edge'))
    for name in ('CAMO', 'COD10K', 'CHAMELEON', 'NC4K'):
        fake_pairs(
            root,
            f'TestDataset/{name}/Imgs',
            f'TestDataset/{name}/GT', ['a', 'b'],
            img_ext='.jpg')


def fake_isic2017(root):
    for img_dir, mask_dir, first, n in (
        ('ISIC-2017_Training_Data', 'ISIC-2017_Training_Part1_GroundTruth', 0,
         4), ('ISIC-2017_Validation_Data',
              'ISIC-2017_Validation_Part1_GroundTruth', 1000, 2),
        ('ISIC-2017_Test_v2_Data', 'ISIC-2017_Test_v2_Part1_GroundTruth', 2000,
         2)):
        stems = [f'ISIC_{i:07d}' for i in range(first, first + n)]
        fake_pairs(
            root,
            img_dir,
            mask_dir,
            stems,
            img_ext='.jpg',
            mask_fmt='{}_segmentation.png')
        # the official image folders also hold superpixels and metadata
        for stem in stems:
            cv2.imwrite(
                osp.join(root, img_dir, stem + '_superpixels.png'),
                np.zeros((12, 16, 3), np.uint8))
        with open(osp.join(root, img_dir, img_dir + '_metadata.csv'),
                  'w') as f:
            f.write('image_id,age_approximate,sex\n')


def fake_istd(root):
    for split, n in (('train', 10), ('test', 2)):
        stems = [f'{i}-{j}' for i in range(1, n + 1) for j in (1, )]
        fake_pairs(root, f'{split}/{split}_A', f'{split}/{split}_B', stems)
        fake_pairs(root, f'{split}/{split}_C', f'{split}/{split}_B', stems)


def fake_leaf_disease(root):
    fake_pairs(
        root,
        'data/data/images',
        'data/data/masks', [f'{i:05d}_{j}' for i in range(10) for j in (0, 1)],
        img_ext='.jpg')
    fake_pairs(
        root,
        'aug_data/aug_data/images',
        'aug_data/aug_data/masks', ['aug_0'],
        img_ext='.jpg')


def fake_mass_roads_toronto(root):
    for split in ('train', 'valid', 'test'):
        fake_pairs(
            root,
            f'{split}/sat',
            f'{split}/map', [f'1{split[:2]}0000_15', f'2{split[:2]}0000_15'],
            img_ext='.tiff',
            mask_fmt='{}.tif')


def fake_mass_roads_kaggle(root):
    for split in ('train', 'val', 'test'):
        fake_pairs(
            root,
            f'tiff/{split}',
            f'tiff/{split}_labels', [f'1{split}_15', f'2{split}_15'],
            img_ext='.tiff',
            mask_fmt='{}.tif')
    os.makedirs(osp.join(root, 'png', 'train'))


# converter, fake, dataset base config, {split folder: number of images}
CASES = {
    'polyp': ('docs:data/polyp', fake_polyp, 'polyp', {
        'train': 18,
        'val': 2,
        'test/Kvasir': 2,
        'test/CVC-ClinicDB': 2,
        'test/CVC-ColonDB': 2,
        'test/ETIS-LaribPolypDB': 2,
        'test/CVC-300': 2
    }),
    'camouflage': ('docs:data/camouflage', fake_camouflage, 'camouflage', {
        'train': 9,
        'val': 1,
        'test/CAMO': 2,
        'test/COD10K': 2,
        'test/CHAMELEON': 2
    }),
    'isic2017': ('isic2017', fake_isic2017, 'isic2017', {
        'train': 4,
        'val': 2,
        'test': 2
    }),
    'istd': ('istd', fake_istd, 'istd', {
        'train': 9,
        'val': 1,
        'test': 2
    }),
    'leaf_disease': ('leaf_disease', fake_leaf_disease, 'leaf_disease', {
        'train': 15,
        'val': 2,
        'test': 3
    }),
    'mass_roads-toronto':
    ('mass_roads', fake_mass_roads_toronto, 'mass_roads', {
        'train': 2,
        'val': 2,
        'test': 2
    }),
    'mass_roads-kaggle': ('mass_roads', fake_mass_roads_kaggle, 'mass_roads', {
        'train': 2,
        'val': 2,
        'test': 2
    }),
}


def config_datasets(base, data_root):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', base + '.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for loader in [cfg[key]] + list(cfg[key].get('extra_sets', [])):
            ds = dict(
                loader['dataset'], data_root=data_root, serialize_data=False)
            yield key, DATASETS.build(ds)


@pytest.mark.parametrize('case', sorted(CASES))
def test_converter_writes_config_layout(case, tmp_path, capsys):
    name, make_fake, base, expected = CASES[case]
    src, out = str(tmp_path / 'download'), str(tmp_path / 'out')
    make_fake(src)
    convert(name, src, out)
    printed = capsys.readouterr().out
    for split, num in expected.items():
        images = sorted(os.listdir(osp.join(out, split, 'images')))
        masks = sorted(os.listdir(osp.join(out, split, 'masks')))
        assert len(images) == len(masks) == num, (split, images, masks)
        assert f'{split}: {num} images copied' in printed
        with open(osp.join(out, 'splits',
                           split.replace('/', '_') + '.txt')) as f:
            assert len(f.read().split()) == num
    # train and val never share an image
    if 'val' in expected:
        train = set(os.listdir(osp.join(out, 'train', 'images')))
        assert not train & set(os.listdir(osp.join(out, 'val', 'images')))
    # the configs read exactly this: every dataset builds, and a sample
    # loads through the config's pipeline with 0/1 labels
    sizes = {}
    for key, dataset in config_datasets(base, out):
        sizes.setdefault(key, 0)
        sizes[key] += len(dataset)
        sample = dataset[0]
        labels = set(np.unique(sample['data_samples'].gt_sem_seg.data))
        assert labels == {0, 1}, (key, labels)
        assert sample['inputs'].shape == (3, 1024, 1024)
    test_total = sum(n for s, n in expected.items() if s.startswith('test'))
    assert sizes == dict(
        train_dataloader=expected['train'],
        val_dataloader=expected['val'],
        test_dataloader=test_total)


def test_isic_ignores_superpixels_and_renames_masks(tmp_path):
    src, out = str(tmp_path / 'download'), str(tmp_path / 'out')
    fake_isic2017(src)
    load_converter('isic2017').main([src, '--out', out])
    assert sorted(os.listdir(osp.join(
        out, 'val', 'images'))) == ['ISIC_0001000.jpg', 'ISIC_0001001.jpg']
    assert sorted(os.listdir(osp.join(
        out, 'val', 'masks'))) == ['ISIC_0001000.png', 'ISIC_0001001.png']


def test_mass_roads_keeps_tiff(tmp_path):
    src, out = str(tmp_path / 'download'), str(tmp_path / 'out')
    fake_mass_roads_toronto(src)
    load_converter('mass_roads').main([src, '--out', out, '--symlink'])
    img = osp.join(out, 'test', 'images', '1te0000_15.tiff')
    mask = osp.join(out, 'test', 'masks', '1te0000_15.tif')
    assert osp.islink(img) and osp.islink(mask)
    assert cv2.imread(img).shape == (12, 16, 3)
    assert set(np.unique(cv2.imread(mask, cv2.IMREAD_UNCHANGED))) == {0, 255}


def test_random_split_is_seeded(tmp_path):
    src = str(tmp_path / 'download')
    fake_istd(src)
    istd = load_converter('istd')
    vals = []
    for run, seed in (('a', 0), ('b', 0), ('c', 1)):
        out = str(tmp_path / run)
        istd.main([src, '--out', out, '--seed',
                   str(seed)] + ['--val-fraction', '0.5'])
        with open(osp.join(out, 'splits', 'val.txt')) as f:
            vals.append(f.read().split())
    assert vals[0] == vals[1] and len(vals[0]) == 5
    assert vals[0] != vals[2]


def test_polyp_command_keeps_the_former_converters_val_split(tmp_path):
    """The docs' command holds out the images the removed polyp.py did:
    ``round(0.1 * n)`` drawn from ``np.random.RandomState(0)``'s
    permutation of the stem-sorted training images."""
    src, out = str(tmp_path / 'download'), str(tmp_path / 'out')
    fake_polyp(src)
    fake_pairs(src, 'TrainDataset/image', 'TrainDataset/mask',
               [f'x{i:02d}' for i in range(30)])
    convert('docs:data/polyp', src, out)
    stems = sorted(
        osp.splitext(name)[0]
        for name in os.listdir(osp.join(src, 'TrainDataset', 'image')))
    picked = np.random.RandomState(0).permutation(len(stems))[:5]
    with open(osp.join(out, 'splits', 'val.txt')) as f:
        val = f.read().split()
    assert val == ['PraNet_' + stems[i] for i in sorted(picked)]
    assert len(stems) == 50


@pytest.mark.parametrize(
    'case', sorted(c for c in CASES if not CASES[c][0].startswith('docs:')))
def test_converter_refuses_other_folder(case, tmp_path):
    name = CASES[case][0]
    wrong = str(tmp_path / 'not_it')
    # another dataset's download, or an empty folder
    other = 'istd' if name != 'istd' else 'polyp'
    if name.startswith('docs:'):
        return
    CASES[other][1](wrong)
    with pytest.raises(layout_error(), match='does not look like'):
        load_converter(name).main([wrong, '--out', str(tmp_path / 'o')])
    assert not osp.exists(tmp_path / 'o')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(layout_error(), match='does not look like'):
        load_converter(name).main([str(empty), '--out', str(tmp_path / 'o')])


def test_refusal_names_missing_entries(tmp_path):
    src = str(tmp_path / 'download')
    fake_isic2017(src)
    import shutil
    shutil.rmtree(osp.join(src, 'ISIC-2017_Test_v2_Part1_GroundTruth'))
    with pytest.raises(layout_error()) as err:
        load_converter('isic2017').main([src, '--out', str(tmp_path / 'o')])
    msg = str(err.value)
    assert "'ISIC-2017_Test_v2_Part1_GroundTruth'" in msg
    assert 'Training_Data' not in msg.split('(found')[0]
    assert 'challenge.isic-archive.com' in msg


def test_docs_command_refuses_a_missing_test_set(tmp_path):
    src = str(tmp_path / 'download')
    fake_polyp(src)
    import shutil
    shutil.rmtree(osp.join(src, 'TestDataset', 'ETIS-LaribPolypDB'))
    with pytest.raises(layout_error(), match='ETIS-LaribPolypDB'):
        convert('docs:data/polyp', src, str(tmp_path / 'o'))
    shutil.rmtree(osp.join(src, 'TrainDataset', 'mask'))
    with pytest.raises(layout_error(), match="'PraNet'.*TrainDataset/mask"):
        convert('docs:data/polyp', src, str(tmp_path / 'o'))
    assert not osp.exists(tmp_path / 'o')


def test_missing_mask_and_existing_output_are_refused(tmp_path):
    src, out = str(tmp_path / 'download'), str(tmp_path / 'out')
    fake_istd(src)
    os.remove(osp.join(src, 'test', 'test_B', '1-1.png'))
    istd = load_converter('istd')
    with pytest.raises(layout_error(), match='have no mask'):
        istd.main([src, '--out', out])
    fake_istd(src)
    istd.main([src, '--out', out])
    with pytest.raises(layout_error(), match='--overwrite'):
        istd.main([src, '--out', out])
    istd.main([src, '--out', out, '--overwrite'])
    assert len(os.listdir(osp.join(out, 'test', 'images'))) == 2


def test_cli_prints_error_and_exits_1(tmp_path):
    proc = run_tool([
        osp.join(CONVERTERS, 'istd.py'),
        str(tmp_path), '--out',
        str(tmp_path / 'out')
    ])
    assert proc.returncode == 1
    assert proc.stderr.startswith('error: ')
    assert "'train/train_A'" in proc.stderr
    assert 'Traceback' not in proc.stderr
