from .base_adapter import BaseSAMAdapter
from .cad import CAD, CADBlock, high_frequency_components
from .conv_lora import ConvLoRA, ConvLoRALinear, cv_squared, moe_balance_loss
from .lora import LoRA, LoRALinear, LowRankLinear, inject_linear_adapters

__all__ = [
    'BaseSAMAdapter', 'LoRA', 'LoRALinear', 'LowRankLinear',
    'inject_linear_adapters', 'ConvLoRA', 'ConvLoRALinear', 'cv_squared',
    'moe_balance_loss', 'CAD', 'CADBlock', 'high_frequency_components'
]
from .bitfit import BitFit  # noqa: E402
from .encoder_hooks import EncoderHooks  # noqa: E402
from .houlsby_adapter import BottleneckAdapter, HoulsbyAdapter  # noqa: E402
from .sam_adapter import SAMAdapter  # noqa: E402
from .ssf import SSF, ScaleShift  # noqa: E402
from .vpt import VPT, PromptedAttention, token_linear  # noqa: E402

__all__ += [
    'BitFit', 'HoulsbyAdapter', 'BottleneckAdapter', 'SSF', 'ScaleShift',
    'VPT', 'PromptedAttention', 'token_linear', 'SAMAdapter', 'EncoderHooks'
]
