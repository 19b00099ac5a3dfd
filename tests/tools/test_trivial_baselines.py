"""tools/analysis/trivial_baselines.py against hand-computed values."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from helpers import REPO, load_tool

TOOL = osp.join(REPO, 'tools', 'analysis', 'trivial_baselines.py')


def write_split(root, split, masks):
    for sub in ('images', 'masks'):
        os.makedirs(osp.join(root, split, sub), exist_ok=True)
    for i, mask in enumerate(masks):
        h, w = mask.shape
        assert cv2.imwrite(
            osp.join(root, split, 'images', f'{i}.png'),
            np.full((h, w, 3), 100, np.uint8))
        assert cv2.imwrite(
            osp.join(root, split, 'masks', f'{i}.png'),
            mask.astype(np.uint8) * 255)


@pytest.fixture()
def tiny_dataset(tmp_path):
    root = str(tmp_path / 'data')
    a = np.zeros((8, 8), bool)
    a[:4] = True  # top half
    b = np.zeros((8, 8), bool)
    b[:, :2] = True  # left quarter
    write_split(root, 'train', [a, b])
    write_split(root, 'val', [a])
    t1 = np.zeros((16, 16), bool)
    t1[:4, :4] = True  # 1/16 foreground
    write_split(root, 'test/Kvasir', [t1])
    write_split(root, 'test/CVC-ClinicDB', [b])  # 1/4 foreground
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'decoder_only', 'kvasir-cvc_mobile-sam.py'))
    for loader in [cfg.train_dataloader, cfg.test_dataloader
                   ] + cfg.test_dataloader.extra_sets:
        loader.dataset.data_root = root
    path = str(tmp_path / 'cfg.py')
    cfg.dump(path)
    return path, a, b


def test_mean_mask_and_scores(tiny_dataset, tmp_path, capsys):
    cfg, a, b = tiny_dataset
    tool = load_tool('analysis', 'trivial_baselines.py')
    out = str(tmp_path / 'baselines.json')
    results = tool.main([cfg, '--size', '8', '--out', out])
    # the mean of the two training masks, pixel by pixel
    mean = tool.mean_training_mask(
        Config.fromfile(cfg).train_dataloader.dataset, 8)
    expected = (a.astype(np.float32) + b.astype(np.float32)) / 2
    np.testing.assert_allclose(mean.numpy(), expected, atol=1e-6)
    bg = results['all background']
    # predicting 0 everywhere: MAE is the foreground fraction, Dice 0,
    # pixel accuracy the background fraction
    assert bg['Kvasir/MAE'] == pytest.approx(1 / 16)
    assert bg['CVC-ClinicDB/MAE'] == pytest.approx(1 / 4)
    assert bg['Kvasir/Dice'] == 0 and bg['CVC-ClinicDB/IoU'] == 0
    assert bg['Kvasir/Acc'] == pytest.approx(100 * 15 / 16)
    # the mean mask is 1 in the top-left 4x2 block only (at 8x8); on the
    # CVC test mask b it predicts 8 of b's 16 pixels: IoU 8/16, Dice 2/3
    mm = results['mean training mask']
    assert mm['CVC-ClinicDB/IoU'] == pytest.approx(50.0)
    assert mm['CVC-ClinicDB/Dice'] == pytest.approx(100 * 2 / 3)
    assert os.path.isfile(out)
    printed = capsys.readouterr().out
    assert '| mean training mask | Kvasir |' in printed


def test_multi_class_config_refused(tmp_path):
    tool = load_tool('analysis', 'trivial_baselines.py')
    cfg = osp.join(REPO, 'configs', 'demo', 'tiny_multiclass.py')
    with pytest.raises(SystemExit, match='binary'):
        tool.main([cfg])
