from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .peft_optim_wrapper_constructor import PEFTOptimWrapperConstructor

__all__ = ['CPUAmpOptimWrapper', 'PEFTOptimWrapperConstructor']
