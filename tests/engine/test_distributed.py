"""DDP with 2 processes on the gloo backend (CPU), through
``tools/dist_train.sh``: a tiny Conv-LoRA and a tiny CAD model train and
validate, the two ranks end with identical weights (CAD's BatchNorm
statistics included, i.e. SyncBN), and validation sees every image exactly
once although the sampler pads the odd-sized val set."""
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import uuid

import pytest
import torch
from mmengine.config import Config

from mmseg_convlora.engine.distributed import (CPUSyncBatchNorm,
                                               SAMDistributedDataParallel,
                                               needs_find_unused_parameters)
from helpers import REPO, tiny_model_cfg

pytestmark = pytest.mark.slow
HERE = osp.dirname(osp.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_dist(args, env_extra=None):
    env = dict(os.environ)
    env['PYTHONPATH'] = HERE + os.pathsep + env.get('PYTHONPATH', '')
    env['PORT'] = str(free_port())
    env['OMP_NUM_THREADS'] = '1'
    env.update(env_extra or {})
    return subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True)


@pytest.fixture(scope='module')
def odd_demo(demo_data, tmp_path_factory):
    """The demo data with 7 validation images (2 ranks: one is padded)."""
    root = str(tmp_path_factory.mktemp('ddp') / 'demo')
    shutil.copytree(demo_data, root)
    name = sorted(os.listdir(osp.join(root, 'val', 'images')))[-1]
    os.remove(osp.join(root, 'val', 'images', name))
    os.remove(osp.join(root, 'val', 'masks', osp.splitext(name)[0] + '.png'))
    return root


ADAPTERS = {
    'convlora': "dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)",
    'cad': "dict(type='CAD', channels=32, input_size=64)",
}


def write_config(tmp_path, data_root, adapter):
    demo = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')
    base_hooks = [dict(h) for h in Config.fromfile(demo).custom_hooks]
    hooks = list(base_hooks) + [
        dict(type='DumpRankStateHook', out_dir=str(tmp_path / 'ranks'))
    ]
    path = tmp_path / 'ddp.py'
    path.write_text(
        f'_base_ = [{demo!r}]\n'
        f'data_root = {data_root!r}\n'
        f'model = dict(sam_checkpoint={data_root!r} + "/tiny_sam.pth", '
        f'backbone=dict(adapter=dict(_delete_=True, **{ADAPTERS[adapter]})))\n'
        'train_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'val_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'test_dataloader = val_dataloader\n'
        'train_cfg = dict(max_epochs=1, val_interval=1)\n'
        'param_scheduler = [dict(type="PolyLR", power=1.0, eta_min=0.0, '
        'begin=0, end=1, by_epoch=True)]\n'
        'val_evaluator = [dict(type="BERMetric"), dict(type='
        f'"RecordSamplesMetric", out_file={str(tmp_path / "seen.json")!r})]\n'
        'default_hooks = dict(checkpoint=dict(save_best=None))\n'
        'custom_imports = dict(imports=["mmseg_convlora", "fault_hooks"], '
        'allow_failed_imports=False)\n'
        f'custom_hooks = {hooks!r}\n'
        'env_cfg = dict(dist_cfg=dict(backend="gloo"))\n')
    return str(path)


@pytest.mark.parametrize('adapter', ['convlora', 'cad'])
def test_ddp_two_gloo_processes_identical_weights(adapter, odd_demo, tmp_path):
    cfg = write_config(tmp_path, odd_demo, adapter)
    work = str(tmp_path / 'work')
    proc = run_dist(
        ['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # 32 training images, 2 ranks x batch 4: 4 iterations per rank
    assert 'Epoch(train) [1][4/4]' in log
    if adapter == 'convlora':
        assert 'find_unused_parameters=True' in log  # grouped on CPU
        assert 'loss_moe' in log
    else:
        assert 'find_unused_parameters=False' in log
        assert '3 BatchNorm layers synchronised' in log

    r0 = torch.load(
        osp.join(tmp_path, 'ranks', 'rank0.pth'), weights_only=True)
    r1 = torch.load(
        osp.join(tmp_path, 'ranks', 'rank1.pth'), weights_only=True)
    assert r0.keys() == r1.keys()
    for key in r0:
        assert torch.equal(r0[key], r1[key]), f'{key} differs across ranks'
    if adapter == 'cad':
        stats = [k for k in r0 if k.endswith('running_mean')]
        assert len(stats) == 3 and all(r0[k].abs().sum() > 0 for k in stats)
    # the checkpoint written by rank 0 holds the same trained weights
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=True)
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(value, r0[key]), key

    # evaluation: 7 images on 2 ranks (4 + 4, one padded), each once
    assert 'num_samples: 7' in log and 'num_unique: 7' in log
    seen = json.load(open(tmp_path / 'seen.json'))
    assert len(seen) == len(set(seen)) == 7
    assert 'BER:' in log


def test_wrapper_decides_unused_parameters_and_sync_bn(tiny_sam_file):
    from mmseg.registry import MODELS
    grouped = MODELS.build(
        tiny_model_cfg(
            tiny_sam_file[0],
            adapter=dict(type='ConvLoRA', dispatch='grouped')))
    dense = MODELS.build(
        tiny_model_cfg(
            tiny_sam_file[0], adapter=dict(type='ConvLoRA', dispatch='dense')))
    auto = MODELS.build(
        tiny_model_cfg(tiny_sam_file[0], adapter=dict(type='ConvLoRA')))
    lora = MODELS.build(
        tiny_model_cfg(tiny_sam_file[0], adapter=dict(type='LoRA')))
    assert needs_find_unused_parameters(grouped, 'cuda')
    assert not needs_find_unused_parameters(dense, 'cpu')
    assert needs_find_unused_parameters(auto, 'cpu')
    assert not needs_find_unused_parameters(auto, 'cuda')  # dense on CUDA
    assert not needs_find_unused_parameters(lora, 'cpu')
    assert issubclass(SAMDistributedDataParallel,
                      torch.nn.parallel.DistributedDataParallel)


@pytest.fixture
def one_process_group(tmp_path):
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize(
    'wrapper', ['MMDistributedDataParallel', 'SAMDistributedDataParallel'])
def test_ddp_wrapper_on_the_cpu(one_process_group, wrapper):
    """mmengine passes device_ids=[LOCAL_RANK], which DDP refuses for a CPU
    model (why the configs use SAMDistributedDataParallel), and the runner's
    sync_bn='torch' gives SyncBatchNorm, which refuses CPU tensors."""
    from mmengine.model import convert_sync_batchnorm
    from mmengine.registry import MODEL_WRAPPERS
    model = convert_sync_batchnorm(
        torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)),
        'torch')
    build = dict(type=wrapper, module=model, device_ids=[0])
    if wrapper == 'MMDistributedDataParallel':
        with pytest.raises(ValueError, match='device_ids'):
            MODEL_WRAPPERS.build(build)
        with pytest.raises(ValueError, match='on GPU'):
            model(torch.randn(2, 3, 4, 4))
        return
    ddp = MODEL_WRAPPERS.build(build)
    assert isinstance(ddp.module[1], CPUSyncBatchNorm)
    assert ddp(torch.randn(2, 3, 4, 4)).shape == (2, 4, 4, 4)


