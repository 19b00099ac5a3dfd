"""Inference without PyTorch (imports only numpy, opencv, onnxruntime)."""
from .predictor import (META_KEY, ONNXSegPredictor, Prediction,
                        resize_bilinear, resize_image)

__all__ = [
    'META_KEY', 'ONNXSegPredictor', 'Prediction', 'resize_bilinear',
    'resize_image'
]
