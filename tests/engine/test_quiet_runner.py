"""QuietRunner: mmengine's dumps at DEBUG level, what users need at INFO,
the plugin's own warnings untouched."""
import logging

import pytest
from mmengine.logging import print_log

from mmseg_convlora.engine.runner.quiet_runner import (DemoteLibraryNoise,
                                                       QuietRunner)
from helpers import demo_config


def record(message, level=logging.INFO):
    return logging.LogRecord('mmengine', level, __file__, 1, message, None,
                             None)


@pytest.mark.parametrize('message', [
    'Config:\nmodel = dict(...)',
    'paramwise_options -- decode_head.x.bias:weight_decay=0.0',
    'Hooks will be executed in the following order:\nbefore_run:',
    '"FileClient" will be deprecated in future.',
])
def test_library_noise_goes_to_debug(message):
    rec = record(message, logging.WARNING)
    assert DemoteLibraryNoise().filter(rec)
    assert rec.levelno == logging.DEBUG and rec.levelname == 'DEBUG'


@pytest.mark.parametrize('message', [
    'Trainable parameters: 33,744 of 100,192',
    'Mask data/x.png is not a binary mask: it holds the values [0, 7]',
    'Epoch(train) [1][4/8]  eta: 0:00:38',
])
def test_what_users_need_stays(message):
    rec = record(message, logging.WARNING)
    assert DemoteLibraryNoise().filter(rec)
    assert rec.levelno == logging.WARNING


def build_runner(demo_data, tmp_path, log_level):
    cfg = demo_config(
        demo_data,
        str(tmp_path / log_level),
        log_level=log_level,
        runner_type='QuietRunner')
    runner = QuietRunner.from_cfg(cfg)
    return runner


def log_file(runner):
    for handler in runner.logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.flush()
            return open(handler.baseFilename).read()
    raise AssertionError('no log file')


def test_runner_console_and_log_file(demo_data, tmp_path):
    runner = build_runner(demo_data, tmp_path, 'INFO')
    print_log(
        'a warning about the data', logger='current', level=logging.WARNING)
    text = log_file(runner)
    assert 'Config:' not in text and 'Hooks will be executed' not in text
    assert 'a warning about the data' in text
    verbose = build_runner(demo_data, tmp_path, 'DEBUG')
    text = log_file(verbose)
    assert 'Config:' in text and 'Hooks will be executed' in text
