from .base_sam_mask_decoder_head import BaseSAMMaskDecoderHead
from .gt_prompt_sampler import GTPromptSampler
from .sam_mask_classification_head import (SAMMaskClassificationHead,
                                           semantic_inference)
from .sam_mask_decoder_head import SAMMaskDecoderHead

__all__ = [
    'BaseSAMMaskDecoderHead', 'GTPromptSampler', 'SAMMaskClassificationHead',
    'SAMMaskDecoderHead', 'semantic_inference'
]
