"""mmseg-convlora: SAM fine-tuning with Conv-LoRA, LoRA and CAD in
MMSegmentation.

Importing this package registers every model, dataset, transform, metric and
hook into mmseg's registries, those of the optional features
(``embedding_cache``, ``peft_backbone``) included. :mod:`.compat` comes
first so that mmseg imports on mmcv-lite.
"""
from . import compat  # noqa: F401  (must stay first)
from . import (datasets, embedding_cache, engine, evaluation, models,
               peft_backbone)

__version__ = '0.1.0'
__all__ = [
    'datasets', 'embedding_cache', 'engine', 'evaluation', 'models',
    'peft_backbone'
]
