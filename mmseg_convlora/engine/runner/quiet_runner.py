import contextlib
import logging
import warnings

from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

# Python warnings of mmseg that a config cannot avoid, by issuing module.
LIBRARY_WARNINGS = ('mmseg.models.builder',
                    'mmseg.engine.hooks.visualization_hook')


@contextlib.contextmanager
def quiet(logger: logging.Logger, level: int = logging.WARNING):
    """Drop the messages of an :class:`MMLogger` below ``level`` (a context),
    unless it shows DEBUG messages (``log_level='DEBUG'``)."""
    previous = logger.level
    if not any(h.level <= logging.DEBUG for h in logger.handlers):
        logger.setLevel(max(previous, level))
    try:
        yield
    finally:
        logger.setLevel(previous)


@RUNNERS.register_module()
class QuietRunner(Runner):
    """:class:`mmengine.runner.Runner` without mmengine's set-up messages
    (environment, config, hook order...) unless ``log_level='DEBUG'``."""

    def __init__(self, *args, **kwargs):
        # set-up steps enter quiet contexts here; leaving closes any left
        with warnings.catch_warnings(), contextlib.ExitStack() as self._quiet:
            for module in LIBRARY_WARNINGS:
                warnings.filterwarnings('ignore', module=module)
            super().__init__(*args, **kwargs)

    def build_logger(self, *args, **kwargs) -> MMLogger:
        logger = super().build_logger(*args, **kwargs)
        # the environment and config dump follow, until the message hub
        self._quiet.enter_context(quiet(logger))
        return logger

    def build_message_hub(self, *args, **kwargs):
        self._quiet.close()
        return super().build_message_hub(*args, **kwargs)

    def wrap_model(self, *args, **kwargs):
        with quiet(
                self.logger,
                logging.WARNING if not self.distributed else logging.NOTSET):
            return super().wrap_model(*args, **kwargs)

    def register_hooks(self, *args, **kwargs) -> None:
        super().register_hooks(*args, **kwargs)
        # the hook order follows, until the config is dumped
        self._quiet.enter_context(quiet(self.logger))

    def dump_config(self) -> None:
        self._quiet.close()
        super().dump_config()

    def build_evaluator(self, *args, **kwargs):
        with quiet(self.logger, logging.ERROR):
            return super().build_evaluator(*args, **kwargs)
