"""mmseg's own tools/train.py (the installed copy, a fresh interpreter that
imports the plugin only through the config's custom_imports) trains with
CPU mixed precision, writes checkpoints that torch loads with
``weights_only=True`` without any allow-list, and resumes from them."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from helpers import REPO, demo_cfg_options

pytestmark = pytest.mark.slow
DEMO = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')
SHORT = [
    'train_cfg.val_interval=1',
    'default_hooks.checkpoint.interval=1',
    'param_scheduler.0.end=2',
    'train_dataloader.dataset.indices=8',
    'val_dataloader.dataset.indices=2',
    # what mmseg's --amp cannot give on the CPU (docs/faults.md)
    'optim_wrapper.type=CPUAmpOptimWrapper',
    'optim_wrapper.dtype=bfloat16'
]


def test_mmseg_train_tool_amp_checkpoint_and_resume(demo_data, tmp_path):
    import mmseg
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    if not osp.isfile(tool):
        pytest.skip('this mmseg install ships no tools/')
    work = str(tmp_path / 'work')

    # custom_imports finds this checkout's plugin (not an installed one)
    env = dict(os.environ, PYTHONPATH=REPO)

    def train(epochs, *extra):
        proc = subprocess.run(
            [sys.executable, tool, DEMO, '--work-dir', work, *extra] +
            ['--cfg-options'] + demo_cfg_options(demo_data) + SHORT +
            [f'train_cfg.max_epochs={epochs}'],
            cwd=str(tmp_path),
            env=env,
            capture_output=True,
            text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    log = train(1)
    assert 'BER:' in log
    ckpt = osp.join(work, 'epoch_1.pth')
    load = subprocess.run([
        sys.executable, '-c', 'import sys, torch\n'
        'c = torch.load(sys.argv[1], weights_only=True)\n'
        'print(sorted(c), c["message_hub"]["log_scalars"]["train/loss"]'
        '["max_length"])', ckpt
    ],
                          capture_output=True,
                          text=True)
    assert load.returncode == 0, load.stderr[-2000:]
    assert 'mmseg_convlora' not in load.stdout
    assert "'message_hub'" in load.stdout and "'optimizer'" in load.stdout

    log = train(2, '--resume')
    assert 'resumed epoch: 1' in log
    assert 'Epoch(train) [2]' in log
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    assert not osp.exists(ckpt)  # max_keep_ckpts=1, after epoch_2 was safe
