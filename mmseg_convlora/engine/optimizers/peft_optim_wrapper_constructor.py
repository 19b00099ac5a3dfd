import logging

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS


class _CountFrozenSkips(logging.Filter):
    """Swallow the per-parameter 'skipped' warnings, counting them."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if 'is skipped since its requires_grad=False' in record.getMessage():
            self.count += 1
            return False
        return True


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PEFTOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, quiet about frozen parameters.

    The default constructor warns once per frozen tensor, which for a frozen
    SAM ViT-H is hundreds of lines that hide the useful log. This one logs a
    single line with their number; everything else (``paramwise_cfg``,
    bias/norm decay multipliers) is unchanged.
    """

    def __call__(self, model):
        logger = MMLogger.get_current_instance()
        counter = _CountFrozenSkips()
        logger.addFilter(counter)
        try:
            optim_wrapper = super().__call__(model)
        finally:
            logger.removeFilter(counter)
        if counter.count:
            logger.info(f'{counter.count} frozen parameter tensors are not '
                        'passed to the optimizer.')
        return optim_wrapper
