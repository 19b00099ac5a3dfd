from .peft_optim_wrapper_constructor import PEFTOptimWrapperConstructor

__all__ = ['PEFTOptimWrapperConstructor']
from .amp_optim_wrapper import AmpOptimWrapper  # noqa: E402,F401
