"""Inference on new images with mmseg's APIs."""
from .inference import (config_dataset_meta, config_test_dataset,
                        get_test_pipeline, inference_config, init_segmentor)
from .inference_pipeline import InferencePipeline
from .sam_seg_inferencer import SAMSegInferencer

__all__ = [
    'config_dataset_meta', 'config_test_dataset', 'get_test_pipeline',
    'inference_config', 'init_segmentor', 'InferencePipeline',
    'SAMSegInferencer'
]
