import logging
import warnings

from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

# Python warnings of mmseg that a config cannot avoid, by issuing module.
LIBRARY_WARNINGS = ('mmseg.models.builder',
                    'mmseg.engine.hooks.visualization_hook')


class quiet:
    """Drop the messages of an :class:`MMLogger` below ``level`` (a context,
    or :meth:`start` / :meth:`stop`), unless it shows DEBUG messages
    (``log_level='DEBUG'``)."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING):
        self.logger, self.level, self.previous = logger, level, None

    def start(self) -> 'quiet':
        shows_debug = any(h.level <= logging.DEBUG
                          for h in self.logger.handlers)
        if not shows_debug and self.logger.level < self.level:
            self.previous = self.logger.level
            self.logger.setLevel(self.level)
        return self

    def stop(self) -> None:
        if self.previous is not None:
            self.logger.setLevel(self.previous)
            self.previous = None

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()


@RUNNERS.register_module()
class QuietRunner(Runner):
    """:class:`mmengine.runner.Runner` whose console shows what users need.

    mmengine's set-up messages (environment, config, hook order...) are
    dropped unless ``log_level='DEBUG'``; every warning remains.
    """

    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():
            for module in LIBRARY_WARNINGS:
                warnings.filterwarnings('ignore', module=module)
            self._quiet = None
            try:
                super().__init__(*args, **kwargs)
            finally:
                if self._quiet is not None:
                    self._quiet.stop()

    def build_logger(self, *args, **kwargs) -> MMLogger:
        logger = super().build_logger(*args, **kwargs)
        # the environment and config dump follow, until the message hub
        self._quiet = quiet(logger).start()
        return logger

    def build_message_hub(self, *args, **kwargs):
        self._quiet.stop()
        return super().build_message_hub(*args, **kwargs)

    def wrap_model(self, *args, **kwargs):
        with quiet(
                self.logger,
                logging.WARNING if not self.distributed else logging.NOTSET):
            return super().wrap_model(*args, **kwargs)

    def register_hooks(self, *args, **kwargs) -> None:
        super().register_hooks(*args, **kwargs)
        # the hook order follows, until the config is dumped
        self._quiet = quiet(self.logger).start()

    def dump_config(self) -> None:
        self._quiet.stop()
        super().dump_config()

    def build_evaluator(self, *args, **kwargs):
        with quiet(self.logger, logging.ERROR):
            return super().build_evaluator(*args, **kwargs)
