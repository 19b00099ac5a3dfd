"""ProgressLogHook: a progress line whenever the logger was silent too long;
an epoch shorter than the logger's interval still logs once."""
import logging
import re

import pytest
from mmengine.runner import Runner

from helpers import demo_config


def progress_lines(demo_data, work, max_silence):
    """Train 2 epochs of 3 iterations (validation: 2 iterations) with the
    logger's interval 50; the progress lines of the log file."""
    cfg = demo_config(
        demo_data,
        str(work),
        train_cfg=dict(max_epochs=2, val_interval=1),
        param_scheduler=[],
        default_hooks=dict(
            logger=dict(interval=50),
            progress=dict(max_silence=max_silence),
            checkpoint=dict(interval=1, save_best=None)))
    cfg.train_dataloader.dataset.indices = 12  # batch 4
    runner = Runner.from_cfg(cfg)
    runner.train()
    handler = next(
        h for h in runner.logger.handlers
        if isinstance(h, logging.FileHandler))
    handler.flush()
    lines = []
    for line in open(handler.baseFilename):
        found = re.search(r'Epoch\((train|val)\) *\[(\d)\]\[(\d)/\d\]', line)
        if found:
            kind = 'metrics' if 'BER:' in line else 'eta' if 'eta:' in line \
                else '?'
            lines.append(found.groups() + (kind, ))
    return lines


@pytest.mark.slow
def test_an_epoch_shorter_than_the_interval_logs_once(demo_data, tmp_path):
    # mmengine's LoggerHook logs the end of an epoch shorter than its
    # interval; validation logs only its metrics
    assert progress_lines(demo_data, tmp_path,
                          120) == [('train', '1', '3', 'eta'),
                                   ('val', '1', '2', 'metrics'),
                                   ('train', '2', '3', 'eta'),
                                   ('val', '2', '2', 'metrics')]


@pytest.mark.slow
def test_silence_longer_than_max_silence_gets_a_line(demo_data, tmp_path):
    expected = []
    for epoch in '12':
        expected += [('train', epoch, i, 'eta') for i in '123']
        expected += [('val', epoch, i, 'eta') for i in '12']
        expected += [('val', epoch, '2', 'metrics')]
    assert progress_lines(demo_data, tmp_path, 0) == expected
