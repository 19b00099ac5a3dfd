from .peft_optim_wrapper_constructor import PEFTOptimWrapperConstructor

__all__ = ['PEFTOptimWrapperConstructor']
