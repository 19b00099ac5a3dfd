"""Real Runner training and the real tools/train.py and tools/test.py."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from mmseg_convlora.testing import (REPO, demo_cfg_options, demo_config,
                                    run_tool)

pytestmark = pytest.mark.slow


def losses_from_log(work_dir):
    path = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))[0]
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [r['loss'] for r in rows if 'loss' in r]


def test_runner_trains_demo_and_keeps_frozen_weights(demo_data, tmp_path):
    cfg = demo_config(demo_data, str(tmp_path / 'work'))
    runner = Runner.from_cfg(cfg)
    model = runner.model
    frozen = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if not p.requires_grad
    }
    frozen.update({n: b.clone() for n, b in model.named_buffers()})
    trainable = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }
    runner.train()
    for name, before in frozen.items():
        after = dict(model.named_parameters()).get(name)
        if after is None:
            after = dict(model.named_buffers())[name]
        assert torch.equal(before, after), f'{name} changed'
    moved = [n for n, p in model.named_parameters()
             if p.requires_grad and not torch.equal(trainable[n], p)]
    assert len(moved) == len(trainable)
    losses = losses_from_log(cfg.work_dir)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    # checkpoints hold only what training changed
    ckpt = torch.load(osp.join(cfg.work_dir, 'epoch_10.pth'),
                      weights_only=True)
    assert set(ckpt['state_dict']) >= set(trainable)
    assert not any(k.startswith('backbone.encoder.blocks.0.mlp')
                   for k in ckpt['state_dict'])


def test_tools_train_then_test_prints_ber(demo_data, tmp_path):
    work = str(tmp_path / 'work')
    opts = demo_cfg_options(demo_data)
    train = run_tool(['tools/train.py', 'configs/demo/tiny_shadow.py',
                      '--work-dir', work, '--cfg-options'] + opts)
    assert train.returncode == 0, train.stderr[-3000:]
    best = glob.glob(osp.join(work, 'best_BER_*.pth'))
    assert len(best) == 1
    out_dir = str(tmp_path / 'preds')
    test = run_tool(['tools/test.py', 'configs/demo/tiny_shadow.py', best[0],
                     '--work-dir', str(tmp_path / 'test'), '--out', out_dir,
                     '--cfg-options'] + opts)
    assert test.returncode == 0, test.stderr[-3000:]
    log = test.stdout + test.stderr
    assert 'BER:' in log
    ber = float(log.split('BER:')[1].split()[0])
    assert 0 <= ber < 25  # far better than chance (50) on the demo task
    assert len(glob.glob(osp.join(out_dir, '*.png'))) == 8


def iter_cfg(demo_data, work_dir, max_iters=4):
    cfg = demo_config(
        demo_data, work_dir,
        **{'model.backbone.adapter': None})
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=1000)
    cfg.param_scheduler = [dict(type='PolyLR', power=1.0, eta_min=0.0,
                                begin=0, end=max_iters, by_epoch=False)]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=2,
        max_keep_ckpts=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    loader = cfg.train_dataloader
    loader.sampler = dict(type='InfiniteSampler', shuffle=False)
    # deterministic pipeline: no random flip
    loader.dataset.pipeline = [
        t for t in loader.dataset.pipeline if t['type'] != 'RandomFlip'
    ]
    return cfg


def test_resume_continues_with_optimizer_state(demo_data, tmp_path):
    full = Runner.from_cfg(iter_cfg(demo_data, str(tmp_path / 'full')))
    full.train()
    ckpt2 = osp.join(full.work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt2)

    cfg = iter_cfg(demo_data, str(tmp_path / 'resumed'))
    cfg.resume = True
    cfg.load_from = ckpt2
    resumed = Runner.from_cfg(cfg)
    started = {}

    from mmengine.hooks import Hook

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
    a = full.model.state_dict()
    b = resumed.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    opt_a = full.optim_wrapper.optimizer.state_dict()['state']
    opt_b = resumed.optim_wrapper.optimizer.state_dict()['state']
    for idx in opt_a:
        assert torch.equal(opt_a[idx]['exp_avg'], opt_b[idx]['exp_avg'])


@pytest.mark.parametrize('adapter', [
    "dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)",
    "dict(type='LoRA', rank=3, alpha=32)",
    "dict(type='CAD', channels=32, input_size=64)",
])
def test_tools_train_each_method_end_to_end(adapter, demo_data, tmp_path):
    # a user's config: the demo with another adapter
    cfg_path = tmp_path / 'method.py'
    demo = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')
    cfg_path.write_text(
        f'_base_ = [{demo!r}]\n'
        f'model = dict(backbone=dict(adapter=dict(_delete_=True, '
        f'**{adapter})))\n')
    work = str(tmp_path / 'work')
    opts = demo_cfg_options(demo_data) + [
        'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=2'
    ]
    train = run_tool(['tools/train.py', str(cfg_path), '--work-dir', work,
                      '--cfg-options'] + opts)
    assert train.returncode == 0, train.stderr[-3000:]
    log = train.stdout + train.stderr
    assert 'BER:' in log
    assert ('loss_moe' in log) == ('ConvLoRA' in adapter)
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))


def test_mmseg_own_train_tool_runs_our_config(demo_data, tmp_path):
    """custom_imports in the configs is enough for mmseg's tools/train.py."""
    import mmseg
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    if not osp.isfile(tool):
        pytest.skip('this mmseg install ships no tools/')
    work = str(tmp_path / 'work')
    opts = demo_cfg_options(demo_data) + [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'param_scheduler.0.end=1'
    ]
    proc = run_tool([tool, 'configs/demo/tiny_shadow.py', '--work-dir', work,
                     '--cfg-options'] + opts)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'BER:' in proc.stdout + proc.stderr
