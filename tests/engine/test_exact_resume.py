"""Kill-and-resume without loss, and checkpoints that survive a failed save.

* A ``tools/train.py`` subprocess (tiny Conv-LoRA: noisy gate, random flips,
  validation in between) is SIGKILLed after its first checkpoint; resumed,
  it ends with weights equal to an uninterrupted run's (ExactResumeHook
  restores the RNG state); likewise an epoch-based run with dataloader
  workers.
* A save that dies half-way leaves the previous checkpoint and the
  ``last_checkpoint`` pointer intact, even with ``max_keep_ckpts=1``, and
  resume picks that checkpoint (SafeCheckpointHook); mmengine's own hook
  would have lost it.
"""
import copy
import os
import os.path as osp
import shutil
import types
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmengine.runner import Runner

import mmseg_convlora.engine.atomic_files as af
import mmseg_convlora.engine.hooks.exact_resume_hook as erh
from mmseg_convlora.engine import atomic_write
from helpers import REPO, demo_cfg_options, demo_config, run_tool

pytestmark = pytest.mark.slow
HERE = osp.dirname(osp.abspath(__file__))
MAX_ITERS = 4


def iter_cfg(cfg, max_iters=MAX_ITERS, val_interval=2, keep=1):
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop',
        max_iters=max_iters,
        val_interval=val_interval)
    cfg.param_scheduler = [
        dict(
            type='PolyLR',
            power=1.0,
            eta_min=0.0,
            begin=0,
            end=max_iters,
            by_epoch=False)
    ]
    cfg.default_hooks.checkpoint = dict(
        type='SafeCheckpointHook',
        by_epoch=False,
        interval=2,
        max_keep_ckpts=keep)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.val_dataloader.dataset.indices = 2
    # a visualizer of its own: mmengine keeps one instance per name per
    # process, and a later in-process Runner would write into this one's dir
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    return cfg


def write_cfg(path, demo_data, kill_at=None):
    cfg = iter_cfg(demo_config(demo_data, 'unused'))
    cfg.custom_imports = dict(
        imports=['mmseg_convlora', 'fault_hooks'], allow_failed_imports=False)
    if kill_at is not None:
        cfg.custom_hooks = list(
            cfg.custom_hooks) + [dict(type='SelfKillHook', at_iter=kill_at)]
    cfg.dump(str(path))
    return str(path)


def test_sigkill_then_resume_equals_uninterrupted_run(demo_data, tmp_path,
                                                      monkeypatch,
                                                      capture_log):
    monkeypatch.setenv('PYTHONPATH',
                       HERE + os.pathsep + os.environ.get('PYTHONPATH', ''))
    work = str(tmp_path / 'work')
    killed = run_tool([
        'tools/train.py',
        write_cfg(tmp_path / 'kill.py', demo_data, kill_at=3), '--work-dir',
        work
    ])
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('iter_2.pth')
    assert not osp.exists(osp.join(work, 'iter_4.pth'))

    # --resume (in this process: the kill above is what needs a process)
    cfg = Config.fromfile(write_cfg(tmp_path / 'resume.py', demo_data))
    cfg.work_dir = work
    cfg.resume = True
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    resumed = Runner.from_cfg(cfg)
    log = capture_log(resumed.logger)
    resumed.train()
    assert 'resumed epoch: 0, iter: 2' in log.text()
    assert 'Restored the RNG state of the checkpoint' in log.text()
    final = {k: v.clone() for k, v in resumed.model.state_dict().items()}

    # the uninterrupted run, same config
    cfg = Config.fromfile(str(tmp_path / 'resume.py'))
    cfg.work_dir = str(tmp_path / 'full')
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    full = Runner.from_cfg(cfg)
    full.train()
    state = full.model.state_dict()
    assert any('experts' in k for k in state) and any('w_gate' in k
                                                      for k in state)
    for key in state:
        assert torch.equal(final[key], state[key]), key


def small_cfg(demo_data, work_dir, safe=True):
    cfg = iter_cfg(
        demo_config(demo_data, work_dir, **{'model.backbone.adapter': None}),
        max_iters=4,
        val_interval=100,
        keep=1)
    if not safe:
        cfg.default_hooks.checkpoint.type = 'CheckpointHook'
    return cfg


