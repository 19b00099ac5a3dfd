"""A tiny multi-class SAM trains through tools/train.py and tools/test.py."""
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest

from mmseg_convlora.testing import REPO, demo_cfg_options, run_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def multiclass_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo') / 'demo_multiclass')
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'make_demo_data.py'), '--task', 'multiclass',
        '--out', out
    ], check=True, cwd=REPO)
    return out


def test_multiclass_train_and_test(multiclass_data, tmp_path):
    work = str(tmp_path / 'work')
    opts = demo_cfg_options(multiclass_data)
    train = run_tool(['tools/train.py', 'configs/demo/tiny_multiclass.py',
                      '--work-dir', work, '--cfg-options'] + opts)
    assert train.returncode == 0, train.stderr[-3000:]
    log = train.stdout + train.stderr
    assert 'loss_moe' in log
    assert 'Trainable parameters' in log
    mious = [float(m) for m in re.findall(r'mIoU: ([0-9.]+)', log)]
    assert len(mious) == 2
    # chance for 3 classes is 33.3; all-background scores about 27
    assert mious[-1] > 40.0
    best = glob.glob(osp.join(work, 'best_mIoU_*.pth'))
    assert len(best) == 1
    test = run_tool(['tools/test.py', 'configs/demo/tiny_multiclass.py',
                     best[0], '--work-dir', str(tmp_path / 'test'),
                     '--cfg-options'] + opts)
    assert test.returncode == 0, test.stderr[-3000:]
    out = test.stdout + test.stderr
    assert 'per class results' in out
    for name in ('background', 'square', 'disc'):
        assert re.search(rf'\|\s*{name}\s*\|', out), name
    assert 'mIoU' in out and 'mBER' in out
