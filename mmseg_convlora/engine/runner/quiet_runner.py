"""mmengine's Runner with a console for users, not for mmengine's authors."""
import logging
import warnings

from mmengine.runner import Runner
from mmseg.registry import RUNNERS

# Messages of mmengine/mmseg that say nothing a user acts on. They are
# logged at DEBUG level instead (``log_level='DEBUG'`` shows them).
LIBRARY_NOISE = (
    'System environment:',  # the environment dump
    'Config:\n',  # the whole config (also saved to the work dir)
    'Hooks will be executed in the following order',
    'paramwise_options -- ',  # one line per bias / norm parameter
    'frozen parameter tensors are not passed to the optimizer',
    'Distributed training is not used, all SyncBatchNorm',
    '"FileClient" will be deprecated',
    '"HardDiskBackend" is the alias',
    'The prefix is not set in metric class',
    'Image shapes are different in the batch',
    'Exp name: ',
    'Loads checkpoint by local backend',
)
# Python warnings of mmseg that a config cannot avoid.
LIBRARY_WARNINGS = (
    '``build_loss`` would be deprecated soon',
    'The draw is False, it means that the hook for visualization',
)


class DemoteLibraryNoise(logging.Filter):
    """Re-level the messages in :data:`LIBRARY_NOISE` to DEBUG, so the
    handlers (at the runner's ``log_level``) drop them unless it is DEBUG.
    Warnings of the plugin itself (bad data, ...) are never matched."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            message = record.getMessage()
            if any(part in message for part in LIBRARY_NOISE):
                record.levelno = logging.DEBUG
                record.levelname = 'DEBUG'
        return True


@RUNNERS.register_module()
class QuietRunner(Runner):
    """:class:`mmengine.runner.Runner` whose console shows what a user needs.

    What remains at the default ``log_level='INFO'``: the model's trainable
    parameters, the datasets, progress lines with ETA, validation and test
    results, checkpoints, and every warning about the user's data or config.
    mmengine's environment and config dumps, hook order, per-parameter
    optimizer options and known deprecation notices go to DEBUG level
    (``--cfg-options log_level=DEBUG`` shows them). Set by
    ``runner_type='QuietRunner'`` in ``configs/_base_/default_runtime.py``.
    """

    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():
            for message in LIBRARY_WARNINGS:
                warnings.filterwarnings('ignore', message=message)
            super().__init__(*args, **kwargs)

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        if not any(isinstance(f, DemoteLibraryNoise) for f in logger.filters):
            logger.addFilter(DemoteLibraryNoise())
        return logger