def _half_then_fail(f, data):
    f.write(data[:len(data) // 2])
    raise OSError('simulated crash in the middle of a save')


def test_failed_save_keeps_previous_checkpoint_and_resume_uses_it(
        demo_data, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    real_write = af._write_all

    def write(f, data):
        if 'iter_4.pth' in f.name:
            return _half_then_fail(f, data)
        return real_write(f, data)

    monkeypatch.setattr(af, '_write_all', write)
    runner = Runner.from_cfg(small_cfg(demo_data, work))
    with pytest.raises(OSError, match='simulated crash'):
        runner.train()
    monkeypatch.setattr(af, '_write_all', real_write)
    assert sorted(f for f in os.listdir(work)
                  if f.endswith('.pth')) == ['iter_2.pth']
    assert not [f for f in os.listdir(work) if '.tmp-' in f]
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('iter_2.pth')
    ckpt = torch.load(osp.join(work, 'iter_2.pth'), weights_only=True)
    assert ckpt['meta']['iter'] == 2 and 'rng_state' in ckpt

    cfg = small_cfg(demo_data, work)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 4
    assert sorted(f for f in os.listdir(work)
                  if f.endswith('.pth')) == ['iter_4.pth']


def test_mmengine_checkpoint_hook_alone_loses_the_checkpoint(
        demo_data, tmp_path, monkeypatch):
    """Why SafeCheckpointHook exists: with max_keep_ckpts=1 mmengine deletes
    the previous checkpoint before writing the next one in place."""
    work = str(tmp_path / 'work')
    real_put = LocalBackend.put

    def put(self, obj, filepath):
        if str(filepath).endswith('iter_4.pth'):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError('simulated crash in the middle of a save')
        return real_put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)
    runner = Runner.from_cfg(small_cfg(demo_data, work, safe=False))
    with pytest.raises(OSError, match='simulated crash'):
        runner.train()
    assert not osp.exists(osp.join(work, 'iter_2.pth'))  # deleted first
    with pytest.raises(Exception):  # truncated
        torch.load(osp.join(work, 'iter_4.pth'), weights_only=True)


def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    path = str(tmp_path / 'last_checkpoint')
    atomic_write(path, b'work/iter_2.pth')
    monkeypatch.setattr(af, '_write_all', _half_then_fail)
    with pytest.raises(OSError):
        atomic_write(path, b'work/iter_4.pth')
    assert open(path).read() == 'work/iter_2.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint']
    mode = os.stat(path).st_mode & 0o777
    assert mode == af._FILE_MODE


def test_rng_state_round_trip():
    import random

    import numpy as np
    state = erh.get_rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    erh.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]
    erh.set_rng_state(state, torch_only=True)
    assert torch.equal(torch.rand(3), a[0])
    assert not (np.random.rand(3) == a[1]).all()


