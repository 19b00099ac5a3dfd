"""QuietRunner: mmengine's set-up dumps only at DEBUG level, everything a
user needs at INFO, by logger levels (no message filters)."""
import logging

from mmengine.logging import MMLogger, print_log

from mmseg_convlora.engine.runner.quiet_runner import QuietRunner, quiet
from helpers import demo_config


def build_runner(demo_data, tmp_path, log_level):
    cfg = demo_config(
        demo_data,
        str(tmp_path / log_level),
        log_level=log_level,
        runner_type='QuietRunner')
    return QuietRunner.from_cfg(cfg)


def log_file(runner):
    for handler in runner.logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.flush()
            return open(handler.baseFilename).read()
    raise AssertionError('no log file')


def test_runner_console_and_log_file(demo_data, tmp_path):
    runner = build_runner(demo_data, tmp_path, 'INFO')
    assert runner.logger.level == logging.NOTSET  # restored after set-up
    print_log('an info line', logger='current')
    print_log(
        'a warning about the data', logger='current', level=logging.WARNING)
    text = log_file(runner)
    for dump in ('System environment', 'Config:', 'Hooks will be executed',
                 'Distributed training is not used'):
        assert dump not in text, dump
    assert 'an info line' in text and 'a warning about the data' in text
    verbose = build_runner(demo_data, tmp_path, 'DEBUG')
    text = log_file(verbose)
    for dump in ('System environment', 'Config:', 'Hooks will be executed',
                 'Distributed training is not used'):
        assert dump in text, dump


def test_quiet_drops_lower_levels_then_restores():
    logger = MMLogger.get_instance('test_quiet_runner', log_level='INFO')
    handler = logging.Handler(logging.INFO)
    records = []
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        with quiet(logger):
            logger.info('dropped')
            logger.warning('kept')
        logger.info('after')
        for h in logger.handlers:  # log_level='DEBUG': nothing dropped
            h.setLevel(logging.DEBUG)
        with quiet(logger):
            logger.info('shown at DEBUG')
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage()
            for r in records] == ['kept', 'after', 'shown at DEBUG']