def test_sync_bn_config_reverts_to_bn_when_not_distributed(
        demo_data, tmp_path):
    """``norm_cfg=dict(type='SyncBN')`` in a single-process run: mmengine
    turns the layers back into BatchNorm, and training works."""
    from mmengine.runner import Runner

    from helpers import demo_config
    cfg = demo_config(demo_data, str(tmp_path / 'w'))
    cfg.model.backbone.adapter = dict(
        type='CAD', channels=32, input_size=64, norm_cfg=dict(type='SyncBN'))
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'  # own instance
    runner = Runner.from_cfg(cfg)
    norms = [
        m for m in runner.model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    assert len(norms) == 3
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)


def test_gloo_sync_bn_and_mask_loss_normaliser():
    proc = run_dist([
        'python', '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port',
        str(free_port()),
        osp.join(HERE, 'dist_checks.py')
    ])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for rank in (0, 1):
        assert f'rank {rank}: CPUSyncBatchNorm OK' in out
        assert f'rank {rank}: MaskClassificationLoss normaliser OK' in out


def test_fsdp_flexible_runner_two_gloo_processes(demo_data, tmp_path,
                                                 tiny_sam_file):
    """configs/convlora/sbu_fsdp.py's strategy on the tiny model: FSDP with
    frozen and trainable parameters in the same units trains, clips by the
    global norm, validates, and rank 0 writes a trainable-only checkpoint
    that a plain (non-FSDP) model loads."""
    from mmseg.registry import MODELS

    from mmseg_convlora.engine.hooks import trainable_state_keys
    fsdp = Config.fromfile(
        osp.join(REPO, 'configs', 'convlora', 'sbu_fsdp.py'))
    demo = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')
    path = tmp_path / 'fsdp.py'
    path.write_text(
        f'_base_ = [{demo!r}]\n'
        f'data_root = {demo_data!r}\n'
        f'model = dict(sam_checkpoint={demo_data!r} + "/tiny_sam.pth")\n'
        'train_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'val_dataloader = dict(dataset=dict(data_root=data_root, '
        'indices=4))\n'
        'test_dataloader = val_dataloader\n'
        f'runner_type = {fsdp.runner_type!r}\n'
        f'strategy = {fsdp.strategy.to_dict()!r}\n'
        f'custom_hooks = {[dict(h) for h in fsdp.custom_hooks]!r}\n'
        'train_cfg = dict(max_epochs=1, val_interval=1)\n'
        'param_scheduler = [dict(type="PolyLR", power=1.0, eta_min=0.0, '
        'begin=0, end=1, by_epoch=True)]\n'
        'optim_wrapper = dict(clip_grad=dict(max_norm=0.01, norm_type=2))\n'
        'default_hooks = dict(checkpoint=dict(save_best=None))\n')
    work = str(tmp_path / 'work')
    proc = run_dist(
        ['bash', 'tools/dist_train.sh',
         str(path), '2', '--work-dir', work])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Epoch(train) [1][4/4]' in log and 'BER:' in log
    assert 'clipped by the global norm' in log
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=True)
    model = MODELS.build(
        tiny_model_cfg(
            tiny_sam_file[0],
            adapter=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)))
    assert set(ckpt['state_dict']) == trainable_state_keys(model)
    model.load_state_dict(ckpt['state_dict'], strict=False)
