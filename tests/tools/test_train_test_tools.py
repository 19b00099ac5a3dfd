"""Real Runner training and the real tools/train.py and tools/test.py.

The README's demo training (``tools/train.py configs/demo/tiny_shadow.py``,
Conv-LoRA) runs once per session (``trained_demo`` in conftest.py) and
several tests check it; the other runs here are a few iterations long.
"""
import glob
import os.path as osp
import shutil

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmseg_convlora.engine.hooks import trainable_state_keys
from helpers import (REPO, demo_cfg_options, demo_config, losses_from_log,
                     run_tool)

pytestmark = pytest.mark.slow
DEMO = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')


def test_demo_training_learns_and_saves_trainable_weights_only(
        trained_demo, demo_data):
    work, log = trained_demo
    assert 'loss_moe' in log and 'Trainable parameters' in log
    losses = losses_from_log(work)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    # checkpoints hold exactly what training changes, all of it changed
    init_default_scope('mmseg')
    model = MODELS.build(demo_config(demo_data, 'unused').model)
    ckpt = torch.load(osp.join(work, 'epoch_10.pth'), weights_only=True)
    assert set(ckpt['state_dict']) == trainable_state_keys(model)
    initial = model.state_dict()
    params = dict(model.named_parameters())
    for key, value in ckpt['state_dict'].items():
        if key in params:
            assert not torch.equal(value, initial[key]), f'{key} unchanged'


def test_training_changes_trainable_weights_only(iter_config, tmp_path):
    runner = Runner.from_cfg(
        iter_config(
            tmp_path / 'work',
            max_iters=2,
            adapter=dict(type='LoRA', rank=3, alpha=32)))
    model = runner.model
    before = {n: t.detach().clone() for n, t in model.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    runner.train()
    after = model.state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == trainable


def test_tools_test_prints_ber_of_the_trained_demo(trained_demo, demo_data,
                                                   tmp_path):
    work, _ = trained_demo
    best = glob.glob(osp.join(work, 'best_BER_*.pth'))
    assert len(best) == 1
    out_dir = str(tmp_path / 'preds')
    test = run_tool([
        'tools/test.py', DEMO, best[0], '--work-dir',
        str(tmp_path / 'test'), '--out', out_dir, '--cfg-options'
    ] + demo_cfg_options(demo_data))
    assert test.returncode == 0, test.stderr[-3000:]
    log = test.stdout + test.stderr
    ber = float(log.split('BER:')[1].split()[0])
    assert 0 <= ber < 25  # far better than chance (50) on the demo task
    assert len(glob.glob(osp.join(out_dir, '*.png'))) == 8


def test_resume_continues_with_optimizer_state(short_run, iter_config,
                                               tmp_path):
    """Resumed from the shared run's iter_2.pth, the run ends with that
    run's iter_4.pth: weights and Adam moments."""
    work = shutil.copytree(short_run, tmp_path / 'work')
    final = torch.load(osp.join(work, 'iter_4.pth'), weights_only=True)
    cfg = iter_config(work, adapter=None, keep=2, save_best='clock')
    cfg.resume = True
    cfg.load_from = osp.join(work, 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    started = {}

    class RecordStart(Hook):

        def before_train(self, runner):
            started['iter'] = runner.iter
            state = runner.optim_wrapper.optimizer.state
            started['adam_steps'] = [
                int(s['step']) for s in state.values() if 'step' in s
            ]

    resumed.register_hook(RecordStart(), priority='VERY_LOW')
    resumed.train()
    assert started['iter'] == 2  # the next iteration is the 3rd
    assert started['adam_steps'] and set(started['adam_steps']) == {2}
    assert resumed.iter == 4
    state = resumed.model.state_dict()
    for key, value in final['state_dict'].items():
        assert torch.equal(state[key], value), key
    opt = resumed.optim_wrapper.optimizer.state_dict()['state']
    for idx, saved in final['optimizer']['state'].items():
        assert torch.equal(opt[idx]['exp_avg'], saved['exp_avg'])


@pytest.mark.parametrize('adapter', [
    "dict(type='LoRA', rank=3, alpha=32)",
    "dict(type='CAD', channels=32, input_size=64)",
])
def test_tools_train_each_method_end_to_end(adapter, demo_data, tmp_path,
                                            train_tool):
    """A user's config (the demo with another adapter) through
    tools/train.py (Conv-LoRA: the shared demo run)."""
    cfg_path = tmp_path / 'method.py'
    cfg_path.write_text(
        f'_base_ = [{DEMO!r}]\n'
        f'model = dict(backbone=dict(adapter=dict(_delete_=True, '
        f'**{adapter})))\n')
    work = str(tmp_path / 'work')
    log = train_tool.run([str(cfg_path), '--work-dir', work, '--cfg-options'] +
                         demo_cfg_options(demo_data) + SHORT)
    assert 'BER:' in log and 'loss_moe' not in log
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


# one epoch of 2 iterations, validation on 4 images
SHORT = [
    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
    'default_hooks.checkpoint.interval=1', 'param_scheduler.0.end=1',
    'train_dataloader.dataset.indices=8', 'val_dataloader.dataset.indices=4'
]


def test_mmseg_own_train_tool_runs_our_config(demo_data, tmp_path):
    """custom_imports in the configs is enough for mmseg's tools/train.py
    (a fresh interpreter that never imported the plugin itself)."""
    import mmseg
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    if not osp.isfile(tool):
        pytest.skip('this mmseg install ships no tools/')
    work = str(tmp_path / 'work')
    proc = run_tool([tool, DEMO, '--work-dir', work, '--cfg-options'] +
                    demo_cfg_options(demo_data) + SHORT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'BER:' in proc.stdout + proc.stderr
