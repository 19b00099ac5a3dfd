"""DatasetSizeHook: the sizes logged, and every split's pairs checked before
training starts (issue 23)."""
import os
import os.path as osp
import re
import shutil

import cv2
import pytest
from mmengine.runner import Runner

from helpers import demo_config


@pytest.mark.parametrize('split', ['val', 'test'])
def test_bad_pair_of_any_split_stops_training_before_it_starts(
        demo_data, tmp_path, capture_log, split):
    """A mask 1 px off in the validation or test set."""
    root = str(tmp_path / 'data')
    shutil.copytree(osp.join(demo_data, 'val'), osp.join(root, split))
    masks = osp.join(root, split, 'masks')
    bad = osp.join(masks, sorted(os.listdir(masks))[0])
    cv2.imwrite(bad, cv2.imread(bad, cv2.IMREAD_UNCHANGED)[:-1])
    work = str(tmp_path / 'work')
    cfg = demo_config(demo_data, work)
    loader = cfg[f'{split}_dataloader']
    loader.dataset.data_root = root
    loader.dataset.data_prefix = dict(
        img_path=f'{split}/images', seg_map_path=f'{split}/masks')
    runner = Runner.from_cfg(cfg)
    log = capture_log(runner.logger)
    with pytest.raises(ValueError, match=re.escape(f'{bad!r} is ')):
        runner.train()
    assert runner.iter == 0
    assert 'Epoch(train)' not in log.text()
    assert not [f for f in os.listdir(work) if f.endswith('.pth')]


def test_sizes_of_every_split_are_logged(demo_data, tmp_path, capture_log):
    cfg = demo_config(demo_data, str(tmp_path / 'work'))
    cfg.train_cfg.max_epochs = 0
    runner = Runner.from_cfg(cfg)
    log = capture_log(runner.logger)
    runner.train()
    assert 'Data: train 32 images, val 8, test 8' in log.text()
