"""docs/own_data.md's "Train on your own data", command by command:
MobileSAM at 256 px on a folder of photos whose masks are a smaller copy
(tiny stand-ins for the photos and for checkpoints/mobile_sam.pt)."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest

from helpers import (REPO, TINY_DECODER, TINY_EMBED_DIM, TINY_TINY_VIT,
                     load_tool, save_tiny_mobile_sam_checkpoint)

pytestmark = pytest.mark.slow


def write_photos(folder, n=10):
    """``n`` 96x64 JPEG photos of a bright disc, with 0/255 masks at half
    the size (48x32: the same aspect ratio)."""
    rng = np.random.default_rng(0)
    (folder / 'images').mkdir(parents=True)
    (folder / 'masks').mkdir()
    for i in range(n):
        mask = np.zeros((64, 96), np.uint8)
        cv2.circle(mask, (int(rng.integers(24, 72)), 32), 14, 255, -1)
        photo = rng.integers(0, 90, (64, 96, 3), dtype=np.uint8)
        photo[mask > 0] += 120
        cv2.imwrite(str(folder / 'images' / f'photo_{i}.jpg'), photo)
        small = cv2.resize(mask, (48, 32), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / 'masks' / f'photo_{i}.png'), small)


def my_config(tmp_path, data):
    """``cp configs/custom/binary_dataset_mobile-sam.py my_dataset.py`` and
    its data block edited as the docs say; a child config of it swaps the
    MobileSAM weights for the tiny stand-in (the only difference)."""
    text = open(
        osp.join(REPO, 'configs', 'custom',
                 'binary_dataset_mobile-sam.py')).read()
    text = text.replace("'../_base_/", f"'{REPO}/configs/_base_/")
    block = ("data_root = 'data/my_dataset'",
             "split_folders = dict(train='train', val='val', test='val')")
    assert all(line in text for line in block)
    text = text.replace(block[0], f'data_root = {str(data)!r}').replace(
        block[1], "split_folders = dict(train='train', val='val', "
        "test='test/mine')")
    (tmp_path / 'my_dataset.py').write_text(text)
    weights = str(tmp_path / 'tiny_mobile_sam.pth')
    save_tiny_mobile_sam_checkpoint(weights, img_size=256)
    stand_in = tmp_path / 'my_dataset_tiny.py'
    stand_in.write_text(
        "_base_ = ['my_dataset.py']\n"
        f'model = dict(sam_checkpoint={weights!r}, backbone=dict(arch=dict('
        f'_delete_=True, **{TINY_TINY_VIT!r}), out_channels='
        f'{TINY_EMBED_DIM}), decode_head='
        f'dict(embed_dim={TINY_EMBED_DIM}, decoder={TINY_DECODER!r}))\n')
    return str(stand_in)


def test_own_photos_on_mobile_sam(tmp_path, capsys, train_tool, eval_tool):
    photos, data = tmp_path / 'photos', tmp_path / 'my_dataset'
    write_photos(photos)
    # the masks do not fit: listed, and the fix suggested
    converter = load_tool('dataset_converters', 'image_mask_folders.py')
    with pytest.raises(converter.LayoutError) as exc:
        converter.main([f'mine={photos}', '--out', str(data)])
    assert "10 of 10 masks of 'mine' cannot be converted" in str(exc.value)
    assert '--resize-masks nearest resizes those' in str(exc.value)
    assert not data.exists()
    converter.main(
        [f'mine={photos}', '--out',
         str(data), '--resize-masks', 'nearest'])
    assert 'mine: 10 masks resized (nearest)' in capsys.readouterr().out
    for path in glob.glob(str(data / '*' / 'masks' / '*.png')) + glob.glob(
            str(data / 'test' / 'mine' / 'masks' / '*.png')):
        assert cv2.imread(path, cv2.IMREAD_UNCHANGED).shape == (64, 96)
    config = my_config(tmp_path, data)

    # a trial: 2 iterations, validation, checkpoints
    log = train_tool.run(
        [config, '--trial', '2', '--work-dir',
         str(tmp_path / 'trial')])
    assert 'Data: train 7 images, val 1' in log
    assert 'Epoch(train) [1][2/2]' in log and 'IoU:' in log
    assert osp.isfile(tmp_path / 'trial' / 'epoch_1.pth')

    # train (1 epoch here) and test on the test set of the source
    work = str(tmp_path / 'work')
    log = train_tool.run([
        config, '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1'
    ])
    assert 'Epoch(train) [1][2/2]' in log and 'IoU:' in log
    (best, ) = glob.glob(osp.join(work, 'best_IoU_epoch_*.pth'))
    log = eval_tool.run([config, best, '--work-dir', str(tmp_path / 'test')])
    assert 'Data: test 2 images' in log and 'IoU:' in log

    # and predict masks for new photos
    out = str(tmp_path / 'preds')
    load_tool('infer.py').main(
        [config, best, str(photos / 'images'), '--out', out])
    masks = sorted(glob.glob(osp.join(out, 'masks', '*.png')))
    assert len(masks) == 10
    assert cv2.imread(masks[0], cv2.IMREAD_UNCHANGED).shape == (64, 96)
