from .base_sam_mask_decoder_head import BaseSAMMaskDecoderHead
from .sam_mask_classification_head import (SAMMaskClassificationHead,
                                           semantic_inference)
from .sam_mask_decoder_head import SAMMaskDecoderHead

__all__ = [
    'BaseSAMMaskDecoderHead', 'SAMMaskClassificationHead',
    'SAMMaskDecoderHead', 'semantic_inference'
]
