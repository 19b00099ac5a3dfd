"""mmengine's ``OptimWrapper`` with the package's two extensions."""
from mmengine.optim import OptimWrapper as _MMEngineOptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

from .global_norm_clip import GlobalNormClip
from .non_finite_guard import NonFiniteGuard

__all__ = ['OptimWrapper']


@OPTIM_WRAPPERS.register_module(name='OptimWrapper')
class OptimWrapper(NonFiniteGuard, GlobalNormClip, _MMEngineOptimWrapper):
    """mmengine's ``OptimWrapper`` plus, when switched on by their hooks,
    the non-finite guard (:class:`NonFiniteGuard`, by
    :class:`NonFiniteLossHook`) and global-norm clipping under FSDP
    (:class:`GlobalNormClip`, by :class:`FSDPClipGradHook`); with neither it
    behaves exactly as mmengine's.

    Registered under mmengine's name in mmseg's ``OPTIM_WRAPPERS`` (the
    scope the configs use), so ``optim_wrapper.type='OptimWrapper'`` builds
    it and mmseg's own ``tools/train.py --amp`` (which requires that type)
    keeps working. Arguments: as :class:`mmengine.optim.OptimWrapper`.
    """
