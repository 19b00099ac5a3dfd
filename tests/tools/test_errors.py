"""Errors a user can fix end tools/train.py, tools/test.py and
tools/infer.py in one line (``error: ...``); --debug keeps the traceback."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tools.config_checks import user_errors
from helpers import REPO, demo_cfg_options, load_tool, run_tool

DEMO = 'configs/demo/tiny_shadow.py'
MOBILE_SAM = 'configs/custom/binary_dataset_mobile-sam.py'


def stderr_lines(proc):
    assert proc.returncode != 0
    return proc.stderr.strip().splitlines()


def test_errors_raised_by_the_package_or_tools_exit_in_one_line():
    infer = load_tool('infer.py')
    with pytest.raises(SystemExit) as exc, user_errors():
        infer.find_images(['no_such_image.jpg'])
    assert str(exc.value.code).startswith("error: 'no_such_image.jpg' is no")
    with pytest.raises(FileNotFoundError), user_errors(debug=True):
        infer.find_images(['no_such_image.jpg'])


def test_errors_raised_elsewhere_keep_their_traceback():
    with pytest.raises(ValueError, match='not ours'), user_errors():
        raise ValueError('not ours: raised in a test file')
    with pytest.raises(IndexError), user_errors():  # a bug in the tools
        load_tool('infer.py').overlay(
            np.zeros((1, 1, 3), np.uint8), np.ones((1, 1), int), [[0] * 3],
            0.5)


def test_mismatched_torchvision_ends_the_tools_in_one_line(tmp_path):
    """torchvision built for another torch fails on import with this
    RuntimeError."""
    fake = tmp_path / 'torchvision'
    fake.mkdir()
    (fake / '__init__.py').write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    for tool in ('train.py', 'test.py', 'infer.py'):
        proc = subprocess.run([sys.executable, f'tools/{tool}', '--help'],
                              cwd=REPO,
                              env=env,
                              capture_output=True,
                              text=True)
        (line, ) = stderr_lines(proc)
        assert line.startswith('error: torchvision ')
        assert 'does not match torch' in line and 'pip install' in line


@pytest.mark.slow
def test_missing_sam_checkpoint(demo_data, tmp_path):
    missing = str(tmp_path / 'mobile_sam.pt')
    options = [f'data_root={demo_data}', f'model.sam_checkpoint={missing}']
    args = [
        'tools/train.py', MOBILE_SAM, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options'
    ] + options
    (line, ) = stderr_lines(run_tool(args))
    assert line.startswith(f"error: SAM checkpoint not found: '{missing}'")
    # the run's log file and --debug keep the traceback
    (log, ) = glob.glob(str(tmp_path / 'work' / '*' / '*.log'))
    assert 'Traceback' in open(log).read()
    debug = run_tool(args + ['--debug'])
    assert 'Traceback' in debug.stderr and 'SAMCheckpointError' in debug.stderr

    proc = run_tool([
        'tools/infer.py', MOBILE_SAM, 'no.pth',
        osp.join(demo_data, 'val', 'images'), '--out',
        str(tmp_path / 'out'), '--cfg-options'
    ] + options)
    (line, ) = stderr_lines(proc)
    assert line.startswith(f"error: SAM checkpoint not found: '{missing}'")


@pytest.mark.slow
def test_non_binary_mask(demo_data, tmp_path):
    data = str(tmp_path / 'data')
    shutil.copytree(demo_data, data)
    bad = osp.join(data, 'train', 'masks', 'train_010.png')
    mask = cv2.imread(bad, cv2.IMREAD_UNCHANGED)
    mask[:, :mask.shape[1] // 2] = 128
    cv2.imwrite(bad, mask)
    proc = run_tool([
        'tools/train.py', DEMO, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options'
    ] + demo_cfg_options(data))
    (line, ) = stderr_lines(proc)
    assert line.startswith('error: ') and f"'{bad}' is not a binary" in line


def test_missing_test_checkpoint(tmp_path):
    proc = run_tool([
        'tools/test.py', DEMO,
        str(tmp_path / 'best.pth'), '--work-dir',
        str(tmp_path)
    ])
    (line, ) = stderr_lines(proc)
    assert line.startswith(f"error: Checkpoint '{tmp_path}/best.pth' not")
