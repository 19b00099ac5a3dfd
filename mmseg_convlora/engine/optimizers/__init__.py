from .amp_optim_wrapper import AmpOptimWrapper
from .global_norm_clip import GlobalNormClip
from .non_finite_guard import NonFiniteGuard
from .optim_wrapper import OptimWrapper
from .peft_optim_wrapper_constructor import PEFTOptimWrapperConstructor

__all__ = [
    'AmpOptimWrapper', 'GlobalNormClip', 'NonFiniteGuard', 'OptimWrapper',
    'PEFTOptimWrapperConstructor'
]
