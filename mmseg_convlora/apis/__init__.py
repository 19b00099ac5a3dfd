"""Inference on new images: segmentation and SAM prompts."""
from .adapted_image_encoder import AdaptedImageEncoder
from .inference import (config_dataset_meta, get_test_pipeline,
                        inference_config, init_segmentor)
from .inference_pipeline import InferencePipeline
from .peft_sam_predictor import (PEFTSamPredictor, finetuned_mask_decoder,
                                 original_mask_decoder, promptable_sam)
from .sam_seg_inferencer import SAMSegInferencer
from .square_resize import SquareResize

__all__ = [
    'AdaptedImageEncoder', 'config_dataset_meta', 'get_test_pipeline',
    'inference_config', 'init_segmentor', 'InferencePipeline',
    'PEFTSamPredictor', 'finetuned_mask_decoder', 'original_mask_decoder',
    'promptable_sam', 'SAMSegInferencer', 'SquareResize'
]