# ------------------------------------------ dataloader workers (item 13)
def worker_cfg(demo_data, work_dir, persistent=False):
    """Two epochs of 2 iterations, flips drawn in 2 dataloader workers,
    Conv-LoRA's noisy gate, validation after each epoch."""
    cfg = demo_config(demo_data, str(work_dir))
    cfg.train_cfg = dict(
        type='EpochBasedTrainLoop', max_epochs=2, val_interval=1)
    cfg.param_scheduler = [
        dict(
            type='PolyLR',
            power=1.0,
            eta_min=0.0,
            begin=0,
            end=2,
            by_epoch=True,
            convert_to_iter_based=True)
    ]
    cfg.default_hooks.checkpoint = dict(
        type='SafeCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=-1)
    cfg.train_dataloader.update(num_workers=2, persistent_workers=persistent)
    cfg.train_dataloader.dataset.indices = 8
    cfg.val_dataloader.dataset.indices = 2
    return cfg


def test_resume_with_dataloader_workers_is_exact(demo_data, tmp_path):
    """The shipped configs' setting (workers, not persistent): resumed from
    epoch_1.pth (what a kill after epoch 1 leaves), the run ends with the
    uninterrupted run's weights."""
    full = Runner.from_cfg(worker_cfg(demo_data, tmp_path / 'full'))
    full.train()
    work = str(tmp_path / 'resumed')
    os.makedirs(work)
    shutil.copy(osp.join(tmp_path, 'full', 'epoch_1.pth'), work)
    cfg = worker_cfg(demo_data, work)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    state = resumed.model.state_dict()
    assert any('experts' in k for k in state)
    for key, value in full.model.state_dict().items():
        assert torch.equal(state[key], value), key


def epoch_flips(loader, epochs):
    """The flip decision of every sample, per epoch."""
    flips = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        flips.append([
            s.metainfo['flip'] for batch in loader
            for s in batch['data_samples']
        ])
    return flips


@pytest.mark.parametrize('persistent', [False, True])
def test_persistent_workers_restart_the_augmentations(demo_data, tmp_path,
                                                      persistent):
    """Why resume is exact only without persistent workers: a loader
    created for the resumed epoch 2 draws the uninterrupted run's epoch-2
    flips with fresh workers each epoch, but not with persistent ones
    (seeded once; after a resume they start again from the seed)."""
    cfg = worker_cfg(demo_data, tmp_path, persistent)
    loader_cfg = cfg.train_dataloader
    uninterrupted = epoch_flips(
        Runner.build_dataloader(copy.deepcopy(loader_cfg), seed=0), [0, 1])
    resumed = epoch_flips(
        Runner.build_dataloader(copy.deepcopy(loader_cfg), seed=0), [1])
    assert (resumed[0] == uninterrupted[1]) == (not persistent)


def test_resume_with_persistent_workers_warns(demo_data, tmp_path,
                                              capture_log):
    from mmengine.logging import MMLogger
    from mmengine.runner import EpochBasedTrainLoop
    cfg = worker_cfg(demo_data, tmp_path, persistent=True)
    loop = object.__new__(EpochBasedTrainLoop)  # only its loader is read
    loop.dataloader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    logger = MMLogger.get_current_instance()
    log = capture_log(logger)
    runner = types.SimpleNamespace(
        iter=2, epoch=1, seed=0, logger=logger, train_loop=loop)
    erh.ExactResumeHook().before_train(runner)
    assert 'persistent_workers=False for an exact resume' in log.text()


# ------------------------- the best checkpoint after a kill (issue 23, 2)
def best_state(work):
    """The best checkpoint files, the best score and path the last
    checkpoint records, and the best checkpoint's weights."""
    best = sorted(f for f in os.listdir(work) if f.startswith('best_'))
    last = torch.load(osp.join(work, 'epoch_10.pth'), weights_only=True)
    info = last['message_hub']['runtime_info']
    weights = torch.load(
        osp.join(work, best[-1]), weights_only=True)['state_dict']
    return best, info['best_score'], info['best_ckpt'], weights


@pytest.mark.parametrize(
    'name, occurrence', [('best_*', 2), ('epoch_10.pth', 2)],
    ids=['writing_the_new_best', 'saving_epoch_10_after_validation'])
def test_kill_at_the_last_validation_then_resume_keeps_the_true_best(
        trained_demo, demo_data, tmp_path, monkeypatch, name, occurrence):
    """The demo (10 epochs, validation and checkpoint at 5 and 10, epoch
    10 the best) killed while epoch 10's best checkpoint is written, or
    while epoch_10.pth is saved after that validation: resumed, the run
    ends with the uninterrupted run's best checkpoint and score."""
    monkeypatch.setenv('PYTHONPATH',
                       HERE + os.pathsep + os.environ.get('PYTHONPATH', ''))
    demo = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')
    hooks = [dict(h) for h in Config.fromfile(demo).custom_hooks] + [
        dict(type='KillDuringWriteHook', name=name, occurrence=occurrence)
    ]
    config = tmp_path / 'kill.py'
    config.write_text(f'_base_ = [{demo!r}]\n'
                      "custom_imports = dict(imports=['mmseg_convlora', "
                      "'fault_hooks'], allow_failed_imports=False)\n"
                      f'custom_hooks = {hooks!r}\n')
    work = str(tmp_path / 'work')
    options = ['--work-dir', work, '--cfg-options'] + \
        demo_cfg_options(demo_data)
    killed = run_tool(['tools/train.py', str(config)] + options)
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = run_tool(['tools/train.py', demo, '--resume'] + options)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    best, score, path, weights = best_state(work)
    ref_best, ref_score, ref_path, ref_weights = best_state(trained_demo[0])
    assert ref_best == ['best_BER_epoch_10.pth']  # the premise
    assert (best, score, path) == (ref_best, ref_score, ref_path)
    assert weights.keys() == ref_weights.keys()
    for key in weights:
        assert torch.equal(weights[key], ref_weights[key]), key
