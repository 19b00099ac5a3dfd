"""tools/dataset_converters/image_mask_folders.py: named image/mask folder
pairs -> pooled train/val and one test set per source, masks decoded as the
loader decodes them and written as lossless 0/255 PNGs."""
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

from helpers import REPO, load_tool

TOOL = osp.join(REPO, 'tools', 'dataset_converters', 'image_mask_folders.py')

CONVERTER = load_tool('dataset_converters', 'image_mask_folders.py')


def run_tool(args, capsys):
    """The converter's command line, in this process (fast)."""
    code = CONVERTER.run_cli(CONVERTER.main, args)
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def write_source(root, stems, img_ext='.jpg', jpeg_rgb_masks=True, size=32):
    """Images and masks like the public polyp copies: lossy RGB JPEG masks
    of a foreground square."""
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'masks'), exist_ok=True)
    rng = np.random.default_rng(len(stems))
    for i, stem in enumerate(stems):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        assert cv2.imwrite(osp.join(root, 'images', stem + img_ext), img)
        mask = np.zeros((size, size), np.uint8)
        mask[4:4 + 8 + i % 5, 6:20] = 255
        if jpeg_rgb_masks:
            assert cv2.imwrite(
                osp.join(root, 'masks', stem + '.jpg'), cv2.merge([mask] * 3),
                [cv2.IMWRITE_JPEG_QUALITY, 75])
        else:
            assert cv2.imwrite(osp.join(root, 'masks', stem + '.png'), mask)


@pytest.fixture()
def two_sources(tmp_path):
    a, b = str(tmp_path / 'Kvasir-SEG'), str(tmp_path / 'CVC')
    write_source(a, [f'cju{i:03d}' for i in range(20)])
    write_source(
        b, [str(i) for i in range(1, 11)],
        img_ext='.png',
        jpeg_rgb_masks=False)
    return a, b


def convert(tmp_path, capsys, a, b, *extra):
    out = str(tmp_path / 'out')
    proc = run_tool([
        f'Kvasir={a}', f'CVC-ClinicDB={b}', '--out', out, '--val-fraction',
        '0.1', '--test-fraction', '0.2', *extra
    ], capsys)
    return out, proc


def listing(folder):
    return sorted(os.listdir(folder))


def test_split_sizes_pooling_and_names(tmp_path, two_sources, capsys):
    a, b = two_sources
    out, proc = convert(tmp_path, capsys, a, b)
    assert proc.returncode == 0, proc.stderr
    # per source: round(0.2 n) test, round(0.1 n) val, the rest train
    assert len(listing(osp.join(out, 'test', 'Kvasir', 'images'))) == 4
    assert len(listing(osp.join(out, 'test', 'CVC-ClinicDB', 'images'))) == 2
    train = listing(osp.join(out, 'train', 'images'))
    val = listing(osp.join(out, 'val', 'images'))
    assert len(train) == 14 + 7 and len(val) == 2 + 1
    # pooled parts carry their source in the name; test sets keep the stem
    assert all(n.startswith(('Kvasir_', 'CVC-ClinicDB_')) for n in train)
    assert {osp.splitext(n)[1] for n in train} == {'.jpg', '.png'}
    test_k = {
        osp.splitext(n)[0]
        for n in listing(osp.join(out, 'test', 'Kvasir', 'images'))
    }
    train_k = {
        osp.splitext(n)[0][len('Kvasir_'):]
        for n in train if n.startswith('Kvasir_')
    }
    val_k = {
        osp.splitext(n)[0][len('Kvasir_'):]
        for n in val if n.startswith('Kvasir_')
    }
    # no image is in two splits, none is lost
    assert not (test_k & train_k) and not (test_k & val_k) and \
        not (train_k & val_k)
    assert len(test_k | train_k | val_k) == 20
    for split in ('train', 'val', 'test/Kvasir', 'test/CVC-ClinicDB'):
        stems = [
            osp.splitext(n)[0]
            for n in listing(osp.join(out, split, 'images'))
        ]
        masks = listing(osp.join(out, split, 'masks'))
        assert masks == sorted(s + '.png' for s in stems)


