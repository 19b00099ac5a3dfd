"""Checkpoints under faults (SafeCheckpointHook, find_resume_checkpoint):
nothing deleted before its replacement is complete and verified, resume
from what is actually in the work dir, paths relative to the work dir, one
run per work dir.

Most tests copy the work dir of one shared short run (``short_run`` in
conftest.py: iter_2.pth, iter_4.pth, best_clock_iter_4.pth) instead of
training their own.
"""
import contextlib
import errno
import logging
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner

import mmseg_convlora.engine.atomic_files as af
from mmseg_convlora.engine.runner import (CheckpointFileError,
                                          WorkDirLockedError,
                                          find_resume_checkpoint)
from helpers import REPO, load_tool

pytestmark = pytest.mark.slow
DEMO = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def pth_files(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.pth'))


def truncate(path):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


class StartIter:
    """Records the iteration training (re)starts at."""

    def __init__(self, runner):
        from mmengine.hooks import Hook
        record = self

        class _Hook(Hook):

            def before_train(self, runner):
                record.iter = runner.iter

        runner.register_hook(_Hook(), priority='LOWEST')


# ------------------------------------------------------- item 7: best
def test_previous_best_is_kept_until_the_new_best_is_written(
        iter_config, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    real_write = af._write_all

    def write(f, data):
        if 'best_clock_iter_4.pth' in f.name:
            f.write(data[:len(data) // 2])
            raise OSError('disk full while saving the new best checkpoint')
        return real_write(f, data)

    monkeypatch.setattr(af, '_write_all', write)
    runner = Runner.from_cfg(
        iter_config(work, adapter=None, save_best='clock'))
    with pytest.raises(OSError, match='disk full'):
        runner.train()
    # mmengine deletes best_clock_iter_2.pth before writing the new one
    assert 'best_clock_iter_2.pth' in pth_files(work)
    torch.load(osp.join(work, 'best_clock_iter_2.pth'), weights_only=True)
    assert not [f for f in os.listdir(work) if af.TMP_MARK in f]


def test_previous_best_is_removed_once_the_new_one_is_complete(short_run):
    files = pth_files(short_run)
    assert [f for f in files
            if f.startswith('best_')] == ['best_clock_iter_4.pth']


# ------------------------------------- items 8, 9, 12: resume from files
def test_pointer_and_recorded_paths_are_relative(short_run):
    assert open(osp.join(short_run, 'last_checkpoint')).read() == \
        'iter_4.pth'
    ckpt = torch.load(osp.join(short_run, 'iter_4.pth'), weights_only=True)
    info = ckpt['message_hub']['runtime_info']
    assert info['last_ckpt'] == 'iter_4.pth'
    assert info['best_ckpt'] == 'best_clock_iter_4.pth'


def test_missing_pointer_falls_back_to_newest_complete_checkpoint(
        short_run, tmp_path, iter_config):
    """A kill after iter_4.pth was complete but before last_checkpoint was
    written: mmengine would start again from scratch."""
    work = copy_run(short_run, tmp_path / 'work')
    os.remove(osp.join(work, 'last_checkpoint'))
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')

    cfg = iter_config(
        work, max_iters=6, adapter=None, keep=2, save_best='clock')
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    start = StartIter(runner)
    runner.train()
    assert start.iter == 4 and runner.iter == 6


def test_truncated_newest_checkpoint_falls_back_to_previous(
        short_run, tmp_path):
    work = copy_run(short_run, tmp_path / 'work')
    truncate(osp.join(work, 'iter_4.pth'))
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_2.pth')


def test_truncated_checkpoint_given_to_resume_names_file_and_fix(
        short_run, tmp_path):
    work = copy_run(short_run, tmp_path / 'work')
    bad = osp.join(work, 'iter_4.pth')
    truncate(bad)
    train = load_tool('train.py')
    with pytest.raises(SystemExit) as err:
        train.main([DEMO, '--work-dir', work, '--resume', bad])
    msg = str(err.value)
    assert bad in msg and 'truncated' in msg
    assert f'--resume {osp.join(work, "iter_2.pth")}' in msg


@pytest.mark.parametrize('make', ['missing', 'empty'])
def test_resume_with_nothing_to_resume_is_refused(tmp_path, make):
    """A mistyped --work-dir: mmengine would silently train from scratch."""
    work = str(tmp_path / 'wrok')
    if make == 'empty':
        os.makedirs(work)
    train = load_tool('train.py')
    with pytest.raises(SystemExit) as err:
        train.main([DEMO, '--work-dir', work, '--resume'])
    msg = str(err.value)
    assert work in msg and 'nothing to resume' in msg
    assert 'without --resume' in msg


def test_copied_work_dir_resumes_and_deletes_its_own_files_only(
        short_run, tmp_path, iter_config):
    original = copy_run(short_run, tmp_path / 'original')
    copy = copy_run(original, tmp_path / 'copy')
    before = {
        f: os.stat(osp.join(original, f)).st_mtime_ns
        for f in os.listdir(original)
    }
    cfg = iter_config(
        copy, max_iters=6, adapter=None, keep=2, save_best='clock')
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    start = StartIter(runner)
    runner.train()
    assert start.iter == 4
    # the copy replaced its own best checkpoint; the original is untouched
    assert pth_files(copy) == [
        'best_clock_iter_6.pth', 'iter_4.pth', 'iter_6.pth'
    ]
    assert {
        f: os.stat(osp.join(original, f)).st_mtime_ns
        for f in os.listdir(original)
    } == before


def test_moved_work_dir_resumes(short_run, tmp_path, iter_config):
    moved = copy_run(short_run, tmp_path / 'moved')
    # a checkpoint written with absolute paths (mmengine's hook, or before
    # the move) into a folder that no longer exists
    ckpt_path = osp.join(moved, 'iter_4.pth')
    ckpt = torch.load(ckpt_path, weights_only=False)
    gone = str(tmp_path / 'gone')
    info = ckpt['message_hub']['runtime_info']
    info['last_ckpt'] = osp.join(gone, 'iter_4.pth')
    info['best_ckpt'] = osp.join(gone, 'best_clock_iter_4.pth')
    torch.save(ckpt, ckpt_path)
    with open(osp.join(moved, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(gone, 'iter_4.pth'))
    assert find_resume_checkpoint(moved) == ckpt_path

    cfg = iter_config(
        moved, max_iters=6, adapter=None, keep=2, save_best='clock')
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 6
    assert pth_files(moved) == [
        'best_clock_iter_6.pth', 'iter_4.pth', 'iter_6.pth'
    ]


# --------------------------------------------- item 12: verified saves
def test_corrupt_new_checkpoint_is_refused_and_previous_kept(
        iter_config, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    real_write = af._write_all

    def write(f, data):
        if 'iter_4.pth' not in f.name:
            return real_write(f, data)
        data = bytearray(data)
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(64)  # a bad disk block
        return real_write(f, bytes(data))

    monkeypatch.setattr(af, '_write_all', write)
    runner = Runner.from_cfg(iter_config(work, adapter=None, keep=1))
    with pytest.raises(CheckpointFileError) as err:
        runner.train()
    assert osp.join(work, 'iter_4.pth') in str(err.value)
    assert 'iter_2.pth' in pth_files(work)
    assert open(osp.join(work, 'last_checkpoint')).read() == 'iter_2.pth'


def test_corrupt_new_best_is_not_left_under_its_name(iter_config, tmp_path,
                                                     monkeypatch):
    work = str(tmp_path / 'work')
    real_write = af._write_all

    def write(f, data):
        if 'best_clock_iter_4' in f.name:
            data = data[:len(data) // 2] + bytes(64) + data[len(data) // 2 +
                                                            64:]
        return real_write(f, data)

    monkeypatch.setattr(af, '_write_all', write)
    runner = Runner.from_cfg(
        iter_config(work, adapter=None, keep=2, save_best='clock'))
    with pytest.raises(CheckpointFileError, match='best_clock_iter_4.pth'):
        runner.train()
    assert pth_files(work) == [
        'best_clock_iter_2.pth', 'iter_2.pth', 'iter_4.pth'
    ]


@pytest.mark.parametrize('code', [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_names_the_file_and_the_fix(
        iter_config, tmp_path, monkeypatch, code):
    work = str(tmp_path / 'work')
    real_write = af._write_all

    def write(f, data):
        if 'iter_4.pth' in f.name:
            raise OSError(code, os.strerror(code))
        return real_write(f, data)

    monkeypatch.setattr(af, '_write_all', write)
    runner = Runner.from_cfg(iter_config(work, adapter=None))
    with pytest.raises(CheckpointFileError) as err:
        runner.train()
    msg = str(err.value)
    assert f"Cannot write {osp.join(work, 'iter_4.pth')!r}: the disk is" in msg
    assert '--resume' in msg and '\n' not in msg
    assert pth_files(work) == ['iter_2.pth']
    assert not [f for f in os.listdir(work) if af.TMP_MARK in f]


def test_zip_that_is_not_a_checkpoint_is_named_and_skipped(
        short_run, tmp_path, capture_log):
    import zipfile
    work = copy_run(short_run, tmp_path / 'work')
    fake = osp.join(work, 'iter_99.pth')
    with zipfile.ZipFile(fake, 'w') as archive:
        archive.writestr('notes.txt', 'not weights')
    log = capture_log(MMLogger.get_current_instance())
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')
    assert f"{fake!r} is a zip file but not a torch checkpoint" in log.text()


def test_pointer_to_an_older_checkpoint_takes_the_newest(
        short_run, tmp_path, capture_log):
    work = copy_run(short_run, tmp_path / 'work')
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write('iter_2.pth')
    log = capture_log(MMLogger.get_current_instance())
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')
    assert "'last_checkpoint' names an older one, " + osp.join(
        work, 'iter_2.pth') in log.text()


# ------------------------------------------------- item 10: one run
@contextlib.contextmanager
def locked(work):
    """Another process holds the lock on ``work``; yields its pid."""
    lock_module = osp.join(REPO, 'mmseg_convlora', 'engine', 'runner',
                           'work_dir_lock.py')
    holder = subprocess.Popen([
        sys.executable, '-c', 'import importlib.util as u, sys\n'
        f'spec = u.spec_from_file_location("lock", {lock_module!r})\n'
        'm = u.module_from_spec(spec); spec.loader.exec_module(m)\n'
        f'm.WorkDirLock({work!r}).acquire()\n'
        'print("locked", flush=True)\n'
        'sys.stdin.read()\n'
    ],
                              stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait()


def test_second_run_in_the_same_work_dir_is_refused(iter_config, tmp_path):
    work = str(tmp_path / 'work')
    with locked(work) as pid:
        runner = Runner.from_cfg(iter_config(work, adapter=None))
        with pytest.raises(WorkDirLockedError) as err:
            runner.train()
        msg = str(err.value)
        assert f'pid {pid}' in msg and work in msg
        assert '--work-dir' in msg
        assert not pth_files(work)


def test_refused_second_run_writes_nothing(tmp_path):
    """tools/train.py locks before the runner dumps the config and makes
    its log folder."""
    work = str(tmp_path / 'work')
    os.makedirs(work)
    dump = osp.join(work, 'tiny_shadow.py')
    with open(dump, 'w') as f:
        f.write('# the first run\'s config\n')
    with locked(work) as pid:
        before = sorted(os.listdir(work))
        with pytest.raises(SystemExit) as err:
            load_tool('train.py').main([DEMO, '--work-dir', work])
    assert f'pid {pid}' in str(err.value)
    assert sorted(os.listdir(work)) == before
    assert open(dump).read() == '# the first run\'s config\n'


# ------------------------------------- item 4: no foreground to validate
def test_validation_set_without_foreground_is_explained(
        demo_data, iter_config, tmp_path, capture_log):
    root = str(tmp_path / 'data')
    shutil.copytree(osp.join(demo_data, 'val'), osp.join(root, 'val'))
    masks = osp.join(root, 'val', 'masks')
    for name in os.listdir(masks):
        mask = cv2.imread(osp.join(masks, name), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(osp.join(masks, name), mask * 0)
    work = str(tmp_path / 'work')
    cfg = iter_config(
        work, max_iters=2, adapter=None, save_best='BER', rule='less')
    cfg.val_dataloader.dataset.data_root = root
    runner = Runner.from_cfg(cfg)
    log = capture_log(runner.logger)
    runner.train()
    text = log.text(logging.WARNING)
    assert 'BER is NaN after validation' in text
    assert masks in text and '(2 images)' in text
    assert 'save_best' in text
    assert pth_files(work) == ['iter_2.pth']  # saved as usual, no best
