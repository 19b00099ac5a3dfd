"""tools/train.py --trial N: N training iterations, validation on at most
N batches, checkpoints saved."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tools.config_checks import ConfigError, check_config
from tools.config_overrides import apply_overrides
from helpers import REPO, demo_cfg_options


def config(path):
    return Config.fromfile(osp.join(REPO, path))


def test_trial_reads_n_batches_in_one_epoch():
    cfg = config('configs/custom/binary_dataset_mobile-sam.py')
    notes = apply_overrides(cfg, trial=3)
    assert cfg.train_cfg.max_epochs == 1 and cfg.train_cfg.val_interval == 1
    assert cfg.param_scheduler[0]['end'] == 1  # the LR decays to 0 in it
    assert cfg.train_dataloader.dataset.indices == 3 * 4  # batch 4
    assert cfg.val_dataloader.dataset.indices == 3 * 4
    assert 'indices' not in cfg.test_dataloader.dataset
    assert notes[-1] == ('trial: 3 training iteration(s), validation on at '
                         'most 3 batch(es)')
    check_config(cfg)


def test_trial_of_an_iteration_based_config():
    cfg = config('configs/sam_multiclass/convlora_sam-vit-b_ade20k-512x512.py')
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    apply_overrides(cfg, trial=2)
    assert cfg.train_cfg.max_iters == 2 and cfg.train_cfg.val_interval == 2
    assert 'indices' not in cfg.train_dataloader.dataset
    assert cfg.val_dataloader.dataset.indices == 2


def test_trial_refuses_a_dataset_wrapper():
    cfg = config('configs/demo/tiny_shadow.py')
    cfg.train_dataloader.dataset = dict(
        type='RepeatDataset', times=2, dataset=cfg.train_dataloader.dataset)
    with pytest.raises(
            ConfigError, match='RepeatDataset, which takes no '
            'indices'):
        apply_overrides(cfg, trial=1)


@pytest.mark.slow
def test_trial_run_stops_validates_and_saves(demo_data, tmp_path, train_tool):
    work = str(tmp_path / 'work')
    log = train_tool.run([
        osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py'), '--trial', '1',
        '--work-dir', work, '--cfg-options'
    ] + demo_cfg_options(demo_data))
    assert 'Epoch(train) [1][1/1]' in log and '[1][2/' not in log
    assert 'Epoch(val) [1][1/1]' in log and 'BER:' in log
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=False)
    assert ckpt['meta']['iter'] == 1 and ckpt['meta']['epoch'] == 1
    assert osp.isfile(osp.join(work, 'best_BER_epoch_1.pth'))