def test_masks_become_binary_pngs_equal_to_the_loaders_reading(
        tmp_path, two_sources, capsys):
    from mmseg_convlora.datasets.transforms.binary_loading import (
        binarize_mask, to_single_channel)
    a, b = two_sources
    out, proc = convert(tmp_path, capsys, a, b)
    assert proc.returncode == 0, proc.stderr
    for name in listing(osp.join(out, 'test', 'Kvasir', 'masks')):
        written = cv2.imread(
            osp.join(out, 'test', 'Kvasir', 'masks', name),
            cv2.IMREAD_UNCHANGED)
        assert written.ndim == 2 and set(np.unique(written)) <= {0, 255}
        src = osp.join(a, 'masks', osp.splitext(name)[0] + '.jpg')
        data = cv2.imread(src, cv2.IMREAD_UNCHANGED)
        assert len(np.unique(data)) > 2  # the source really is lossy
        expected = binarize_mask(to_single_channel(data, src), src) * 255
        np.testing.assert_array_equal(written, expected)


def test_same_seed_same_split_other_seed_other_split(tmp_path, two_sources,
                                                     capsys):
    a, b = two_sources
    first, _ = convert(tmp_path / 'x', capsys, a, b, '--seed', '3')
    again, _ = convert(tmp_path / 'y', capsys, a, b, '--seed', '3')
    other, _ = convert(tmp_path / 'z', capsys, a, b, '--seed', '4')
    test = osp.join('test', 'Kvasir', 'images')
    assert listing(osp.join(first, test)) == listing(osp.join(again, test))
    assert listing(osp.join(first, test)) != listing(osp.join(other, test))


def test_non_binary_mask_refused_with_its_name(tmp_path, two_sources, capsys):
    a, b = two_sources
    bad = osp.join(b, 'masks', '3.png')
    mask = np.zeros((32, 32), np.uint8)
    mask[:10] = 7
    mask[10:20] = 200
    assert cv2.imwrite(bad, mask)
    out, proc = convert(tmp_path, capsys, a, b)
    assert proc.returncode == 1
    assert bad in proc.stderr and 'not a binary mask' in proc.stderr
    assert not osp.exists(osp.join(out, 'train'))  # nothing half-written


def test_size_mismatch_and_missing_mask_refused(tmp_path, two_sources, capsys):
    a, b = two_sources
    small = osp.join(b, 'masks', '4.png')
    assert cv2.imwrite(small, np.zeros((16, 16), np.uint8))
    _, proc = convert(tmp_path / 'x', capsys, a, b)
    assert proc.returncode == 1 and small in proc.stderr
    assert 'same size' in proc.stderr
    os.remove(small)
    _, proc = convert(tmp_path / 'y', capsys, a, b)
    assert proc.returncode == 1 and 'have no mask' in proc.stderr


def test_bad_source_spec_and_layout(tmp_path, two_sources, capsys):
    a, _ = two_sources
    proc = run_tool([a, '--out', str(tmp_path / 'o')], capsys)
    assert proc.returncode == 1 and 'NAME=FOLDER' in proc.stderr
    proc = run_tool([f'X={tmp_path}', '--out', str(tmp_path / 'o')], capsys)
    assert proc.returncode == 1 and "'images'" in proc.stderr


def test_command_line(tmp_path, two_sources):
    a, b = two_sources
    out = str(tmp_path / 'out')
    proc = subprocess.run(
        [sys.executable, TOOL, f'A={a}', f'B={b}', '--out', out],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO))  # this checkout's package
    assert proc.returncode == 0, proc.stderr
    assert 'test/A: 4 images copied' in proc.stdout
    assert sorted(os.listdir(osp.join(out, 'test'))) == ['A', 'B']


def test_config_reads_the_converted_layout(tmp_path, two_sources, capsys):
    a, b = two_sources
    out, proc = convert(tmp_path, capsys, a, b)
    assert proc.returncode == 0, proc.stderr
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'convlora', 'kvasir-cvc_mobile-sam.py'))
    loaders = [cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader
               ] + list(cfg.test_dataloader.extra_sets)
    sizes = []
    for loader in loaders:
        ds_cfg = dict(loader.dataset, data_root=out)
        dataset = DATASETS.build(ds_cfg)
        sample = dataset[0]
        gt = sample['data_samples'].gt_sem_seg.data
        assert set(gt.unique().tolist()) <= {0, 1}
        sizes.append(len(dataset))
    assert sizes == [21, 3, 4, 2]
    assert [ld.name for ld in loaders[2:]] == ['Kvasir', 'CVC-ClinicDB']


