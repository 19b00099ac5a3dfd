"""mmseg-convlora: SAM fine-tuning with Conv-LoRA, LoRA and CAD in
MMSegmentation.

Importing this package registers every model, dataset, transform, metric and
hook into mmseg's registries. :mod:`.compat` comes first so that mmseg imports
on mmcv-lite and mmengine checkpoints load on torch >= 2.6. Without torch
(a deployment with onnxruntime) only :mod:`.deploy` is usable.
"""
try:
    import torch  # noqa: F401
except ModuleNotFoundError as err:  # see mmseg_convlora.deploy
    if err.name != 'torch':
        raise
else:
    from . import compat  # noqa: F401  (must stay first)
    from . import datasets, engine, evaluation, models  # noqa: F401,E402

__version__ = '0.1.0'
