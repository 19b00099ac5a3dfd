"""mmseg-convlora: SAM fine-tuning with Conv-LoRA, LoRA and CAD in
MMSegmentation. Importing it registers everything into mmseg's registries;
without torch only :mod:`.deploy` is usable."""
try:
    import torch  # noqa: F401
except ModuleNotFoundError as err:  # see mmseg_convlora.deploy
    if err.name != 'torch':
        raise
else:
    from . import compat  # noqa: F401  (must stay first)
    from . import (datasets, embedding_cache, engine, evaluation, models,
                   peft_backbone)

__version__ = '0.1.0'
__all__ = [
    'datasets', 'embedding_cache', 'engine', 'evaluation', 'models',
    'peft_backbone'
]
