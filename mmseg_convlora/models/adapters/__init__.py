from .base_adapter import BaseSAMAdapter
from .cad import CAD, CADBlock, high_frequency_components
from .conv_lora import ConvLoRA, ConvLoRALinear, cv_squared, moe_balance_loss
from .lora import LoRA, LoRALinear, LowRankLinear, inject_linear_adapters

__all__ = [
    'BaseSAMAdapter', 'LoRA', 'LoRALinear', 'LowRankLinear',
    'inject_linear_adapters', 'ConvLoRA', 'ConvLoRALinear', 'cv_squared',
    'moe_balance_loss', 'CAD', 'CADBlock', 'high_frequency_components'
]
