import logging

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..runner.quiet_runner import quiet


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PEFTOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor without a log line per parameter
    (only the number of frozen tensors is logged, at DEBUG)."""

    def __call__(self, model):
        logger = MMLogger.get_current_instance()
        with quiet(logger, logging.ERROR):
            optim_wrapper = super().__call__(model)
        frozen = sum(not p.requires_grad for p in model.parameters())
        logger.debug(f'{frozen} frozen parameter tensors are not passed to '
                     'the optimizer.')
        return optim_wrapper
