from .base_adapter import BaseSAMAdapter
from .bitfit import BitFit
from .cad import CAD, CADBlock, high_frequency_components
from .conv_lora import ConvLoRA, ConvLoRALinear, cv_squared, moe_balance_loss
from .encoder_hooks import EncoderHooks
from .houlsby_adapter import BottleneckAdapter, HoulsbyAdapter
from .lora import LoRA, LoRALinear, LowRankLinear, inject_linear_adapters
from .sam_adapter import SAMAdapter
from .ssf import SSF, ScaleShift
from .vpt import VPT, PromptedAttention, token_linear

__all__ = [
    'BaseSAMAdapter', 'LoRA', 'LoRALinear', 'LowRankLinear',
    'inject_linear_adapters', 'ConvLoRA', 'ConvLoRALinear', 'cv_squared',
    'moe_balance_loss', 'CAD', 'CADBlock', 'high_frequency_components',
    'BitFit', 'HoulsbyAdapter', 'BottleneckAdapter', 'SSF', 'ScaleShift',
    'VPT', 'PromptedAttention', 'token_linear', 'SAMAdapter', 'EncoderHooks'
]
