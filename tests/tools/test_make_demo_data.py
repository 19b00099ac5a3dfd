"""The demo configs build their data and tiny SAM when missing."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

from tools.make_demo_data import build_missing_demo_data
from helpers import REPO, run_tool


@pytest.mark.parametrize('name,task', [('tiny_shadow', 'shadow'),
                                       ('tiny_multiclass', 'multiclass')])
def test_missing_demo_data_is_built_once(name, task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs' data_root is relative
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{name}.py'))
    built = build_missing_demo_data(cfg)
    root = f'data/demo_{task}'
    assert built == [f'the {task} demo dataset and tiny SAM in {root}']
    assert len(os.listdir(osp.join(root, 'train', 'images'))) == 32
    assert len(os.listdir(osp.join(root, 'val', 'masks'))) == 8
    assert osp.isfile(cfg.model.sam_checkpoint)
    assert build_missing_demo_data(cfg) == []  # nothing missing any more


def test_other_configs_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'convlora', 'sbu.py'))
    assert build_missing_demo_data(cfg) == []
    assert not osp.exists('data')


@pytest.mark.slow
def test_train_demo_in_one_command(tmp_path):
    """A fresh checkout: tools/train.py alone builds data and SAM, trains
    (1 epoch here) and validates."""
    proc = run_tool([
        osp.join(REPO, 'tools', 'train.py'),
        osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py'), '--cfg-options',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'
    ],
                    cwd=str(tmp_path))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Built the shadow demo dataset and tiny SAM in data/demo_shadow' \
        in log
    assert 'BER:' in log
    assert osp.isfile(tmp_path / 'work_dirs' / 'tiny_shadow' / 'epoch_1.pth')
