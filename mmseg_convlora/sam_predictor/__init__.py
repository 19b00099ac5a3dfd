"""SAM's promptable predictor on a fine-tuned model (optional)."""
from .adapted_image_encoder import AdaptedImageEncoder
from .peft_sam_predictor import (PEFTSamPredictor, finetuned_mask_decoder,
                                 original_mask_decoder, promptable_sam)
from .square_resize import SquareResize

__all__ = [
    'AdaptedImageEncoder', 'PEFTSamPredictor', 'SquareResize',
    'finetuned_mask_decoder', 'original_mask_decoder', 'promptable_sam'
]
