"""A tiny multi-class SAM learns through tools/train.py and is evaluated by
tools/test.py (both in this process; the longest test of the suite: the
demo's 20 epochs, which the learning check needs)."""
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest

from helpers import REPO, demo_cfg_options

pytestmark = pytest.mark.slow
CONFIG = osp.join(REPO, 'configs', 'demo', 'tiny_multiclass.py')


@pytest.fixture(scope='module')
def multiclass_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo') / 'demo_multiclass')
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'make_demo_data.py'), '--task', 'multiclass',
        '--out', out
    ],
                   check=True,
                   cwd=REPO)
    return out


def test_multiclass_train_and_test(multiclass_data, tmp_path, train_tool,
                                   eval_tool):
    work = str(tmp_path / 'work')
    opts = demo_cfg_options(multiclass_data)
    log = train_tool.run([CONFIG, '--work-dir', work, '--cfg-options'] + opts)
    assert 'loss_moe' in log
    assert 'Trainable parameters' in log
    mious = [float(m) for m in re.findall(r'mIoU: ([0-9.]+)', log)]
    assert len(mious) == 2
    # chance for 3 classes is 33.3; all-background scores about 27
    assert mious[-1] > 40.0
    best = glob.glob(osp.join(work, 'best_mIoU_*.pth'))
    assert len(best) == 1
    out = eval_tool.run([
        CONFIG, best[0], '--work-dir',
        str(tmp_path / 'test'), '--cfg-options'
    ] + opts)
    assert 'per class results' in out
    for name in ('background', 'square', 'disc'):
        assert re.search(rf'\|\s*{name}\s*\|', out), name
    assert 'mIoU' in out and 'mBER' in out
