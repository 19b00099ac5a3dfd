"""mmseg-convlora: SAM fine-tuning with Conv-LoRA, LoRA and CAD in
MMSegmentation.

Importing this package registers every model, dataset, transform, metric and
hook into mmseg's registries. :mod:`.compat` comes first so that mmseg imports
on mmcv-lite and mmengine checkpoints load on torch >= 2.6.
"""
from . import compat  # noqa: F401  (must stay first)
from . import peft_backbone  # noqa: F401,E402  (optional features)
from . import datasets, engine, evaluation, models  # noqa: F401,E402

__version__ = '0.1.0'
