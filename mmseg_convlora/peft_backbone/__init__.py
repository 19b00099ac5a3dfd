"""Parameter-efficient fine-tuning of any mmseg backbone (optional)."""
from .linear_multihead_attention import (LinearMultiheadAttention,
                                         replace_multihead_attention)
from .peft_backbone import PEFTBackbone
from .token_grids import attach_token_grids, supported_backbones

__all__ = [
    'LinearMultiheadAttention', 'PEFTBackbone', 'attach_token_grids',
    'replace_multihead_attention', 'supported_backbones'
]