# ----------------------------------- masks that do not fit (issue 24 item 4)
def shrink_masks(folder, stems, factor=2):
    """Replace the masks of ``stems`` by a smaller copy (same aspect)."""
    for stem in stems:
        path = osp.join(folder, 'masks', stem + '.png')
        mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        h, w = mask.shape
        assert cv2.imwrite(
            path,
            cv2.resize(
                mask, (w // factor, h // factor),
                interpolation=cv2.INTER_NEAREST))


def test_every_bad_pair_is_listed(tmp_path, two_sources, capsys):
    a, b = two_sources
    shrink_masks(b, ['2', '5', '7'])
    assert cv2.imwrite(
        osp.join(b, 'masks', '9.png'), np.zeros((32, 20),
                                                np.uint8))  # other aspect
    out, proc = convert(tmp_path, capsys, a, b)
    assert proc.returncode == 1
    for stem in ('2', '5', '7', '9'):
        assert osp.join(b, 'masks', stem + '.png') in proc.stderr
    assert '4 of 10' in proc.stderr and '--resize-masks nearest' in \
        proc.stderr
    assert not osp.exists(osp.join(out, 'train'))


def test_resize_masks_nearest_fixes_same_aspect_masks(tmp_path, two_sources,
                                                      capsys):
    a, b = two_sources
    originals = {
        s: cv2.imread(osp.join(b, 'masks', s + '.png'), cv2.IMREAD_UNCHANGED)
        for s in ('2', '5', '7')
    }
    shrink_masks(b, list(originals))
    out, proc = convert(tmp_path, capsys, a, b, '--resize-masks', 'nearest')
    assert proc.returncode == 0, proc.stderr
    assert 'CVC-ClinicDB: 3 masks resized (nearest)' in proc.stdout
    written = {}
    for root, _, files in os.walk(out):
        for f in files:
            if root.endswith('masks') and f.startswith(('CVC-ClinicDB_', '')):
                stem = osp.splitext(f)[0].replace('CVC-ClinicDB_', '')
                if osp.basename(osp.dirname(root)) != 'Kvasir':
                    written[stem] = cv2.imread(osp.join(root, f), 0)
    for stem, mask in originals.items():
        assert written[stem].shape == mask.shape == (32, 32)
        small = cv2.resize(mask, (16, 16), interpolation=cv2.INTER_NEAREST)
        expected = cv2.resize(small, (32, 32), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(written[stem], expected)
    # another aspect ratio is still refused
    assert cv2.imwrite(
        osp.join(b, 'masks', '9.png'), np.zeros((32, 20), np.uint8))
    _, proc = convert(tmp_path / 'again', capsys, a, b, '--resize-masks',
                      'nearest')
    assert proc.returncode == 1 and '9.png' in proc.stderr


# ---------------------------------------- dark foreground (issue 24 item 5)
def test_invert_masks_and_the_coverage_warning(tmp_path, capsys):
    src = str(tmp_path / 'em')
    write_source(src, [f'{i}' for i in range(10)], jpeg_rgb_masks=False)
    for name in os.listdir(osp.join(src, 'masks')):  # membranes stored dark
        path = osp.join(src, 'masks', name)
        assert cv2.imwrite(path, 255 - cv2.imread(path, 0))
    out = str(tmp_path / 'out')
    proc = run_tool([f'EM={src}', '--out', out], capsys)
    assert proc.returncode == 0 and '--invert-masks' in proc.stdout
    proc = run_tool(
        [f'EM={src}', '--out', out, '--overwrite', '--invert-masks'], capsys)
    assert proc.returncode == 0 and '--invert-masks' not in proc.stdout
    name = listing(osp.join(out, 'test', 'EM', 'masks'))[0]
    written = cv2.imread(osp.join(out, 'test', 'EM', 'masks', name), 0)
    source = cv2.imread(osp.join(src, 'masks', name), 0)
    np.testing.assert_array_equal(written, 255 - source)


def test_masks_of_disagreeing_encodings_refused(tmp_path, two_sources, capsys):
    a, b = two_sources
    one = osp.join(b, 'masks', '3.png')
    assert cv2.imwrite(one, (cv2.imread(one, 0) > 0).astype(np.uint8))
    _, proc = convert(tmp_path, capsys, a, b)
    assert proc.returncode == 1 and one in proc.stderr
    assert '--mask-encoding' in proc.stderr
