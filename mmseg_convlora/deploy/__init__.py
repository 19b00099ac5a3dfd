"""Inference without PyTorch: a model exported by
``tools/deploy/export_onnx.py`` run with onnxruntime (imports only numpy,
opencv and onnxruntime)."""
from .predictor import (META_KEY, ONNXSegPredictor, Prediction,
                        resize_bilinear, resize_image)

__all__ = [
    'META_KEY', 'ONNXSegPredictor', 'Prediction', 'resize_bilinear',
    'resize_image'
]
